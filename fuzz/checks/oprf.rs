//! What each fuzz target on bkv-core's OPRF parsers (`bkv_core::oprf`, protocol v2) asserts.
//! Shared, word for word, by the cargo-fuzz targets (`fuzz/fuzz_targets/oprf_*.rs` and the
//! others named below) and the bounded property tests
//! (`crates/bkv-core/tests/fuzz_props.rs`), which include this file with `#[path]`.
//!
//! Every function takes hostile bytes, must not panic, and panics (fails the run) when an
//! accepted input breaks the format's promise: fixed-length canonical encodings re-encode to
//! the very same bytes, refusals name the right field, and checks give the same answer
//! however their input is ordered.

use bkv_core::oprf::{
    BlindedElement, Commitment, DleqProof, EvaluatedElement, OprfError, P256PublicKey,
    ResetPublicKey, ShareCiphertext, check_commitments, combine, verify_evaluation,
};

/// The field a refusal names (errors about indices, thresholds and steps name none).
fn field(e: &OprfError) -> Option<&'static str> {
    match e {
        OprfError::WrongLength { what, .. }
        | OprfError::NotRistretto { what }
        | OprfError::Identity { what }
        | OprfError::NonCanonicalScalar { what }
        | OprfError::ZeroScalar { what }
        | OprfError::NotUncompressed { what, .. }
        | OprfError::NotOnCurve { what }
        | OprfError::NotEd25519 { what } => Some(what),
        _ => None,
    }
}

/// A refusal names `expected`.
fn assert_names(e: &OprfError, expected: &[&str]) {
    let named = field(e);
    assert!(
        named.is_some_and(|f| expected.contains(&f)),
        "refusal names {named:?}, not one of {expected:?}: {e:?}"
    );
}

/// One ristretto255 element parser: accepted bytes are 32, not the identity, and re-encode
/// to themselves.
fn element(data: &[u8], what: &str, parsed: Result<[u8; 32], OprfError>) -> bool {
    match parsed {
        Ok(bytes) => {
            assert_eq!(bytes.as_slice(), data, "{what}: not canonical");
            assert_ne!(bytes, [0; 32], "{what}: accepted the identity");
            true
        }
        Err(e) => {
            assert_names(&e, &[what]);
            false
        }
    }
}

/// `Commitment::parse`, `BlindedElement::parse`, `EvaluatedElement::parse`: each canonical,
/// and all three accept exactly the same bytes.
pub fn oprf_element(data: &[u8]) {
    let a = element(
        data,
        Commitment::WHAT,
        Commitment::parse(data).map(|e| *e.as_bytes()),
    );
    let b = element(
        data,
        BlindedElement::WHAT,
        BlindedElement::parse(data).map(|e| *e.as_bytes()),
    );
    let c = element(
        data,
        EvaluatedElement::WHAT,
        EvaluatedElement::parse(data).map(|e| *e.as_bytes()),
    );
    assert!(a == b && b == c, "element parsers disagree");
}

/// `DleqProof::parse`: accepted bytes are 64 and re-encode to themselves.
pub fn dleq_proof(data: &[u8]) {
    match DleqProof::parse(data) {
        Ok(p) => assert_eq!(p.to_bytes().as_slice(), data, "proof not canonical"),
        Err(e) => assert_names(&e, &["proof"]),
    }
}

/// `ShareCiphertext::parse`: 125 bytes kept as they are, whose ephemeral key parses.
pub fn share_ciphertext(data: &[u8]) {
    match ShareCiphertext::parse(data) {
        Ok(c) => {
            assert_eq!(c.as_bytes().as_slice(), data);
            assert!(P256PublicKey::parse(c.ephemeral_public()).is_ok());
        }
        Err(e) => assert_names(&e, &["share_ciphertext", "ephemeral_public_key"]),
    }
}

/// `P256PublicKey::parse`: 65 bytes, uncompressed, kept as they are.
pub fn p256_public_key(data: &[u8]) {
    match P256PublicKey::parse(data) {
        Ok(k) => {
            assert_eq!(k.as_bytes().as_slice(), data);
            assert_eq!(data[0], 0x04);
        }
        Err(e) => assert_names(&e, &["p256_public_key"]),
    }
}

/// `ResetPublicKey::parse`: accepted keys decompress and have large order.
pub fn reset_public_key(data: &[u8]) {
    match ResetPublicKey::parse(data) {
        Ok(k) => {
            assert_eq!(k.as_bytes().as_slice(), data);
            let key = ed25519_dalek::VerifyingKey::from_bytes(k.as_bytes())
                .expect("accepted key decompresses");
            assert!(!key.is_weak(), "accepted a small-order key");
        }
        Err(e) => assert_names(&e, &["reset_public_key"]),
    }
}

/// The layout of an `oprf_evaluation` input: `commitment (32) || blinded (32) ||
/// evaluated (32) || proof (64)`.
pub const EVALUATION_LEN: usize = 160;

/// Parses an `oprf_evaluation` input, or `None` if any part does not parse.
pub fn decode_evaluation(
    data: &[u8],
) -> Option<(Commitment, BlindedElement, EvaluatedElement, DleqProof)> {
    if data.len() != EVALUATION_LEN {
        return None;
    }
    Some((
        Commitment::parse(&data[..32]).ok()?,
        BlindedElement::parse(&data[32..64]).ok()?,
        EvaluatedElement::parse(&data[64..96]).ok()?,
        DleqProof::parse(&data[96..]).ok()?,
    ))
}

/// Whether an `oprf_evaluation` input parses and its proof verifies.
pub fn evaluation_accepted(data: &[u8]) -> bool {
    decode_evaluation(data).is_some_and(|(k, b, z, p)| verify_evaluation(&k, &b, &z, &p).is_ok())
}

/// `verify_evaluation` on hostile parts: no panic, the same answer twice, and a single
/// evaluation combines to itself (λ = 1).
pub fn oprf_evaluation(data: &[u8]) {
    let Some((k, b, z, p)) = decode_evaluation(data) else {
        return;
    };
    let first = verify_evaluation(&k, &b, &z, &p);
    assert_eq!(
        first,
        verify_evaluation(&k, &b, &z, &p),
        "not deterministic"
    );
    if let Err(e) = first {
        assert_eq!(e, OprfError::ProofRejected);
    }
    assert_eq!(
        combine(&[(1, z)]),
        Ok(z),
        "one evaluation combines to itself"
    );
}

/// Parses an `oprf_commitments` input: `threshold (u8) || (node id (u64, big-endian) ||
/// commitment (32))*`, at most 16 entries; `None` if an entry does not parse.
pub fn decode_commitments(data: &[u8]) -> Option<(usize, Vec<(u64, Commitment)>)> {
    let (&threshold, rest) = data.split_first()?;
    if rest.len() % 40 != 0 || rest.len() / 40 > 16 {
        return None;
    }
    let points = rest
        .chunks_exact(40)
        .map(|c| {
            let id = u64::from_be_bytes(c[..8].try_into().ok()?);
            Some((id, Commitment::parse(&c[8..]).ok()?))
        })
        .collect::<Option<Vec<_>>>()?;
    Some((usize::from(threshold), points))
}

/// Whether an `oprf_commitments` input parses and its commitments are consistent.
pub fn commitments_accepted(data: &[u8]) -> bool {
    decode_commitments(data).is_some_and(|(t, points)| check_commitments(&points, t).is_ok())
}

/// `check_commitments` on hostile sets: no panic, and the answer does not depend on which
/// `t` come first (points on one polynomial of degree t - 1 are so in any order).
pub fn oprf_commitments(data: &[u8]) {
    let Some((threshold, points)) = decode_commitments(data) else {
        return;
    };
    let forward = check_commitments(&points, threshold);
    let reversed: Vec<_> = points.iter().rev().copied().collect();
    let backward = check_commitments(&reversed, threshold);
    assert_eq!(
        forward.is_ok(),
        backward.is_ok(),
        "order changes the answer: {forward:?} / {backward:?}"
    );
    if let Err(e) = forward {
        assert!(
            matches!(
                e,
                OprfError::BadThreshold { .. }
                    | OprfError::ZeroIndex
                    | OprfError::DuplicateIndex { .. }
                    | OprfError::InconsistentCommitment { .. }
            ),
            "unexpected refusal {e:?}"
        );
    }
}
