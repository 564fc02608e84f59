//! `sealed_key`: K sealed by the client under its export key. Not secret (only the password
//! opens it), but its size is bounded everywhere it is accepted.

use std::fmt;

use super::{FormatError, MAX_SEALED_KEY_LEN, MIN_SEALED_KEY_LEN};

/// A `sealed_key` of a length the vault accepts (`MIN_SEALED_KEY_LEN..=MAX_SEALED_KEY_LEN`).
/// The vault cannot check more than its length: only the client can open it.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedKey(Vec<u8>);

impl SealedKey {
    /// Checks the length of a `sealed_key`.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, FormatError> {
        if bytes.len() > MAX_SEALED_KEY_LEN {
            return Err(FormatError::TooLarge {
                max: MAX_SEALED_KEY_LEN,
                actual: bytes.len(),
            });
        }
        if bytes.len() < MIN_SEALED_KEY_LEN {
            return Err(FormatError::TooShort {
                min: MIN_SEALED_KEY_LEN,
                actual: bytes.len(),
            });
        }
        Ok(Self(bytes))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, moved out.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for SealedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedKey({} bytes)", self.0.len())
    }
}
