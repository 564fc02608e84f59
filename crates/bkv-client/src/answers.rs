//! What the SDK's calls return: a registered key, a recovered key, an account's status.

use std::fmt;

use bkv_core::ids::RecordVersion;
use bkv_core::protocol::BackupKey;

/// A registered and activated backup key.
pub struct Registered {
    /// The active record version.
    pub version: RecordVersion,
    /// The backup key now behind the password.
    pub key: BackupKey,
}

/// A recovered backup key.
pub struct Recovered {
    /// The record version recovered.
    pub version: RecordVersion,
    /// The backup key.
    pub key: BackupKey,
    /// Guesses that were left after this attempt's charge, before the good password reset
    /// the counter (the record's limit less one if no wrong guess came before).
    pub guesses_remaining_before: u32,
    /// The record's guess limit (what the counter is back to now).
    pub guess_limit: u32,
}

/// A recovered backup key, registered again with fresh shares
/// (`VaultClient::recover_and_reshare`).
#[derive(Debug)]
pub struct Reshared {
    /// The recovery (its version is the record recovered, now replaced if `reshared` is
    /// `Ok`).
    pub recovered: Recovered,
    /// The new active version, or why registering again failed (the recovered record then
    /// stays active).
    pub reshared: Result<RecordVersion, crate::VaultError>,
}

/// What the vault holds for the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountStatus {
    /// The record's life-cycle state.
    pub state: RecordState,
    /// The active (or destroyed) version, if any.
    pub version: Option<RecordVersion>,
    /// Guesses charged since the last successful recovery.
    pub guesses_used: u32,
    /// The record's guess limit.
    pub guess_limit: u32,
    /// A registered but not yet activated version, if any.
    pub staged_version: Option<RecordVersion>,
}

/// The state of an account's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordState {
    /// No active record.
    Absent,
    /// An active record that can be recovered.
    Active,
    /// Destroyed after too many wrong guesses; never recoverable.
    Destroyed,
}

impl RecordState {
    /// `absent`, `active` or `destroyed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Absent => "absent",
            Self::Active => "active",
            Self::Destroyed => "destroyed",
        }
    }
}

impl fmt::Display for RecordState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Registered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registered")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Recovered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recovered")
            .field("version", &self.version)
            .field("guesses_remaining_before", &self.guesses_remaining_before)
            .field("guess_limit", &self.guess_limit)
            .finish_non_exhaustive()
    }
}
