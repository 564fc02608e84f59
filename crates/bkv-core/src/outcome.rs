//! Outcomes of applying a command: what the proposing node answers its client with.

use serde::{Deserialize, Serialize};

use crate::ids::{ChargeNumber, GuessLimit, RecordVersion, RequestId};
use crate::oprf_record::OprfRecord;

/// The result of applying one [`crate::Command`]. Deterministic: every replica computes the
/// same outcome for the same entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The cluster was bootstrapped.
    Bootstrapped,
    /// A share map is in force (now, or already was at this epoch).
    ShareMapSet {
        /// Its epoch.
        epoch: u64,
    },
    /// A record version was staged (or had been, for a retried request id).
    Staged {
        /// The staged version.
        version: RecordVersion,
    },
    /// A version is active (now, or already was).
    Activated {
        /// The active version.
        version: RecordVersion,
    },
    /// A guess was charged (or had been, for a retried attempt): the node may now run the
    /// OPAQUE login start on this record.
    Charged {
        /// The record version charged.
        version: RecordVersion,
        /// The charge's number.
        charge: ChargeNumber,
        /// Guesses left after this charge.
        guesses_remaining: u32,
        /// The record's guess limit.
        guess_limit: GuessLimit,
        /// The registration id the record was sealed under (part of its AAD).
        request_id: RequestId,
        /// The sealed record.
        #[serde(with = "crate::bytes")]
        sealed_record: Vec<u8>,
        /// The record's public OPRF half (share-holders, commitments, KSF parameters).
        oprf: OprfRecord,
    },
    /// The ticket of `charge` is finished: the guess counter was reset (`reset` true), or
    /// the charge named is not the record's latest (a later charge exists) and the counter
    /// was left as is (`reset` false). Either way the record is live at `version`, and no
    /// ticket of this charge or an earlier one finishes again.
    Reset {
        /// The record version.
        version: RecordVersion,
        /// Whether the counter went back to zero.
        reset: bool,
    },
    /// The record has been destroyed by this command (no guess left).
    Destroyed {
        /// The destroyed version.
        version: RecordVersion,
    },
    /// The account was deleted.
    Deleted {
        /// Whether there was anything to delete.
        existed: bool,
    },
    /// A `Barrier` was committed when `through` was the highest record version issued.
    Barrier {
        /// Every version issued before the barrier is at most this; every later one is
        /// higher.
        through: RecordVersion,
    },
    /// A voter holds a share of the record (now, or already held this one).
    ShareAdded {
        /// The record version.
        version: RecordVersion,
        /// The voter.
        node_id: u64,
    },
    /// The record's shares are the refreshed ones (now, or were already).
    SharesRefreshed {
        /// The record version.
        version: RecordVersion,
    },
    /// The command was refused; the state is unchanged.
    Rejected(Rejection),
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    /// The cluster has not been bootstrapped.
    #[error("the cluster is not initialised")]
    NotBootstrapped,
    /// `Bootstrap` on a bootstrapped cluster.
    #[error("the cluster is already initialised")]
    AlreadyBootstrapped,
    /// The guess limit exceeds the cluster's maximum.
    #[error("guess limit {requested} exceeds the cluster maximum {max}")]
    GuessLimitTooHigh {
        /// What was asked for.
        requested: u32,
        /// The cluster's maximum.
        max: u32,
    },
    /// No active record for the account.
    #[error("no active record")]
    NoRecord,
    /// No staged version with that number (never staged, superseded, or deleted).
    #[error("no such staged version")]
    NoSuchVersion,
    /// The record was destroyed after too many guesses.
    #[error("the record was destroyed")]
    RecordDestroyed {
        /// The destroyed version.
        version: RecordVersion,
    },
    /// The version named is not the active one (superseded, deleted, or never active).
    #[error("the record version is no longer active")]
    VersionNotActive,
    /// The attempt id was used before with another credential request.
    #[error("attempt id already used with another credential request")]
    AttemptConflict,
    /// `Destroy` named a charge that is no longer the latest, or guesses remain.
    #[error("the record is not exhausted at that charge")]
    NotExhausted,
    /// A share map whose signature, encoding or rules fail, or that names another cluster.
    #[error("share map refused: {0}")]
    BadShareMap(String),
    /// A share map whose epoch is not above the current one.
    #[error("share map epoch {epoch} is not above the current {current}")]
    ShareMapEpoch {
        /// The map's epoch.
        epoch: u64,
        /// The epoch in force.
        current: u64,
    },
    /// No share map is in force yet: nothing can be registered.
    #[error("no share map is in force")]
    NoShareMap,
    /// A registration's shares were made for another share map than the one in force (the
    /// map changed meanwhile), or do not follow it.
    #[error("the shares do not follow the share map in force (epoch {current})")]
    StaleShareMap {
        /// The epoch in force.
        current: u64,
    },
    /// A reset whose signature does not verify under the record's reset key.
    #[error("the reset signature does not verify")]
    BadResetSignature,
    /// A `ResetGuesses` for a ticket that was finished already: its charge is at or below
    /// the highest charge finished on the record. Tickets are single-use.
    #[error("the ticket of charge {charge} was used already")]
    TicketUsed {
        /// The charge the ticket names.
        charge: ChargeNumber,
    },
    /// A share repair that does not fit the record or the share map in force (the reason
    /// says which check).
    #[error("share repair refused: {0}")]
    BadRepair(String),
    /// A share refresh that does not fit the record or the share map in force (the reason
    /// says which check).
    #[error("share refresh refused: {0}")]
    BadRefresh(String),
    /// The command's log position is not above the last position that changed the state:
    /// an entry applied twice or out of order (a bug of the log layer), or a command beyond
    /// the most an entry may carry. Refused so that no command applies twice.
    #[error("log index {index} is not above the last change at {last}")]
    StaleLogIndex {
        /// The index the entry was applied at.
        index: u64,
        /// The last index that changed the state.
        last: u64,
    },
}
