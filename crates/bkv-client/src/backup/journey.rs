//! The backup journey on top of the vault SDK: enable backup (a fresh key K behind a
//! password in the vault, or derived from a recovery code the person writes down), and get
//! K back on a new device with the password or the code. Encrypting the backup itself with
//! K is [`super::encrypt`] / [`super::Encryptor`].

use bkv_core::ids::{AccountId, RecordVersion};
use bkv_core::protocol::BackupKey;
use secrecy::SecretString;

use super::{BackupError, RecoveryCode};
use crate::{Recovered, VaultClient};

/// A backup just enabled: its key and how the key is protected.
#[derive(Debug)]
pub struct EnabledBackup {
    /// The backup key K. The app keeps it on the device (its keystore) to encrypt later
    /// backups.
    pub key: BackupKey,
    /// How K can be had back on a new device.
    pub protection: Protection,
}

/// How a backup key is protected.
#[derive(Debug)]
pub enum Protection {
    /// Behind a password in the vault, as this record version.
    Password {
        /// The active record version.
        version: RecordVersion,
    },
    /// Derived from this recovery code, which the person must write down: nothing else
    /// can restore the key.
    RecoveryCode(RecoveryCode),
}

impl VaultClient {
    /// Enables backup with a password: generates K, registers it under `password` in the
    /// vault and activates it (any previous version of the account's record is destroyed).
    /// `guess_limit` `None` takes the cluster's default.
    ///
    /// Enabling again replaces K: backups made under the previous K can no longer be
    /// restored. To keep the previous backup restorable until a new one is stored, encrypt
    /// with a fresh [`BackupKey::generate`] first and register that key with
    /// [`VaultClient::register_key`] once the backup is written (as `bkv backup create` does).
    pub async fn enable_backup_with_password(
        &self,
        account: &AccountId,
        password: SecretString,
        guess_limit: Option<u32>,
    ) -> Result<EnabledBackup, BackupError> {
        let registered = self.register(account, password, guess_limit).await?;
        Ok(EnabledBackup {
            key: registered.key,
            protection: Protection::Password {
                version: registered.version,
            },
        })
    }

    /// Restores K on a new device with the password. Spends one guess;
    /// [`BackupError::guesses_remaining`] says how many are left after a wrong one.
    pub async fn restore_key_with_password(
        &self,
        account: &AccountId,
        password: SecretString,
    ) -> Result<Recovered, BackupError> {
        Ok(self.recover(account, password).await?)
    }
}

/// Enables backup with a recovery code: a fresh 64-digit code, and K derived from it. The
/// vault is not involved; the code is the only way back to K.
pub fn enable_backup_with_recovery_code() -> EnabledBackup {
    let code = RecoveryCode::generate();
    EnabledBackup {
        key: code.backup_key(),
        protection: Protection::RecoveryCode(code),
    }
}

/// Restores K on a new device from the recovery code as the person typed it (spaces and
/// dashes allowed). A mistyped code is refused by its check digits; a well-formed code for
/// another backup gives a key that the backup's header refuses
/// ([`super::StreamError::WrongKey`]).
pub fn restore_key_with_code(typed: &str) -> Result<BackupKey, BackupError> {
    Ok(RecoveryCode::parse(typed)?.backup_key())
}
