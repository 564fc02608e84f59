//! voprf (an independent RFC 9497 implementation) as the oracle: the same blinded element,
//! evaluation and output as its OPRF client and server for the same blind and key, and
//! proofs that each side's verifier accepts from the other.

use rand::RngCore;
use voprf::{
    BlindedElement as VBlinded, EvaluationElement, Group, OprfClient, OprfServer, Proof,
    Ristretto255, VoprfClient, VoprfServer,
};

use super::super::suite::random_nonzero_scalar;
use super::super::{
    Blind, BlindedElement, Commitment, DleqProof, EvaluatedElement, KeyShare, OprfError, OprfInput,
    OprfKey, evaluate_directly, evaluate_share, verify_evaluation,
};
use super::rng;

type Cs = Ristretto255;

/// Random inputs of a few lengths, including empty.
fn input(r: &mut impl RngCore, i: usize) -> Vec<u8> {
    let mut v = vec![0u8; [0, 1, 17, 200][i % 4]];
    r.fill_bytes(&mut v);
    v
}

#[test]
fn oprf_mode_matches_voprf_client_and_server() {
    let mut r = rng(1);
    for i in 0..8 {
        let key = OprfKey::generate(&mut r);
        let raw = input(&mut r, i);
        let input = OprfInput::new(&raw).expect("short");
        let blind_scalar = random_nonzero_scalar(&mut r);

        let (blind, blinded) = Blind::with_scalar(blind_scalar, &input).expect("blind");
        let theirs = OprfClient::<Cs>::deterministic_blind_unchecked(&raw, blind_scalar)
            .expect("voprf blind");
        assert_eq!(blinded.as_bytes()[..], theirs.message.serialize()[..]);

        let server = OprfServer::<Cs>::new_with_key(key.to_bytes().as_ref()).expect("key");
        let their_eval = server.blind_evaluate(&theirs.message);
        let share = KeyShare::from_bytes(1, key.to_bytes().as_ref()).expect("key");
        let (ours, proof) = evaluate_share(&share, &blinded, &mut r);
        assert_eq!(ours.as_bytes()[..], their_eval.serialize()[..]);
        assert_eq!(
            verify_evaluation(&share.commitment(), &blinded, &ours, &proof),
            Ok(())
        );

        let their_output = theirs.state.finalize(&raw, &their_eval).expect("finalize");
        let y = blind.finish(&input, &ours);
        assert_eq!(y.expose()[..], their_output[..]);
        let direct = evaluate_directly(&key, &input).expect("evaluate");
        assert_eq!(direct, y);
    }
}

#[test]
fn proofs_interoperate_with_voprf() {
    let mut r = rng(2);
    for i in 0..8 {
        let key = OprfKey::generate(&mut r);
        let raw = input(&mut r, i);
        let server = VoprfServer::<Cs>::new_with_key(key.to_bytes().as_ref()).expect("key");
        let pk = server.get_public_key();
        let share = KeyShare::from_bytes(7, key.to_bytes().as_ref()).expect("key");
        let commitment = share.commitment();
        assert_eq!(
            commitment.as_bytes()[..],
            Ristretto255::serialize_elem(pk)[..]
        );
        let client = VoprfClient::<Cs>::blind(&raw, &mut r).expect("voprf blind");
        let blinded = BlindedElement::parse(&client.message.serialize()).expect("element");

        // Our proof, voprf's verifier.
        let (evaluated, proof) = evaluate_share(&share, &blinded, &mut r);
        let their_eval = EvaluationElement::<Cs>::deserialize(evaluated.as_bytes()).expect("el");
        let their_proof = Proof::<Cs>::deserialize(&proof.to_bytes()).expect("proof");
        let finalized = client
            .state
            .finalize(&raw, &their_eval, &their_proof, pk)
            .expect("voprf accepts our proof");
        assert_eq!(
            finalized[..],
            server.evaluate(&raw).expect("evaluate")[..],
            "VOPRF output"
        );
        // A proof for another element: voprf refuses it.
        let other = VoprfClient::<Cs>::blind(b"other", &mut r).expect("blind");
        let (other_eval, _) = evaluate_share(
            &share,
            &BlindedElement::parse(&other.message.serialize()).expect("element"),
            &mut r,
        );
        let other_eval = EvaluationElement::<Cs>::deserialize(other_eval.as_bytes()).expect("el");
        assert!(
            client
                .state
                .finalize(&raw, &other_eval, &their_proof, pk)
                .is_err()
        );

        // voprf's proof, our verifier.
        let answer = server.blind_evaluate(&mut r, &client.message);
        let evaluated = EvaluatedElement::parse(&answer.message.serialize()).expect("element");
        let proof = DleqProof::parse(&answer.proof.serialize()).expect("proof");
        assert_eq!(
            verify_evaluation(&commitment, &blinded, &evaluated, &proof),
            Ok(())
        );
        let wrong_key =
            Commitment::parse(&VBlinded::<Cs>::serialize(&other.message)).expect("any element");
        assert_eq!(
            verify_evaluation(&wrong_key, &blinded, &evaluated, &proof),
            Err(OprfError::ProofRejected)
        );
    }
}
