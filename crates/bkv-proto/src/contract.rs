//! The parts of the wire contract that are not messages: metadata keys and the stable
//! reason words of `bkv.v1.ErrorDetail`. Nodes and SDKs take them from here, so that each is
//! written once.

/// Metadata key of the account token on every `bkv.v1.Vault` call: `Bearer <JWT>`.
pub const AUTHORIZATION: &str = "authorization";

/// The scheme word of the `authorization` value, with its one separating space.
pub const BEARER_PREFIX: &str = "Bearer ";

/// Metadata key naming the Raft leader's client address (`host:port`): on UNAVAILABLE
/// answers of every service, and on every successful `bkv.v1.Vault` answer, when the node
/// knows a leader.
pub const LEADER: &str = "bkv-leader";

/// Metadata key of the Raft leader's node id (decimal) on an UNAVAILABLE answer of
/// `bkv.v1.Raft/Forward`: node to node only.
pub const LEADER_ID: &str = "bkv-leader-id";

/// Stable reason words of `ErrorDetail.reason`. Clients branch on these, never on messages.
pub mod reason {
    /// PERMISSION_DENIED: the password was wrong; `guesses_remaining` is set.
    pub const WRONG_PASSWORD: &str = "wrong_password";
    /// FAILED_PRECONDITION: the record was destroyed after too many guesses.
    pub const DESTROYED: &str = "destroyed";
    /// FAILED_PRECONDITION: the recovery ticket has expired.
    pub const EXPIRED: &str = "expired";
    /// FAILED_PRECONDITION: the record version named is no longer the active one.
    pub const SUPERSEDED: &str = "superseded";
    /// FAILED_PRECONDITION: the share map changed under a registration; start it again.
    pub const STALE_SHARE_MAP: &str = "stale_share_map";
    /// FAILED_PRECONDITION: RecoverLogin for an attempt that is not charged (reset since, or
    /// never charged); start the recovery again.
    pub const NOT_CHARGED: &str = "not_charged";
    /// FAILED_PRECONDITION: a `Destroy` found guesses left (node to node only).
    pub const NOT_EXHAUSTED: &str = "not_exhausted";
    /// RESOURCE_EXHAUSTED: rate limited; `retry_after_ms` is set.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// UNAVAILABLE: no quorum, no leader or the node does not serve; `leader_hint` may be set.
    pub const UNAVAILABLE: &str = "unavailable";
}
