//! The account's OPRF key `k`, known to the client only while it registers, and the direct
//! evaluation of the OPRF under it (registration's way to the hardened password).

use std::fmt;

use curve25519_dalek::scalar::Scalar;
use rand::{CryptoRng, RngCore};
use voprf::{OprfServer, Ristretto255};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::suite::{parse_nonzero_scalar, random_nonzero_scalar};
use super::{HARDENED_PASSWORD_LEN, HardenedPassword, OprfError, OprfInput};

/// An OPRF key: a uniformly random nonzero ristretto255 scalar (zeroized on drop, redacted
/// in `Debug`). Its encoding is RFC 9497 `SerializeScalar`: 32 bytes, little-endian.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct OprfKey(Scalar);

impl OprfKey {
    /// Draws a fresh key.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self(random_nonzero_scalar(rng))
    }

    /// A key from its 32-byte canonical little-endian encoding (for test vectors); zero is
    /// refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OprfError> {
        parse_nonzero_scalar(bytes, "oprf_key").map(Self)
    }

    /// The encoding (for test vectors).
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The scalar.
    pub(crate) fn scalar(&self) -> &Scalar {
        &self.0
    }
}

impl fmt::Debug for OprfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OprfKey(<redacted>)")
    }
}

/// The hardened password of `input` under `key`, computed directly (the client knows `k`
/// while it registers): RFC 9497 `Evaluate` in OPRF mode,
/// `y = Finalize(input, k * HashToGroup(input))`. This is voprf's `OprfServer::evaluate`;
/// [`super::Blind`] reaches the same `y` without knowing `k`.
///
/// Fails only with [`OprfError::InvalidInput`] if the input hashes to the identity.
pub fn evaluate_directly(key: &OprfKey, input: &OprfInput) -> Result<HardenedPassword, OprfError> {
    let key_bytes = key.to_bytes();
    // The key is canonical and nonzero by construction: voprf accepts exactly those.
    let server = OprfServer::<Ristretto255>::new_with_key(key_bytes.as_ref())
        .expect("an OprfKey is a canonical nonzero scalar");
    // `evaluate` fails only for an input over 65,535 bytes (an `OprfInput` never is) or one
    // that hashes to the identity.
    let mut output = server
        .evaluate(input.as_bytes())
        .map_err(|_| OprfError::InvalidInput)?;
    let mut y = [0u8; HARDENED_PASSWORD_LEN];
    y.copy_from_slice(&output);
    output.as_mut_slice().zeroize();
    let hardened = HardenedPassword::new(y);
    y.zeroize();
    Ok(hardened)
}
