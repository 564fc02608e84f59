//! RFC 9497's ristretto255-SHA512 ciphersuite as this module uses it: the context strings of
//! its two modes, `HashToGroup`, `HashToScalar`, the `Finalize` hash and scalar encoding.
//!
//! `HashToGroup` and `HashToScalar` are voprf's (expand_message_xmd with SHA-512, then
//! ristretto255's one-way map or a wide reduction, RFC 9380 and RFC 9497 §4.1); the rest is
//! a few lines on curve25519-dalek.

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha512};
use voprf::{Group, Ristretto255};
use zeroize::Zeroizing;

use super::{ELEMENT_LEN, OprfError};

/// The ciphersuite identifier of RFC 9497 §4.1.
pub const SUITE_ID: &[u8] = b"ristretto255-SHA512";

/// `contextString` of OPRF mode (0x00): blind, evaluate, finalize.
pub const CONTEXT_OPRF: &[u8] = b"OPRFV1-\x00-ristretto255-SHA512";

/// `contextString` of VOPRF mode (0x01): the evaluation proofs.
pub const CONTEXT_VOPRF: &[u8] = b"OPRFV1-\x01-ristretto255-SHA512";

/// `I2OSP(n, 2)` of a length this module has bounded below 2^16.
pub(crate) fn i2osp2(n: usize) -> [u8; 2] {
    // Every caller passes a length it checked (OPRF inputs) or a constant; 65,535 is the
    // ceiling RFC 9497 puts on all of them.
    u16::try_from(n)
        .expect("lengths hashed here are below 2^16")
        .to_be_bytes()
}

/// RFC 9497 `HashToGroup(input)` with `DST = "HashToGroup-" || context`.
pub(crate) fn hash_to_group(input: &[u8], context: &[u8]) -> RistrettoPoint {
    // expand_message_xmd only fails for an empty or over-long DST or output length; both are
    // constants here.
    Ristretto255::hash_to_curve::<Sha512>(&[input], &[b"HashToGroup-", context])
        .expect("constant DST and output length")
}

/// RFC 9497 `HashToScalar(parts)` with `DST = "HashToScalar-" || context`.
pub(crate) fn hash_to_scalar(parts: &[&[u8]], context: &[u8]) -> Scalar {
    // As for `hash_to_group`: only constant parameters can make it fail.
    Ristretto255::hash_to_scalar::<Sha512>(parts, &[b"HashToScalar-", context])
        .expect("constant DST and output length")
}

/// RFC 9497 `Finalize`'s hash: `SHA-512(I2OSP(len(input), 2) || input || I2OSP(32, 2) ||
/// unblinded || "Finalize")`. The caller has checked `input.len() < 2^16`.
pub(crate) fn finalize_hash(input: &[u8], unblinded: &[u8; ELEMENT_LEN]) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update(i2osp2(input.len()));
    h.update(input);
    h.update(i2osp2(ELEMENT_LEN));
    h.update(unblinded);
    h.update(b"Finalize");
    h.finalize().into()
}

/// A uniformly random nonzero scalar (RFC 9497 `RandomScalar`).
pub(crate) fn random_nonzero_scalar<R: RngCore + CryptoRng>(rng: &mut R) -> Scalar {
    loop {
        let s = Scalar::random(rng);
        if s != Scalar::ZERO {
            return s;
        }
    }
}

/// A scalar from its 32-byte little-endian canonical encoding; zero is refused too.
pub(crate) fn parse_nonzero_scalar(bytes: &[u8], what: &'static str) -> Result<Scalar, OprfError> {
    if bytes.len() != 32 {
        return Err(OprfError::WrongLength {
            what,
            expected: 32,
            actual: bytes.len(),
        });
    }
    // The bytes may be a secret (a key share): keep the copy in a zeroizing buffer.
    let mut array = Zeroizing::new([0u8; 32]);
    array.copy_from_slice(bytes);
    let scalar: Option<Scalar> = Scalar::from_canonical_bytes(*array).into();
    let scalar = scalar.ok_or(OprfError::NonCanonicalScalar { what })?;
    if scalar == Scalar::ZERO {
        return Err(OprfError::ZeroScalar { what });
    }
    Ok(scalar)
}
