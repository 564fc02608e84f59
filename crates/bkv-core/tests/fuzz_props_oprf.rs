//! The fuzz targets on bkv-core's OPRF parsers (protocol v2) as bounded property tests, so
//! `make test` catches regressions without a fuzzer: each check (`fuzz/checks/oprf.rs`, the
//! very code the cargo-fuzz targets run) gets random bytes and mutations of the committed
//! seeds (`fuzz/corpus/<target>/`), and the seeds themselves are held to their names.
//!
//! `cargo test -p bkv-core --test fuzz_props_oprf -- --ignored write_seeds` rewrites the
//! seeds.

#[path = "../../../fuzz/checks/oprf.rs"]
mod checks;
#[path = "../../../fuzz/checks/props.rs"]
mod props;

use bkv_core::AccountId;
use bkv_core::oprf::{
    Blind, BlindedElement, Commitment, DleqProof, EvaluatedElement, OprfKey, P256PublicKey,
    ResetKey, ResetPublicKey, ShareCiphertext, ShareContext, encrypt_share, evaluate_share,
    oprf_input, split,
};
use bkv_core::protocol::ExportKey;
use props::{CASES, check_seeds, mutated, random, write_seed};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// A fuzz target as the tests see it: its corpus name, its check, and whether its parser
/// accepts an input (what the seed names are held to).
type Target = (&'static str, fn(&[u8]), fn(&[u8]) -> bool);

const TARGETS: &[Target] = &[
    ("oprf_element", checks::oprf_element, |b| {
        Commitment::parse(b).is_ok()
    }),
    ("dleq_proof", checks::dleq_proof, |b| {
        DleqProof::parse(b).is_ok()
    }),
    ("share_ciphertext", checks::share_ciphertext, |b| {
        ShareCiphertext::parse(b).is_ok()
    }),
    ("p256_public_key", checks::p256_public_key, |b| {
        P256PublicKey::parse(b).is_ok()
    }),
    ("reset_public_key", checks::reset_public_key, |b| {
        ResetPublicKey::parse(b).is_ok()
    }),
    (
        "oprf_evaluation",
        checks::oprf_evaluation,
        checks::evaluation_accepted,
    ),
    (
        "oprf_commitments",
        checks::oprf_commitments,
        checks::commitments_accepted,
    ),
];

#[test]
fn committed_seeds_match_their_names() {
    for (target, check, accepts) in TARGETS {
        check_seeds(target, *check, accepts);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn oprf_parsers_random(which in 0..TARGETS.len(), bytes in random(200)) {
        (TARGETS[which].1)(&bytes);
    }

    #[test]
    fn oprf_parsers_mutated(
        (which, bytes) in (0..TARGETS.len()).prop_flat_map(|w| (Just(w), mutated(TARGETS[w].0))),
    ) {
        (TARGETS[which].1)(&bytes);
    }

    /// Random elements at exactly the right length: about one in eight is a valid encoding.
    #[test]
    fn oprf_element_random_32(bytes in proptest::collection::vec(any::<u8>(), 32)) {
        checks::oprf_element(&bytes);
    }
}

/// The P-256 generator, uncompressed: a valid share-receiving public key.
const P256_G: &str = "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296\
                      4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5";

/// Rewrites the seed corpora of the OPRF targets from real protocol values.
#[test]
#[ignore = "writes fuzz/corpus; run by `make fuzz-seeds`"]
fn write_seeds() {
    let rng = &mut StdRng::seed_from_u64(20);
    let account = AccountId::parse("alice").expect("valid");
    let input = oprf_input(&account, b"pw").expect("short");
    let key = OprfKey::generate(rng);
    let ids5 = [1u64, 2, 3, 4, 5];
    let shares = split(&key, &ids5, 3, rng).expect("split");
    let (_, blinded) = Blind::start(&input, rng).expect("blind");
    let (z, proof) = evaluate_share(&shares[0].0, &blinded, rng);
    let (_, other_proof) = evaluate_share(&shares[1].0, &blinded, rng);
    let commitment = shares[0].1;

    write_seed("oprf_element", "valid-commitment", commitment.as_bytes());
    write_seed("oprf_element", "valid-blinded", blinded.as_bytes());
    write_seed("oprf_element", "invalid-identity", &[0; 32]);
    let mut non_canonical = [0xff; 32];
    non_canonical[31] = 0x7f;
    write_seed("oprf_element", "invalid-non-canonical", &non_canonical);
    write_seed(
        "oprf_element",
        "invalid-short",
        &commitment.as_bytes()[..31],
    );

    let proof_bytes = proof.to_bytes();
    write_seed("dleq_proof", "valid-1", &proof_bytes);
    let mut zero_c = proof_bytes;
    zero_c[..32].fill(0);
    write_seed("dleq_proof", "invalid-zero-c", &zero_c);
    let mut big_s = proof_bytes;
    big_s[32..].fill(0xff);
    write_seed("dleq_proof", "invalid-non-canonical-s", &big_s);
    write_seed("dleq_proof", "invalid-short", &proof_bytes[..63]);

    let g = hex::decode(P256_G).expect("hex");
    let recipient = P256PublicKey::parse(&g).expect("generator");
    let context = ShareContext {
        cluster_name: "bkv-local".into(),
        account: account.clone(),
        node_id: 1,
        guess_limit: 10,
        reset_key: [7; 32],
        commitment,
    };
    let ciphertext = encrypt_share(&recipient, &shares[0].0, &context, rng);
    let ct = ciphertext.as_bytes();
    write_seed("share_ciphertext", "valid-1", ct);
    write_seed("share_ciphertext", "invalid-short", &ct[..124]);
    let mut compressed_tag = *ct;
    compressed_tag[0] = 0x02;
    write_seed(
        "share_ciphertext",
        "invalid-compressed-tag",
        &compressed_tag,
    );
    let mut off_curve = *ct;
    off_curve[64] ^= 1;
    write_seed("share_ciphertext", "invalid-off-curve", &off_curve);

    write_seed("p256_public_key", "valid-generator", &g);
    write_seed(
        "p256_public_key",
        "valid-ephemeral",
        ciphertext.ephemeral_public(),
    );
    let mut compressed = vec![0x02 | (g[64] & 1)];
    compressed.extend_from_slice(&g[1..33]);
    write_seed("p256_public_key", "invalid-compressed", &compressed);
    let mut off_curve = g.clone();
    off_curve[64] ^= 1;
    write_seed("p256_public_key", "invalid-off-curve", &off_curve);
    write_seed("p256_public_key", "invalid-identity", &[0]);

    let reset = ResetKey::derive(&ExportKey::take_from(&mut [3u8; 64]).expect("64 bytes"));
    write_seed("reset_public_key", "valid-1", &reset.public());
    let mut identity = [0u8; 32];
    identity[0] = 1;
    write_seed("reset_public_key", "invalid-identity", &identity);
    let mut order_two = [0xff; 32];
    order_two[0] = 0xec;
    order_two[31] = 0x7f;
    write_seed("reset_public_key", "invalid-order-two", &order_two);
    write_seed("reset_public_key", "invalid-short", &reset.public()[..31]);

    let evaluation = |k: &Commitment, b: &BlindedElement, z: &EvaluatedElement, p: &DleqProof| {
        [
            k.as_bytes().as_slice(),
            b.as_bytes(),
            z.as_bytes(),
            &p.to_bytes(),
        ]
        .concat()
    };
    let good = evaluation(&commitment, &blinded, &z, &proof);
    write_seed("oprf_evaluation", "valid-1", &good);
    write_seed(
        "oprf_evaluation",
        "invalid-other-proof",
        &evaluation(&commitment, &blinded, &z, &other_proof),
    );
    write_seed(
        "oprf_evaluation",
        "invalid-other-commitment",
        &evaluation(&shares[1].1, &blinded, &z, &proof),
    );
    write_seed("oprf_evaluation", "invalid-short", &good[..159]);

    let encode = |t: u8, points: &[(u64, Commitment)]| {
        let mut out = vec![t];
        for (x, k) in points {
            out.extend_from_slice(&x.to_be_bytes());
            out.extend_from_slice(k.as_bytes());
        }
        out
    };
    let points: Vec<(u64, Commitment)> = shares.iter().map(|(s, k)| (s.index(), *k)).collect();
    write_seed("oprf_commitments", "valid-3-of-5", &encode(3, &points));
    let two_of_three: Vec<(u64, Commitment)> = split(&key, &[7, 8, 1000], 2, rng)
        .expect("split")
        .iter()
        .map(|(s, k)| (s.index(), *k))
        .collect();
    write_seed(
        "oprf_commitments",
        "valid-2-of-3",
        &encode(2, &two_of_three),
    );
    let mut mixed = points.clone();
    mixed[4].1 = two_of_three[0].1;
    write_seed("oprf_commitments", "invalid-mixed", &encode(3, &mixed));
    write_seed(
        "oprf_commitments",
        "invalid-threshold-0",
        &encode(0, &points),
    );
    let mut duplicate = points.clone();
    duplicate[1].0 = 1;
    write_seed(
        "oprf_commitments",
        "invalid-duplicate",
        &encode(3, &duplicate),
    );
}
