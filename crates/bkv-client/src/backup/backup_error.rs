//! Why a step of the backup journey failed: the vault's answer (with the guesses left), a
//! mistyped recovery code, or the backup stream.

use super::{RecoveryCodeError, StreamError};
use crate::VaultError;

/// Why enabling backup, restoring its key, or encrypting or decrypting a backup failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupError {
    /// The vault refused or failed (a wrong password says how many guesses are left).
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The recovery code is malformed or mistyped.
    #[error(transparent)]
    RecoveryCode(#[from] RecoveryCodeError),
    /// The backup could not be written or read (altered, truncated, another key, I/O).
    #[error(transparent)]
    Stream(#[from] StreamError),
}

impl BackupError {
    /// The guesses left on the record, when the vault refused a wrong password.
    pub fn guesses_remaining(&self) -> Option<u32> {
        match self {
            Self::Vault(VaultError::WrongPassword { guesses_remaining }) => {
                Some(*guesses_remaining)
            }
            _ => None,
        }
    }
}
