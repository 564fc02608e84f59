//! What the fuzz target on bkv-client's reading of a vault's answers asserts: the share
//! evaluations of `RecoverStart` (protocol v2), which a faulty or lying vault controls
//! entirely. Shared by the cargo-fuzz target (`fuzz/fuzz_targets/share_evaluations.rs`) and
//! the bounded property tests (`crates/bkv-client/tests/fuzz_props.rs`), which include this
//! file with `#[path]`.

use bkv_client::flow::ShareEvaluation;
use bkv_client::{ClientError, Recovery, SecretString};
use bkv_core::AccountId;
use bkv_core::oprf::{
    BlindedElement, Commitment, DleqProof, EvaluatedElement, combine, verify_evaluation,
};
use bkv_proto::v1::RecoverStartResponse;
use prost::Message;

/// The blinded element every evaluation is checked against (a real one; the seeds' node
/// answers are evaluations of it).
pub const BLINDED_ELEMENT: [u8; 32] = [
    0xb2, 0xd9, 0xc5, 0xdd, 0x45, 0x42, 0xa9, 0xf7, 0x01, 0x5d, 0x8e, 0x1c, 0xf6, 0xd6, 0x97, 0xf5,
    0x3a, 0xd9, 0x54, 0xb6, 0x30, 0xef, 0x7b, 0x5a, 0x24, 0x72, 0x1e, 0xfa, 0x71, 0xfe, 0xbc, 0x7b,
];

/// Whether evaluations are ones a client must accept, stated from docs/PROTOCOL.md §4 step 3:
/// exactly `threshold` of them, from distinct nonzero node ids, each part parsing and each
/// proof verifying against its commitment, combining to an element.
fn acceptable(threshold: u32, evaluations: &[ShareEvaluation], blinded: &BlindedElement) -> bool {
    if threshold == 0 || evaluations.len() != threshold as usize {
        return false;
    }
    let mut ids: Vec<u64> = evaluations.iter().map(|e| e.node_id).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != evaluations.len() || ids.first() == Some(&0) {
        return false;
    }
    let mut points = Vec::with_capacity(evaluations.len());
    for e in evaluations {
        let (Ok(k), Ok(z), Ok(proof)) = (
            Commitment::parse(&e.commitment),
            EvaluatedElement::parse(&e.evaluated_element),
            DleqProof::parse(&e.proof),
        ) else {
            return false;
        };
        if verify_evaluation(&k, blinded, &z, &proof).is_err() {
            return false;
        }
        points.push((e.node_id, z));
    }
    combine(&points).is_ok()
}

/// A `RecoverStartResponse` from the vault, decoded by prost, its evaluations checked and
/// combined by `Recovery::harden` as `VaultClient` does: accepted exactly when the protocol's
/// rules hold, and a refusal is `BadEvaluations` (the vault is faulty; never taken for a
/// wrong password). Answers whether the evaluations were accepted.
pub fn share_evaluations(data: &[u8]) -> bool {
    let Ok(response) = RecoverStartResponse::decode(data) else {
        return false;
    };
    let evaluations: Vec<ShareEvaluation> = response
        .evaluations
        .iter()
        .map(ShareEvaluation::from)
        .collect();
    let blinded = BlindedElement::parse(&BLINDED_ELEMENT).expect("a valid element");
    let expected = acceptable(response.threshold, &evaluations, &blinded);
    let account = AccountId::parse("alice").expect("valid account");
    let (recovery, _) =
        Recovery::start(&account, SecretString::from("pw")).expect("a short password");
    let got = recovery.harden(&BLINDED_ELEMENT, response.threshold, &evaluations);
    match &got {
        Ok((_, credential_request)) => {
            assert!(expected, "accepted evaluations that break the rules");
            assert_eq!(
                credential_request.len(),
                bkv_core::protocol::CREDENTIAL_REQUEST_LEN
            );
        }
        Err(ClientError::BadEvaluations(_)) => {
            assert!(!expected, "refused evaluations that follow the rules");
        }
        Err(e) => panic!("refusal is not BadEvaluations: {e}"),
    }
    got.is_ok()
}
