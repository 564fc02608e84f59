//! The client's side of a recovery's OPRF: blind the input, and after the nodes answered,
//! unblind their combined evaluation and finalize (RFC 9497 §3.3.1 `Blind` and `Finalize`,
//! OPRF mode).

use std::fmt;

use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use rand::{CryptoRng, RngCore};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::suite::{CONTEXT_OPRF, finalize_hash, hash_to_group, random_nonzero_scalar};
use super::{BlindedElement, EvaluatedElement, HardenedPassword, OprfError, OprfInput};

/// The blind `r` of one recovery (zeroized on drop, redacted in `Debug`).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Blind(Scalar);

impl Blind {
    /// RFC 9497 `Blind(input)`: a random nonzero `r` and `B = r * HashToGroup(input)` with
    /// the OPRF-mode context. Fails only with [`OprfError::InvalidInput`] if the input hashes
    /// to the identity.
    pub fn start<R: RngCore + CryptoRng>(
        input: &OprfInput,
        rng: &mut R,
    ) -> Result<(Blind, BlindedElement), OprfError> {
        Self::with_scalar(random_nonzero_scalar(rng), input)
    }

    /// `Blind` with a given nonzero blind (RFC test vectors and bkv's vector file).
    pub(crate) fn with_scalar(
        blind: Scalar,
        input: &OprfInput,
    ) -> Result<(Blind, BlindedElement), OprfError> {
        debug_assert!(blind != Scalar::ZERO);
        let p = hash_to_group(input.as_bytes(), CONTEXT_OPRF);
        if p.is_identity() {
            return Err(OprfError::InvalidInput);
        }
        // The blind is nonzero and P is not the identity.
        let blinded = BlindedElement::from_point(p * blind);
        Ok((Blind(blind), blinded))
    }

    /// RFC 9497 `Finalize(input, blind, evaluated)`: unblinds `Z = k * B` (the combination of
    /// the nodes' verified evaluations, see [`super::combine`]) to `k * HashToGroup(input)`
    /// and hashes it with the input into the hardened password. `input` must be the one
    /// given to [`Blind::start`].
    pub fn finish(self, input: &OprfInput, evaluated: &EvaluatedElement) -> HardenedPassword {
        // The inverse and k * HashToGroup(input) are as secret as the password.
        let mut inverse = self.0.invert();
        let mut unblinded = evaluated.point() * inverse;
        let mut encoded = unblinded.compress().to_bytes();
        let mut y = finalize_hash(input.as_bytes(), &encoded);
        let hardened = HardenedPassword::new(y);
        inverse.zeroize();
        unblinded.zeroize();
        encoded.zeroize();
        y.zeroize();
        hardened
    }
}

impl fmt::Debug for Blind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Blind(<redacted>)")
    }
}
