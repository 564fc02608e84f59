//! Audit events: what each applied command did, produced identically by every replica.

use serde::{Deserialize, Serialize};

use crate::ids::{AccountId, ChargeNumber, RecordVersion};

/// Kinds of audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// The cluster was bootstrapped.
    Bootstrapped,
    /// A new share map is in force.
    ShareMapSet,
    /// A record version was staged.
    Registered,
    /// A staged version became active.
    Activated,
    /// A guess was charged.
    GuessCharged,
    /// A recovery succeeded and the counter was reset (or left, if a later charge existed).
    Recovered,
    /// An account was deleted.
    Deleted,
    /// A record was destroyed (no guess left, or superseded by an activation).
    Destroyed,
    /// A voter got its share of a record by share repair.
    ShareRepaired,
    /// The shares of a record were refreshed (re-randomised, the key unchanged).
    SharesRefreshed,
}

impl AuditKind {
    /// The event's name as written in audit files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bootstrapped => "bootstrapped",
            Self::ShareMapSet => "share_map_set",
            Self::Registered => "registered",
            Self::Activated => "activated",
            Self::GuessCharged => "guess_charged",
            Self::Recovered => "recovered",
            Self::Deleted => "deleted",
            Self::Destroyed => "destroyed",
            Self::ShareRepaired => "share_repaired",
            Self::SharesRefreshed => "shares_refreshed",
        }
    }
}

/// One audit event. Holds ids and counters only; the node hashes the account before writing
/// it anywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// What happened.
    pub kind: AuditKind,
    /// The account concerned, if any.
    pub account: Option<AccountId>,
    /// The record version concerned, if any.
    pub version: Option<RecordVersion>,
    /// The charge concerned, if any.
    pub charge: Option<ChargeNumber>,
    /// Guesses remaining after the event, where it concerns guesses.
    pub guesses_remaining: Option<u32>,
}
