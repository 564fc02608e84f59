//! A node's evaluation of its share on a blinded element, with the proof that it used the
//! share its commitment binds: RFC 9497 §2.2 `GenerateProof` / `VerifyProof` (a
//! Chaum-Pedersen proof that `log_G(K_i) == log_B(Z_i)`), in VOPRF mode (contextString
//! `"OPRFV1-\x01-ristretto255-SHA512"`), with `A = G`, `B = K_i`, `C = [B]`, `D = [Z_i]`.
//!
//! voprf keeps its proof functions private, so this is the RFC's text on curve25519-dalek,
//! checked against the RFC's VOPRF vectors and against voprf's client and server:
//!
//! ```text
//! seed = SHA-512(I2OSP(32, 2) || Bm || I2OSP(len(seedDST), 2) || seedDST)
//!        seedDST = "Seed-" || contextString, Bm = SerializeElement(K_i)
//! d_i  = HashToScalar(I2OSP(64, 2) || seed || I2OSP(i, 2) || I2OSP(32, 2) || C_i ||
//!                     I2OSP(32, 2) || D_i || "Composite")
//! M = Σ d_i C_i,  Z = Σ d_i D_i  (= k_i M)
//! prover:   r random, t2 = r G, t3 = r M, c = HashToScalar(I2OSP(32, 2) || Bm ||
//!           I2OSP(32, 2) || M || I2OSP(32, 2) || Z || I2OSP(32, 2) || t2 ||
//!           I2OSP(32, 2) || t3 || "Challenge"),  s = r - c k_i
//! verifier: t2 = s G + c K_i, t3 = s M + c Z, accept iff the same hash gives c
//! proof = SerializeScalar(c) || SerializeScalar(s), 64 bytes
//! ```
//!
//! HashToScalar's DST is `"HashToScalar-" || contextString`. The prover's secret
//! multiplications (`k_i B`, `r G`, `r M`) are constant-time; everything else works on public
//! values and uses variable-time multiscalar multiplication.

use std::fmt;

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::VartimeMultiscalarMul;
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::suite::{CONTEXT_VOPRF, hash_to_scalar, i2osp2, parse_nonzero_scalar};
use super::{
    BlindedElement, Commitment, ELEMENT_LEN, EvaluatedElement, KeyShare, OprfError, PROOF_LEN,
    SCALAR_LEN,
};

/// A proof of an evaluation: `c || s`, two canonical nonzero scalars (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DleqProof {
    c: Scalar,
    s: Scalar,
}

impl DleqProof {
    /// Length of the encoding, in bytes.
    pub const LEN: usize = PROOF_LEN;

    /// Parses `c || s`. Refuses another length, non-canonical scalars and zero (as voprf
    /// does; an honest prover gives zero with probability 2^-252).
    pub fn parse(bytes: &[u8]) -> Result<Self, OprfError> {
        if bytes.len() != PROOF_LEN {
            return Err(OprfError::WrongLength {
                what: "proof",
                expected: PROOF_LEN,
                actual: bytes.len(),
            });
        }
        let (c, s) = bytes.split_at(SCALAR_LEN);
        Ok(Self {
            c: parse_nonzero_scalar(c, "proof")?,
            s: parse_nonzero_scalar(s, "proof")?,
        })
    }

    /// The encoding `c || s`.
    pub fn to_bytes(&self) -> [u8; PROOF_LEN] {
        let mut out = [0u8; PROOF_LEN];
        out[..SCALAR_LEN].copy_from_slice(self.c.as_bytes());
        out[SCALAR_LEN..].copy_from_slice(self.s.as_bytes());
        out
    }
}

impl fmt::Debug for DleqProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DleqProof({})", hex::encode(self.to_bytes()))
    }
}

/// A node evaluates its share on the client's blinded element: `Z_i = k_i * B`, with a
/// proof against its commitment `K_i = k_i * G`.
pub fn evaluate_share<R: RngCore + CryptoRng>(
    share: &KeyShare,
    blinded: &BlindedElement,
    rng: &mut R,
) -> (EvaluatedElement, DleqProof) {
    let mut r = super::suite::random_nonzero_scalar(rng);
    let out = evaluate_share_with(share, blinded, &r);
    r.zeroize();
    out
}

/// [`evaluate_share`] with given proof randomness `r` (test vectors).
pub(crate) fn evaluate_share_with(
    share: &KeyShare,
    blinded: &BlindedElement,
    r: &Scalar,
) -> (EvaluatedElement, DleqProof) {
    // A nonzero share times a non-identity element.
    let evaluated = EvaluatedElement::from_point(blinded.point() * share.secret());
    let commitment = share.commitment();
    let proof = prove(
        share.secret(),
        (commitment.point(), commitment.as_bytes()),
        &[(blinded.point(), blinded.as_bytes())],
        &[(evaluated.point(), evaluated.as_bytes())],
        r,
    );
    (evaluated, proof)
}

/// Checks a node's evaluation against its commitment (the client, before it combines).
pub fn verify_evaluation(
    commitment: &Commitment,
    blinded: &BlindedElement,
    evaluated: &EvaluatedElement,
    proof: &DleqProof,
) -> Result<(), OprfError> {
    if verify(
        (commitment.point(), commitment.as_bytes()),
        &[(blinded.point(), blinded.as_bytes())],
        &[(evaluated.point(), evaluated.as_bytes())],
        proof,
    ) {
        Ok(())
    } else {
        Err(OprfError::ProofRejected)
    }
}

/// An element with its encoding.
pub(crate) type Element<'a> = (&'a RistrettoPoint, &'a [u8; ELEMENT_LEN]);

/// RFC 9497 `GenerateProof(k, G, B = pk, C = cs, D = ds)` with randomness `r`. `cs` and `ds`
/// have the same length, at most 65,535 (bkv uses one of each; the RFC's batch vector two).
pub(crate) fn prove(
    k: &Scalar,
    pk: Element<'_>,
    cs: &[Element<'_>],
    ds: &[Element<'_>],
    r: &Scalar,
) -> DleqProof {
    let (m, z) = composites(pk.1, cs, ds);
    let t2 = RistrettoPoint::mul_base(r);
    let t3 = m * r;
    let c = challenge(pk.1, &m, &z, &t2, &t3);
    let s = r - c * k;
    DleqProof { c, s }
}

/// RFC 9497 `VerifyProof(G, B = pk, C = cs, D = ds, proof)`.
pub(crate) fn verify(
    pk: Element<'_>,
    cs: &[Element<'_>],
    ds: &[Element<'_>],
    proof: &DleqProof,
) -> bool {
    let (m, z) = composites(pk.1, cs, ds);
    let t2 = RistrettoPoint::vartime_double_scalar_mul_basepoint(&proof.c, pk.0, &proof.s);
    let t3 = RistrettoPoint::vartime_multiscalar_mul([proof.s, proof.c], [m, z]);
    let expected = challenge(pk.1, &m, &z, &t2, &t3);
    expected.ct_eq(&proof.c).into()
}

/// RFC 9497 `ComputeComposites(B, C, D)`: `(M, Z) = (Σ d_i C_i, Σ d_i D_i)`. All inputs are
/// public, so variable time.
fn composites(
    bm: &[u8; ELEMENT_LEN],
    cs: &[Element<'_>],
    ds: &[Element<'_>],
) -> (RistrettoPoint, RistrettoPoint) {
    debug_assert_eq!(cs.len(), ds.len());
    let seed_dst: &[&[u8]] = &[b"Seed-", CONTEXT_VOPRF];
    let seed_dst_len: usize = seed_dst.iter().map(|p| p.len()).sum();
    let mut h = Sha512::new();
    h.update(i2osp2(ELEMENT_LEN));
    h.update(bm);
    h.update(i2osp2(seed_dst_len));
    for part in seed_dst {
        h.update(part);
    }
    let seed: [u8; 64] = h.finalize().into();
    let weights: Vec<Scalar> = cs
        .iter()
        .zip(ds)
        .enumerate()
        .map(|(i, (c, d))| {
            hash_to_scalar(
                &[
                    &i2osp2(seed.len()),
                    &seed,
                    &i2osp2(i),
                    &i2osp2(ELEMENT_LEN),
                    c.1,
                    &i2osp2(ELEMENT_LEN),
                    d.1,
                    b"Composite",
                ],
                CONTEXT_VOPRF,
            )
        })
        .collect();
    let m = RistrettoPoint::vartime_multiscalar_mul(&weights, cs.iter().map(|c| c.0));
    let z = RistrettoPoint::vartime_multiscalar_mul(&weights, ds.iter().map(|d| d.0));
    (m, z)
}

/// The challenge `c` of the transcript `(B, M, Z, t2, t3)`.
fn challenge(
    bm: &[u8; ELEMENT_LEN],
    m: &RistrettoPoint,
    z: &RistrettoPoint,
    t2: &RistrettoPoint,
    t3: &RistrettoPoint,
) -> Scalar {
    let len = i2osp2(ELEMENT_LEN);
    let [a0, a1, a2, a3] = [m, z, t2, t3].map(|p| p.compress().to_bytes());
    hash_to_scalar(
        &[
            &len,
            bm,
            &len,
            &a0,
            &len,
            &a1,
            &len,
            &a2,
            &len,
            &a3,
            b"Challenge",
        ],
        CONTEXT_VOPRF,
    )
}
