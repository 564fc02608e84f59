//! [`Backend`]: the port the vault service runs over. A `bkv-node` implements it with Raft,
//! its HSM partition and its metrics; `bkv-devkit`'s in-memory replica implements it with a
//! `VaultState` behind a lock, for the SDK's tests, the single-process bound and the core
//! story test. The request handling above it is the same code either way.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bkv_core::{
    AccountId, AccountStatus, AttemptId, AttemptView, ClusterConfig, Command, OprfRecord, Outcome,
    Sealer, ServerSecrets,
};
use tonic::Code;

use crate::VaultError;
use crate::holder::{EvalRequest, Evaluated};

/// What a serving replica holds in memory to answer clients: the cluster's OPAQUE server
/// secrets, unsealed by its HSM, and the replicated cluster configuration.
pub struct Serving {
    /// The cluster's OPAQUE server secrets.
    pub secrets: ServerSecrets,
    /// The replicated cluster configuration.
    pub cluster: ClusterConfig,
}

impl fmt::Debug for Serving {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serving")
            .field("cluster_id", &self.cluster.cluster_id)
            .finish_non_exhaustive()
    }
}

/// Something the vault did that operators count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VaultEvent {
    /// A guess was charged and the credential response sent.
    GuessCharged,
    /// A recovery released its key.
    Recovered,
    /// A share-holder's evaluation failed or did not verify; another was asked.
    ShareHolderFailed,
    /// A call of this replica destroyed a record (no guess left).
    RecordDestroyed,
}

/// How a finished call went, for metrics and logs.
#[derive(Debug)]
pub struct CallReport<'a> {
    /// The RPC, e.g. `"RecoverStart"`.
    pub method: &'static str,
    /// The answer's code.
    pub code: Code,
    /// Time from the call's arrival to its answer.
    pub elapsed: Duration,
    /// The error answered, if any.
    pub error: Option<&'a VaultError>,
}

/// What the vault service needs from the replica it runs on.
///
/// Every state change goes through [`Backend::commit`], which returns only once the command
/// is committed and applied (on a node: a majority has it on disk). Nothing the service
/// sends depends on a command that is not committed.
pub trait Backend: Send + Sync + 'static {
    /// The HSM (or the software stand-in of a test replica).
    type Sealer: Sealer + Sync;

    /// The sealer records and tickets are sealed with.
    fn sealer(&self) -> &Self::Sealer;

    /// The serving state, or UNAVAILABLE with the reason this replica does not serve.
    fn serving(&self) -> Result<Arc<Serving>, VaultError>;

    /// Verifies an account token (the JWT after `Bearer `) and returns its account.
    fn verify_token(&self, token: &str) -> Result<AccountId, VaultError>;

    /// Commits `command` through the replicated log and returns its outcome.
    fn commit(&self, command: Command) -> impl Future<Output = Result<Outcome, VaultError>> + Send;

    /// What the applied state holds for `account`.
    fn account_status(&self, account: &AccountId) -> AccountStatus;

    /// The cluster configuration as applied now (the share map changes over time).
    fn cluster(&self) -> Result<ClusterConfig, VaultError>;

    /// What the applied state holds about an attempt; if it is not charged there yet, waits
    /// a little for the charge to be applied (the client calls right after `RecoverStart`).
    fn attempt(
        &self,
        account: &AccountId,
        attempt_id: &AttemptId,
    ) -> impl Future<Output = AttemptView> + Send;

    /// The public OPRF half (share-holders, threshold) of `account`'s active record, as
    /// applied here; `None` without an active record.
    fn active_oprf(&self, account: &AccountId) -> Option<OprfRecord>;

    /// The share-holders to ask, in the order to ask them: of `holders` (a record's), the
    /// ones this replica can reach, itself first; `turn` (the charge) may rotate the others
    /// so that they share the work.
    fn share_candidates(&self, holders: &[u64], turn: u64) -> Vec<u64>;

    /// Whether `holder` is this replica itself (its answers need no checking).
    fn is_local(&self, holder: u64) -> bool;

    /// Asks share-holder `holder` (this replica itself, or a peer) to evaluate.
    fn evaluate_share(
        &self,
        holder: u64,
        request: &EvalRequest,
    ) -> impl Future<Output = Result<Evaluated, VaultError>> + Send;

    /// Admits a `RecoverStart` of `account` from `peer` under the rate limits, before anything
    /// is committed.
    fn admit_recovery(&self, account: &AccountId, peer: Option<IpAddr>) -> Result<(), VaultError>;

    /// The current time, Unix milliseconds.
    fn now_unix_ms(&self) -> u64;

    /// How long recovery tickets live, ms.
    fn ticket_ttl_ms(&self) -> u64;

    /// The leader's client address (`host:port`), when known: named in every successful
    /// answer.
    fn leader_client_addr(&self) -> Option<String>;

    /// A call finished.
    fn observe_call(&self, report: &CallReport<'_>);

    /// Something operators count happened.
    fn observe(&self, event: VaultEvent);
}
