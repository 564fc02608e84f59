//! Reset authorization: only a client that knows the password (so has OPAQUE's export key)
//! can sign the reset of a guess counter, and every node checks the signature when it
//! applies the reset.
//!
//! ```text
//! seed = HKDF-SHA512(ikm = export_key (64 bytes), salt = empty, info = "bkv/v2/reset-key"),
//!        32 bytes; the Ed25519 signing key (RFC 8032) with that seed
//! message = "bkv/v2/reset" || I2OSP(len(cluster_name), 2) || cluster_name ||
//!           I2OSP(len(account), 2) || account || I2OSP(version, 8) || I2OSP(charge, 8)
//!           (big-endian; built by [`crate::reset::reset_message`])
//! signature = Ed25519(seed, message), 64 bytes; checked with verify_strict
//! ```
//!
//! An empty HKDF salt is, per RFC 5869, the same as 64 zero bytes.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha512;
use zeroize::Zeroizing;

use super::{OprfError, RESET_PUBLIC_KEY_LEN, RESET_SIGNATURE_LEN};
use crate::protocol::ExportKey;

/// The HKDF info of the reset key's seed.
pub const RESET_KEY_INFO: &[u8] = b"bkv/v2/reset-key";

/// The client's reset signing key (zeroized on drop, redacted in `Debug`).
pub struct ResetKey(SigningKey);

impl ResetKey {
    /// Derives the reset key of an account from the OPAQUE export key of its registration
    /// (the same export key every login with the right password gives).
    pub fn derive(export_key: &ExportKey) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA512's limit of 255 * 64.
        Hkdf::<Sha512>::new(None, export_key.expose())
            .expand(RESET_KEY_INFO, seed.as_mut())
            .expect("32 bytes of output");
        Self(SigningKey::from_bytes(&seed))
    }

    /// The public key, stored in the record at registration.
    pub fn public(&self) -> [u8; RESET_PUBLIC_KEY_LEN] {
        self.0.verifying_key().to_bytes()
    }

    /// Signs a reset message ([`crate::reset::reset_message`]).
    pub fn sign(&self, message: &[u8]) -> [u8; RESET_SIGNATURE_LEN] {
        self.0.sign(message).to_bytes()
    }
}

impl fmt::Debug for ResetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResetKey(<redacted>)")
    }
}

/// A reset public key as a registration carries it: 32 bytes that decompress to an Ed25519
/// point of large order (a small-order key would let anyone forge; `verify_strict` refuses
/// those anyway, this refuses them at registration).
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "[u8; 32]", into = "[u8; 32]")]
pub struct ResetPublicKey([u8; RESET_PUBLIC_KEY_LEN]);

impl ResetPublicKey {
    /// Length of the encoding, in bytes.
    pub const LEN: usize = RESET_PUBLIC_KEY_LEN;

    /// Parses a reset public key.
    pub fn parse(bytes: &[u8]) -> Result<Self, OprfError> {
        let what = "reset_public_key";
        let array: [u8; RESET_PUBLIC_KEY_LEN] =
            bytes.try_into().map_err(|_| OprfError::WrongLength {
                what,
                expected: RESET_PUBLIC_KEY_LEN,
                actual: bytes.len(),
            })?;
        let key = VerifyingKey::from_bytes(&array).map_err(|_| OprfError::NotEd25519 { what })?;
        if key.is_weak() {
            return Err(OprfError::NotEd25519 { what });
        }
        Ok(Self(array))
    }

    /// The encoding.
    pub const fn as_bytes(&self) -> &[u8; RESET_PUBLIC_KEY_LEN] {
        &self.0
    }
}

impl TryFrom<[u8; RESET_PUBLIC_KEY_LEN]> for ResetPublicKey {
    type Error = OprfError;
    fn try_from(bytes: [u8; RESET_PUBLIC_KEY_LEN]) -> Result<Self, OprfError> {
        Self::parse(&bytes)
    }
}

impl From<ResetPublicKey> for [u8; RESET_PUBLIC_KEY_LEN] {
    fn from(k: ResetPublicKey) -> Self {
        k.0
    }
}

impl fmt::Debug for ResetPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResetPublicKey({})", hex::encode(self.0))
    }
}

/// Whether `signature` is a valid Ed25519 signature of `message` under `public`, by
/// `verify_strict` (canonical `R` and `S`, no small-order key or `R`): deterministic, the
/// same answer on every node.
pub fn verify_reset(
    public: &[u8; RESET_PUBLIC_KEY_LEN],
    message: &[u8],
    signature: &[u8; RESET_SIGNATURE_LEN],
) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(public) else {
        return false;
    };
    key.verify_strict(message, &Signature::from_bytes(signature))
        .is_ok()
}
