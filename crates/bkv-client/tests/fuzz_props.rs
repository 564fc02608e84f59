//! The fuzz target on bkv-client's reading of the share evaluations a vault returns
//! (protocol v2) as bounded property tests, so `make test` catches regressions without a
//! fuzzer: the check (`fuzz/checks/client.rs`, the very code the cargo-fuzz target runs) gets
//! random bytes and mutations of the committed seeds (`fuzz/corpus/share_evaluations/`), and
//! the seeds themselves are held to their names.
//!
//! `cargo test -p bkv-client --test fuzz_props -- --ignored write_seeds` rewrites the seeds.

#[path = "../../../fuzz/checks/client.rs"]
mod checks;
#[path = "../../../fuzz/checks/props.rs"]
mod props;

use bkv_core::oprf::{BlindedElement, OprfKey, evaluate_share, split};
use bkv_proto::v1::{KsfParams, RecoverStartResponse, ShareEvaluation};
use props::{CASES, check_seeds, mutated, random, write_seed};
use proptest::prelude::*;
use prost::Message;
use rand::rngs::OsRng;

const TARGET: &str = "share_evaluations";

/// Evaluation checks run a blind, up to a few proofs and an OPAQUE start: fewer cases.
const EVALUATION_CASES: u32 = CASES / 2;

#[test]
fn committed_seeds_match_their_names() {
    check_seeds(
        TARGET,
        |b| {
            checks::share_evaluations(b);
        },
        checks::share_evaluations,
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: EVALUATION_CASES, ..ProptestConfig::default() })]

    #[test]
    fn random_answers(bytes in random(400)) {
        checks::share_evaluations(&bytes);
    }

    #[test]
    fn mutated_answers(bytes in mutated(TARGET)) {
        checks::share_evaluations(&bytes);
    }
}

/// A vault's answer with `threshold` and these evaluations.
fn answer(threshold: u32, evaluations: Vec<ShareEvaluation>) -> Vec<u8> {
    RecoverStartResponse {
        version: 3000,
        charge: 1,
        guesses_remaining: 4,
        guess_limit: 5,
        ksf: Some(KsfParams {
            m_cost_kib: 8,
            t_cost: 1,
            p_cost: 1,
        }),
        threshold,
        evaluations,
    }
    .encode_to_vec()
}

/// Real evaluations of the check's blinded element by the holders `ids` of a key split
/// `t` of `ids.len()`.
fn evaluations(ids: &[u64], t: usize) -> Vec<ShareEvaluation> {
    let rng = &mut OsRng;
    let blinded = BlindedElement::parse(&checks::BLINDED_ELEMENT).expect("valid element");
    let key = OprfKey::generate(rng);
    split(&key, ids, t, rng)
        .expect("split")
        .iter()
        .map(|(share, commitment)| {
            let (z, proof) = evaluate_share(share, &blinded, rng);
            ShareEvaluation {
                node_id: share.index(),
                commitment: commitment.as_bytes().to_vec(),
                evaluated_element: z.as_bytes().to_vec(),
                proof: proof.to_bytes().to_vec(),
            }
        })
        .collect()
}

/// Rewrites the seed corpus of the `share_evaluations` target.
#[test]
#[ignore = "writes fuzz/corpus; run by `make fuzz-seeds`"]
fn write_seeds() {
    let three = evaluations(&[1, 2, 3], 2);
    let five = evaluations(&[1, 2, 3, 4, 5], 3);
    write_seed(TARGET, "valid-2-of-3", &answer(2, three[..2].to_vec()));
    write_seed(TARGET, "valid-3-of-5", &answer(3, five[2..].to_vec()));
    write_seed(TARGET, "invalid-too-many", &answer(2, three.clone()));
    write_seed(TARGET, "invalid-threshold-0", &answer(0, Vec::new()));
    let mut swapped = three[..2].to_vec();
    let proof = swapped[0].proof.clone();
    swapped[0].proof = swapped[1].proof.clone();
    swapped[1].proof = proof;
    write_seed(TARGET, "invalid-swapped-proofs", &answer(2, swapped));
    let twice = vec![three[0].clone(), three[0].clone()];
    write_seed(TARGET, "invalid-same-holder", &answer(2, twice));
    let mut holder_0 = three[..2].to_vec();
    holder_0[0].node_id = 0;
    write_seed(TARGET, "invalid-holder-0", &answer(2, holder_0));
    let mut foreign = three[..2].to_vec();
    foreign[1] = five[1].clone();
    foreign[1].commitment = three[1].commitment.clone();
    write_seed(TARGET, "invalid-other-key", &answer(2, foreign));
}
