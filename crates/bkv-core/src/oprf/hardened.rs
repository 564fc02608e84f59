//! The hardened password `y`: RFC 9497's OPRF output for the account's input, the password
//! OPAQUE runs on in protocol v2.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::HARDENED_PASSWORD_LEN;

/// The 64-byte hardened password (zeroized on drop, redacted in `Debug`, compared in
/// constant time).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct HardenedPassword([u8; HARDENED_PASSWORD_LEN]);

impl HardenedPassword {
    /// Takes the OPRF output; the caller zeroizes its own copy.
    pub(crate) fn new(bytes: [u8; HARDENED_PASSWORD_LEN]) -> Self {
        Self(bytes)
    }

    /// The bytes, to hand to OPAQUE as the password.
    pub fn expose(&self) -> &[u8; HARDENED_PASSWORD_LEN] {
        &self.0
    }
}

impl PartialEq for HardenedPassword {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for HardenedPassword {}

impl fmt::Debug for HardenedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HardenedPassword(<redacted>)")
    }
}
