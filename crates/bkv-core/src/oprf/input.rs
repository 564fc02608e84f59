//! The OPRF input of an account: `I2OSP(len(account), 2) || account || password`, the
//! bytes RFC 9497 hashes to the group and into the output.

use std::fmt;

use zeroize::Zeroizing;

use super::OprfError;
use crate::ids::AccountId;

/// An OPRF input of at most [`OprfInput::MAX_LEN`] bytes (it holds the password: zeroized on
/// drop, redacted in `Debug`).
pub struct OprfInput(Zeroizing<Vec<u8>>);

impl OprfInput {
    /// The longest input RFC 9497 allows: its length is written in two bytes.
    pub const MAX_LEN: usize = u16::MAX as usize;

    /// Any input of at most [`Self::MAX_LEN`] bytes (the RFC's test vectors use raw inputs; bkv
    /// uses [`oprf_input`]).
    pub fn new(bytes: &[u8]) -> Result<Self, OprfError> {
        Self::check(bytes.len())?;
        Ok(Self(Zeroizing::new(bytes.to_vec())))
    }

    fn check(len: usize) -> Result<(), OprfError> {
        if len > Self::MAX_LEN {
            return Err(OprfError::InputTooLong {
                actual: len,
                max: Self::MAX_LEN,
            });
        }
        Ok(())
    }

    /// The input bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for OprfInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OprfInput(<redacted>)")
    }
}

/// The OPRF input of `account` with `password` (the UTF-8 bytes the user typed):
/// `I2OSP(len(account), 2) || account || password`. Fails only for a password so long that
/// the input passes [`OprfInput::MAX_LEN`] (65,535 bytes in all).
pub fn oprf_input(account: &AccountId, password: &[u8]) -> Result<OprfInput, OprfError> {
    let account = account.as_bytes();
    let len = 2 + account.len() + password.len();
    OprfInput::check(len)?;
    let mut input = Zeroizing::new(Vec::with_capacity(len));
    // An account id is at most 128 bytes (`AccountId::MAX_LEN`).
    input.extend_from_slice(&super::suite::i2osp2(account.len()));
    input.extend_from_slice(account);
    input.extend_from_slice(password);
    Ok(OprfInput(input))
}
