//! The backup key K: 32 random bytes that encrypt a client's backups.

use std::fmt;

use rand::RngCore;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretBox};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{BACKUP_KEY_LEN, FormatError};

/// The backup key K. Lives in a zeroizing heap box; `Debug` never shows it; equality is
/// constant-time.
pub struct BackupKey(SecretBox<[u8; BACKUP_KEY_LEN]>);

impl BackupKey {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        Self(SecretBox::init_with_mut(|k: &mut [u8; BACKUP_KEY_LEN]| {
            OsRng.fill_bytes(k)
        }))
    }

    /// Wraps key bytes. Arrays are `Copy`: the caller zeroizes its own copy if it keeps one.
    pub fn from_bytes(bytes: [u8; BACKUP_KEY_LEN]) -> Self {
        let mut bytes = Zeroizing::new(bytes);
        Self(SecretBox::init_with_mut(|k: &mut [u8; BACKUP_KEY_LEN]| {
            k.copy_from_slice(bytes.as_mut())
        }))
    }

    /// Parses key bytes of exactly [`BACKUP_KEY_LEN`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, FormatError> {
        if bytes.len() != BACKUP_KEY_LEN {
            return Err(FormatError::WrongLength {
                expected: BACKUP_KEY_LEN,
                actual: bytes.len(),
            });
        }
        Ok(Self(SecretBox::init_with_mut(
            |k: &mut [u8; BACKUP_KEY_LEN]| k.copy_from_slice(bytes),
        )))
    }

    /// Parses the key from 64 hex digits (as the CLI prints it).
    pub fn from_hex(hex_text: &str) -> Result<Self, FormatError> {
        let mut bytes = Zeroizing::new([0u8; BACKUP_KEY_LEN]);
        hex::decode_to_slice(hex_text.trim(), bytes.as_mut()).map_err(|_| {
            FormatError::WrongLength {
                expected: 2 * BACKUP_KEY_LEN,
                actual: hex_text.trim().len(),
            }
        })?;
        Self::from_slice(bytes.as_ref())
    }

    /// The key as 64 lowercase hex digits, for the CLI to show the user. Zeroized on drop.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.expose()))
    }

    /// The key bytes. Callers must not copy them into anything that is not zeroized.
    pub fn expose(&self) -> &[u8; BACKUP_KEY_LEN] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BackupKey(<redacted>)")
    }
}

impl PartialEq for BackupKey {
    fn eq(&self, other: &Self) -> bool {
        self.expose().ct_eq(other.expose()).into()
    }
}

impl Eq for BackupKey {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_redacted_and_round_trip_through_hex() {
        let a = BackupKey::generate();
        let b = BackupKey::generate();
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "BackupKey(<redacted>)");
        let hex_text = a.to_hex();
        assert_eq!(hex_text.len(), 64);
        assert!(!format!("{a:?}").contains(hex_text.as_str()));
        assert_eq!(BackupKey::from_hex(&hex_text).ok(), Some(a));
        assert!(BackupKey::from_hex("abcd").is_err());
        assert!(BackupKey::from_hex(&"zz".repeat(32)).is_err());
        assert!(BackupKey::from_slice(&[0u8; 31]).is_err());
        assert_eq!(
            BackupKey::from_bytes([7u8; 32]).expose(),
            BackupKey::from_slice(&[7u8; 32])
                .map(|k| *k.expose())
                .as_ref()
                .unwrap_or(&[0; 32])
        );
    }
}
