//! The parts of the wire contract that are not messages: metadata keys, and the stable reason
//! words and metadata keys of the `google.rpc.ErrorInfo` in every error's details (see
//! [`crate::status`]). Nodes and SDKs take them from here, so that each is written once.

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

/// Stable reason words of `google.rpc.ErrorInfo.reason` (domain `bkv`). Clients branch on
/// these and on the gRPC code, never on messages.
pub mod reason {
    /// UNAUTHENTICATED: no `authorization` metadata, or not `Bearer <JWT>`.
    pub const TOKEN_MISSING: &str = "TOKEN_MISSING";
    /// UNAUTHENTICATED: the token is not a compact JWT, or a part of it does not decode.
    pub const TOKEN_MALFORMED: &str = "TOKEN_MALFORMED";
    /// UNAUTHENTICATED: a claim is missing; metadata `claim` names it.
    pub const CLAIM_MISSING: &str = "CLAIM_MISSING";
    /// UNAUTHENTICATED: a claim or header field has the wrong type or value; metadata
    /// `claim` names it.
    pub const CLAIM_INVALID: &str = "CLAIM_INVALID";
    /// UNAUTHENTICATED: `alg` is not `EdDSA`.
    pub const ALGORITHM_NOT_ALLOWED: &str = "ALGORITHM_NOT_ALLOWED";
    /// UNAUTHENTICATED: `iss` names no issuer the cluster trusts.
    pub const UNKNOWN_ISSUER: &str = "UNKNOWN_ISSUER";
    /// UNAUTHENTICATED: the signature does not verify.
    pub const BAD_SIGNATURE: &str = "BAD_SIGNATURE";
    /// UNAUTHENTICATED: `aud` is not this cluster's name.
    pub const WRONG_AUDIENCE: &str = "WRONG_AUDIENCE";
    /// UNAUTHENTICATED: `exp` has passed.
    pub const TOKEN_EXPIRED: &str = "TOKEN_EXPIRED";
    /// UNAUTHENTICATED: `exp` is further away than the cluster allows.
    pub const LIFETIME_TOO_LONG: &str = "LIFETIME_TOO_LONG";
    /// UNAUTHENTICATED: `iat` or `nbf` lies in the future.
    pub const NOT_YET_VALID: &str = "NOT_YET_VALID";
    /// UNAUTHENTICATED (operator and peer APIs): no client certificate with a bkv role.
    pub const NO_ROLE: &str = "NO_ROLE";
    /// PERMISSION_DENIED (operator and peer APIs): a certificate of another role.
    pub const FORBIDDEN: &str = "FORBIDDEN";
    /// PERMISSION_DENIED: the password was wrong; metadata `guessesRemaining`.
    pub const WRONG_PASSWORD: &str = "WRONG_PASSWORD";
    /// NOT_FOUND: no active record for the account.
    pub const NO_RECORD: &str = "NO_RECORD";
    /// NOT_FOUND: no such staged version (Activate).
    pub const NO_SUCH_VERSION: &str = "NO_SUCH_VERSION";
    /// NOT_FOUND (operator API): no such member.
    pub const NO_SUCH_MEMBER: &str = "NO_SUCH_MEMBER";
    /// FAILED_PRECONDITION: the record was destroyed after too many guesses.
    pub const DESTROYED: &str = "DESTROYED";
    /// FAILED_PRECONDITION: the recovery ticket has expired; start the recovery again.
    pub const TICKET_EXPIRED: &str = "TICKET_EXPIRED";
    /// FAILED_PRECONDITION: the recovery ticket was already used by a RecoverFinish that
    /// succeeded (or a later one was); start the recovery again.
    pub const TICKET_USED: &str = "TICKET_USED";
    /// FAILED_PRECONDITION: the record version named is no longer the active one.
    pub const SUPERSEDED: &str = "SUPERSEDED";
    /// FAILED_PRECONDITION: the share map changed under a registration; start it again.
    pub const STALE_SHARE_MAP: &str = "STALE_SHARE_MAP";
    /// FAILED_PRECONDITION: RecoverLogin for an attempt that is not charged (reset since, or
    /// never charged); start the recovery again.
    pub const NOT_CHARGED: &str = "NOT_CHARGED";
    /// FAILED_PRECONDITION: a `Destroy` found guesses left (node to node only).
    pub const NOT_EXHAUSTED: &str = "NOT_EXHAUSTED";
    /// ALREADY_EXISTS (operator API).
    pub const ALREADY_EXISTS: &str = "ALREADY_EXISTS";
    /// RESOURCE_EXHAUSTED: rate limited; `RetryInfo` says when to come back.
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    /// UNAVAILABLE: no quorum, no leader, the node does not serve, or too few share-holders
    /// answered; metadata `leader` may name the leader; `RetryInfo` gives a first backoff.
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
    /// INTERNAL: the vault's own failure (storage, HSM, a bug).
    pub const INTERNAL: &str = "INTERNAL";

    /// Every reason word above.
    pub const ALL: &[&str] = &[
        TOKEN_MISSING,
        TOKEN_MALFORMED,
        CLAIM_MISSING,
        CLAIM_INVALID,
        ALGORITHM_NOT_ALLOWED,
        UNKNOWN_ISSUER,
        BAD_SIGNATURE,
        WRONG_AUDIENCE,
        TOKEN_EXPIRED,
        LIFETIME_TOO_LONG,
        NOT_YET_VALID,
        NO_ROLE,
        FORBIDDEN,
        WRONG_PASSWORD,
        NO_RECORD,
        NO_SUCH_VERSION,
        NO_SUCH_MEMBER,
        DESTROYED,
        TICKET_EXPIRED,
        TICKET_USED,
        SUPERSEDED,
        STALE_SHARE_MAP,
        NOT_CHARGED,
        NOT_EXHAUSTED,
        ALREADY_EXISTS,
        RATE_LIMITED,
        UNAVAILABLE,
        INTERNAL,
    ];

    /// The reason words of INVALID_ARGUMENT: `ErrorInfo.reason` and the `BadRequest` field
    /// violation's `reason` are one of these, and metadata `field` names the field.
    pub const FIELD_REASONS: &[&str] = &[
        "EMPTY",
        "MISSING",
        "WRONG_LENGTH",
        "TOO_SHORT",
        "TOO_LARGE",
        "TOO_HIGH",
        "OUT_OF_RANGE",
        "ZERO",
        "BAD_CHARACTER",
        "INVALID",
        "INVALID_ENCODING",
        "NOT_CANONICAL",
        "INCONSISTENT",
        "DOES_NOT_VERIFY",
        "REUSED",
        "WRONG_COUNT",
        "WRONG_HOLDER",
        "OTHER_ACCOUNT",
        "OTHER_CLUSTER",
        "REJECTED",
        "REFUSED",
        "MISMATCH",
        "UNKNOWN",
        "NOT_A_VOTER",
        "WRONG_HOLDERS",
        "WRONG_KEY",
        "BAD_ADDRESS",
        "BAD_NAME",
    ];
}

/// Keys of `google.rpc.ErrorInfo.metadata`.
pub mod meta {
    /// INVALID_ARGUMENT: the request field at fault (also in the `BadRequest`).
    pub const FIELD: &str = "field";
    /// UNAUTHENTICATED with CLAIM_MISSING or CLAIM_INVALID: the JWT claim or header field.
    pub const CLAIM: &str = "claim";
    /// PERMISSION_DENIED with WRONG_PASSWORD: guesses left on the record (decimal).
    pub const GUESSES_REMAINING: &str = "guessesRemaining";
    /// UNAVAILABLE: the leader's client address (`host:port`), when known.
    pub const LEADER: &str = "leader";
}
