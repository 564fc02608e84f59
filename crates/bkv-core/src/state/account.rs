//! What the state keeps per account: at most one staged and one active record version, the
//! tombstone of a record destroyed by guessing, the last few registration ids, and the
//! version of its latest `Stage`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{AttemptId, ChargeNumber, GuessLimit, RecordVersion, RequestId};
use crate::oprf_record::OprfRecord;

/// Registration ids remembered per account, so that a retried `Stage` stages nothing new.
pub(crate) const REQUEST_IDS_KEPT: usize = 4;

/// One account's entry. Never empty: it holds a staged or an active record, or a tombstone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Account {
    /// The version staged and not yet activated (a newer `Stage` replaces it).
    pub(crate) staged: Option<StagedRecord>,
    /// The recoverable version.
    pub(crate) active: Option<ActiveRecord>,
    /// The version last destroyed by running out of guesses, until a new activation.
    pub(crate) destroyed: Option<RecordVersion>,
    /// The last registrations, oldest first, at most [`REQUEST_IDS_KEPT`].
    pub(crate) registrations: Vec<Registration>,
    /// The version the account's latest `Stage` created (the log index of that `Stage`).
    pub(crate) last_version: RecordVersion,
}

/// A registration id and the version its `Stage` created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Registration {
    pub(crate) request_id: RequestId,
    pub(crate) version: RecordVersion,
}

/// A staged record version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StagedRecord {
    pub(crate) version: RecordVersion,
    pub(crate) request_id: RequestId,
    pub(crate) guess_limit: GuessLimit,
    #[serde(with = "crate::bytes")]
    pub(crate) sealed_record: Vec<u8>,
    pub(crate) oprf: OprfRecord,
}

/// The active record version and its guess counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ActiveRecord {
    pub(crate) version: RecordVersion,
    pub(crate) request_id: RequestId,
    pub(crate) guess_limit: GuessLimit,
    #[serde(with = "crate::bytes")]
    pub(crate) sealed_record: Vec<u8>,
    /// Guesses charged since activation or the last effective reset.
    pub(crate) guesses_used: u32,
    /// The number of the latest charge on this version (0 before the first); never goes
    /// back, not even on a reset.
    pub(crate) last_charge: ChargeNumber,
    /// The attempts charged since the last reset: exactly `guesses_used` of them, with the
    /// charges `last_charge - guesses_used + 1 ..= last_charge`.
    pub(crate) attempts: BTreeMap<AttemptId, ChargedAttempt>,
    /// The public OPRF half of the record.
    pub(crate) oprf: OprfRecord,
    /// The last reset that applied: its charge and the client's signature, so that a
    /// share-holder can check it for itself before it clears its own ledger.
    pub(crate) last_reset: Option<ResetProof>,
    /// The highest charge whose ticket a `ResetGuesses` has finished (0: none): a ticket
    /// of this charge or an earlier one is refused, so each finishes at most once.
    pub(crate) last_finished: ChargeNumber,
    /// The clock of the entry whose `RefreshShares` last re-dealt the record's shares (Unix
    /// ms; 0 before the first refresh): with the version, which is the clock of the
    /// registration, it tells how old the sharing is (`shares_dealt_at_ms`).
    pub(crate) shares_refreshed_at_ms: u64,
}

/// A reset as applied: the charge it named and the client's signature over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetProof {
    /// The charge the successful login ran under.
    pub charge: ChargeNumber,
    /// The client's reset signature.
    #[serde(with = "crate::bytes::array")]
    pub signature: [u8; 64],
}

/// One charged attempt, remembered so that its retry gets the same charge back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChargedAttempt {
    pub(crate) request_hash: [u8; 32],
    pub(crate) charge: ChargeNumber,
}

impl Account {
    /// The version an earlier `Stage` with this registration id created, if remembered.
    pub(crate) fn registered(&self, request_id: &RequestId) -> Option<RecordVersion> {
        self.registrations
            .iter()
            .find(|r| r.request_id == *request_id)
            .map(|r| r.version)
    }

    /// Remembers a registration, forgetting the oldest beyond [`REQUEST_IDS_KEPT`].
    pub(crate) fn remember(&mut self, registration: Registration) {
        self.registrations.push(registration);
        if self.registrations.len() > REQUEST_IDS_KEPT {
            self.registrations.remove(0);
        }
    }
}

impl ActiveRecord {
    /// When the record's sharing was dealt, Unix ms: at its registration (the version is
    /// the registration entry's clock in microseconds) or at its last refresh. Share repair
    /// keeps the sharing, so it does not count.
    pub(crate) fn shares_dealt_at_ms(&self) -> u64 {
        (self.version.get() / 1000).max(self.shares_refreshed_at_ms)
    }

    /// Makes a staged version active, with a fresh counter.
    pub(crate) fn from_staged(staged: StagedRecord) -> Self {
        Self {
            version: staged.version,
            request_id: staged.request_id,
            guess_limit: staged.guess_limit,
            sealed_record: staged.sealed_record,
            guesses_used: 0,
            last_charge: ChargeNumber(0),
            attempts: BTreeMap::new(),
            oprf: staged.oprf,
            last_reset: None,
            last_finished: ChargeNumber(0),
            shares_refreshed_at_ms: 0,
        }
    }

    /// Guesses left now.
    pub(crate) fn guesses_remaining(&self) -> u32 {
        self.guess_limit.get().saturating_sub(self.guesses_used)
    }

    /// Guesses that were left right after `charge`, a charge since the last reset.
    pub(crate) fn remaining_after(&self, charge: ChargeNumber) -> u32 {
        // Charges since the reset are consecutive and end at `last_charge`, so `charge` was
        // the `used_then`-th guess since the reset.
        let later = self.last_charge.get().saturating_sub(charge.get());
        let used_then = u64::from(self.guesses_used).saturating_sub(later);
        let used_then = u32::try_from(used_then).unwrap_or(u32::MAX);
        self.guess_limit.get().saturating_sub(used_then)
    }
}
