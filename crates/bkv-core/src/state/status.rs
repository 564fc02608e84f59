//! A read-only view of one account, for `Status` and for tests.

use crate::ids::{ChargeNumber, GuessLimit, RecordVersion};

/// What the state holds for one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountStatus {
    /// The recoverable record, or why there is none.
    pub record: RecordStatus,
    /// The version staged and not yet activated, if any.
    pub staged: Option<RecordVersion>,
}

/// The state of an account's recoverable record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordStatus {
    /// No active record and no tombstone (never registered, deleted, or only staged).
    Absent,
    /// A recoverable record.
    Active {
        /// The active version.
        version: RecordVersion,
        /// Guesses charged since activation or the last effective reset.
        guesses_used: u32,
        /// The record's guess limit.
        guess_limit: GuessLimit,
        /// The latest charge on this version (0 before the first).
        last_charge: ChargeNumber,
        /// The highest charge whose ticket was finished (0: none); tickets of this charge
        /// and earlier ones are refused.
        last_finished: ChargeNumber,
    },
    /// The last active record was destroyed after running out of guesses.
    Destroyed {
        /// The destroyed version.
        version: RecordVersion,
    },
}

impl AccountStatus {
    /// An account the state holds nothing for.
    pub const ABSENT: AccountStatus = AccountStatus {
        record: RecordStatus::Absent,
        staged: None,
    };
}
