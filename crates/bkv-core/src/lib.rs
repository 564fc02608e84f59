//! bkv-core: the vault's logic without I/O.
//!
//! It takes commands and returns outcomes and audit events; it never touches a socket, a
//! file, a clock or the HSM directly (the HSM is reached through [`seal::Sealer`]).

pub mod audit;
pub mod bytes;
pub mod clock;
pub mod command;
#[cfg(any(test, feature = "test-support"))]
pub mod fixtures;
pub mod identity;
pub mod ids;
pub mod ledger;
pub mod opaque;
pub mod oprf;
pub mod oprf_record;
pub mod outcome;
pub mod protocol;
pub mod record;
pub mod reset;
pub mod seal;
pub mod share_map;
pub mod state;
pub mod ticket;
pub mod token;
#[cfg(test)]
mod vector_files;

pub use audit::{AuditEvent, AuditKind};
pub use command::{Command, Request};
pub use ids::{
    AccountId, AttemptId, ChargeNumber, ClusterId, GuessLimit, IdError, RecordVersion, RequestId,
};
pub use opaque::{ProtocolError, ServerSecrets};
pub use oprf_record::{OprfRecord, StoredShare};
pub use outcome::{Outcome, Rejection};
pub use protocol::BackupKey;
pub use seal::{SealError, SealPurpose, Sealer};
pub use share_map::{ShareHolder, ShareMap, SignedShareMap};
pub use state::{
    AccountStatus, Applied, AttemptView, ChargedAttemptView, ClusterConfig, CurrentShareMap,
    RecordStatus, RecordView, ResetProof, ShareCoverage, StateDecodeError, VaultState,
};
