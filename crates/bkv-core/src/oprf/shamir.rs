//! Shamir sharing of the OPRF key over the voters, in the exponent where it has to be public:
//! the client's [`split`], the nodes' [`check_commitments`] on a registration, and the
//! client's [`combine`] of the nodes' evaluations.
//!
//! Share index `x_i` is the voter's node id as a scalar. With `T` a set of distinct indices,
//! the Lagrange basis polynomial of `i` in `T` at `x` is
//! `L_i(x) = Π_{j in T, j != i} (x - x_j) / (x_i - x_j)`; at 0 it is the coefficient
//! `λ_i = Π_{j != i} x_j / (x_j - x_i)`. Everything computed from indices, commitments and
//! evaluations is public and uses variable-time multiscalar multiplication; the split itself
//! (secret coefficients) uses constant-time arithmetic only.

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use super::{Commitment, EvaluatedElement, KeyShare, OprfError, OprfKey};

/// Splits `key` into `threshold`-of-`indices.len()` shares, one per index (the voters' node
/// ids, each nonzero, no repeats), with their commitments, in the order of `indices`.
///
/// The polynomial is `f(x) = k + a_1 x + ... + a_{t-1} x^{t-1}` with uniformly random
/// `a_j`; share `k_i = f(x_i)`, commitment `K_i = k_i * G`. (A zero share, probability about
/// n / 2^252, makes it draw the coefficients again: a zero share would commit to the
/// identity, which the nodes refuse.)
pub fn split<R: RngCore + CryptoRng>(
    key: &OprfKey,
    indices: &[u64],
    threshold: usize,
    rng: &mut R,
) -> Result<Vec<(KeyShare, Commitment)>, OprfError> {
    check_threshold(threshold, indices.len())?;
    check_indices(indices.iter().copied())?;
    loop {
        let coefficients: Zeroizing<Vec<Scalar>> =
            Zeroizing::new((1..threshold).map(|_| Scalar::random(rng)).collect());
        match split_with(key, &coefficients, indices, threshold) {
            Err(OprfError::ZeroScalar { .. }) => continue,
            other => return other,
        }
    }
}

/// [`split`] with given coefficients `a_1 .. a_{t-1}` (test vectors). Refuses a polynomial
/// that gives some index a zero share.
pub(crate) fn split_with(
    key: &OprfKey,
    coefficients: &[Scalar],
    indices: &[u64],
    threshold: usize,
) -> Result<Vec<(KeyShare, Commitment)>, OprfError> {
    check_threshold(threshold, indices.len())?;
    check_indices(indices.iter().copied())?;
    debug_assert_eq!(coefficients.len(), threshold - 1);
    indices
        .iter()
        .map(|&index| {
            let x = Scalar::from(index);
            // Horner: ((a_{t-1} x + a_{t-2}) x + ...) x + k.
            let mut value = Zeroizing::new(Scalar::ZERO);
            for a in coefficients.iter().rev() {
                *value = *value * x + a;
            }
            *value = *value * x + key.scalar();
            if *value == Scalar::ZERO {
                return Err(OprfError::ZeroScalar { what: "key_share" });
            }
            let share = KeyShare::new(index, *value);
            let commitment = share.commitment();
            Ok((share, commitment))
        })
        .collect()
}

/// Checks a registration's commitments `(x_i, K_i)` for all `n` voters against a threshold
/// `t` (`1 <= t <= n`): indices nonzero and distinct (the commitments parsed, so valid and
/// not the identity), and every `K_j` after the first `t` equal to
/// `Σ_{i < t} L_i(x_j) K_i`, the polynomial the first `t` define. A node runs this before it
/// stages a registration; it does not show the client knows the shares, only that they are
/// the shares of one key.
pub fn check_commitments(points: &[(u64, Commitment)], threshold: usize) -> Result<(), OprfError> {
    check_threshold(threshold, points.len())?;
    check_indices(points.iter().map(|(x, _)| *x))?;
    let (first, rest) = points.split_at(threshold);
    let xs: Vec<Scalar> = first.iter().map(|(x, _)| Scalar::from(*x)).collect();
    let bases: Vec<RistrettoPoint> = first.iter().map(|(_, k)| *k.point()).collect();
    for (index, commitment) in rest {
        let weights = lagrange(&xs, &Scalar::from(*index));
        let expected = RistrettoPoint::vartime_multiscalar_mul(&weights, &bases);
        if expected != *commitment.point() {
            return Err(OprfError::InconsistentCommitment {
                index: *index,
                threshold,
            });
        }
    }
    Ok(())
}

/// Combines the nodes' evaluations `(x_i, Z_i)` into `Z = Σ λ_i Z_i`, with the Lagrange
/// coefficients at 0 over exactly the indices given. With `t` verified evaluations of shares
/// of `k` this is `k * B`; with fewer it is unrelated to `k`. The caller verifies each
/// evaluation's proof first ([`super::verify_evaluation`]).
pub fn combine(evaluations: &[(u64, EvaluatedElement)]) -> Result<EvaluatedElement, OprfError> {
    if evaluations.is_empty() {
        return Err(OprfError::NoEvaluations);
    }
    check_indices(evaluations.iter().map(|(x, _)| *x))?;
    let xs: Vec<Scalar> = evaluations.iter().map(|(x, _)| Scalar::from(*x)).collect();
    let weights = lagrange(&xs, &Scalar::ZERO);
    let combined = RistrettoPoint::vartime_multiscalar_mul(
        &weights,
        evaluations.iter().map(|(_, z)| z.point()),
    );
    if combined.is_identity() {
        return Err(OprfError::IdentityCombination);
    }
    Ok(EvaluatedElement::from_point(combined))
}

/// `Σ λ_i K_i`: the point that commitments `(x_i, K_i)` (distinct indices, checked by the
/// caller) interpolate to at 0, `k·G` for `t` commitments of shares of `k` (public: any `t`
/// commitments of a record give it).
pub(crate) fn commitment_at_zero(points: &[(u64, Commitment)]) -> RistrettoPoint {
    let xs: Vec<Scalar> = points.iter().map(|(x, _)| Scalar::from(*x)).collect();
    let weights = lagrange(&xs, &Scalar::ZERO);
    RistrettoPoint::vartime_multiscalar_mul(&weights, points.iter().map(|(_, k)| k.point()))
}

/// The Lagrange coefficients at 0 of the indices `xs` (public; test vectors show them).
#[cfg(test)]
pub(crate) fn lagrange_at_zero(indices: &[u64]) -> Result<Vec<Scalar>, OprfError> {
    check_indices(indices.iter().copied())?;
    let xs: Vec<Scalar> = indices.iter().map(|x| Scalar::from(*x)).collect();
    Ok(lagrange(&xs, &Scalar::ZERO))
}

/// `L_i(at)` for every `i`, over distinct `xs`.
pub(crate) fn lagrange(xs: &[Scalar], at: &Scalar) -> Vec<Scalar> {
    let mut numerators = Vec::with_capacity(xs.len());
    let mut denominators = Vec::with_capacity(xs.len());
    for (i, xi) in xs.iter().enumerate() {
        let mut num = Scalar::ONE;
        let mut den = Scalar::ONE;
        for (j, xj) in xs.iter().enumerate() {
            if i != j {
                num *= at - xj;
                den *= xi - xj;
            }
        }
        numerators.push(num);
        denominators.push(den);
    }
    // Distinct indices: no denominator is zero.
    Scalar::batch_invert(&mut denominators);
    numerators
        .iter()
        .zip(&denominators)
        .map(|(n, d)| n * d)
        .collect()
}

fn check_threshold(threshold: usize, n: usize) -> Result<(), OprfError> {
    if threshold == 0 || threshold > n {
        return Err(OprfError::BadThreshold { threshold, n });
    }
    Ok(())
}

/// Indices nonzero and pairwise distinct (distinct u64 are distinct scalars: 2^64 is far
/// below the group order).
pub(crate) fn check_indices(indices: impl Iterator<Item = u64>) -> Result<(), OprfError> {
    let mut sorted: Vec<u64> = indices.collect();
    sorted.sort_unstable();
    if sorted.first() == Some(&0) {
        return Err(OprfError::ZeroIndex);
    }
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(OprfError::DuplicateIndex { index: w[0] });
    }
    Ok(())
}
