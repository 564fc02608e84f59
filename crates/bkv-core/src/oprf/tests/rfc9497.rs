//! RFC 9497 appendix A.1 (ristretto255-SHA512): OPRF mode checks hash-to-group, blind,
//! evaluate (a share with the vector's key is `t = 1`) and finalize; VOPRF mode checks the
//! proof, byte for byte with the vector's proof randomness, and its verification.

use curve25519_dalek::scalar::Scalar;

use super::super::dleq::{self, DleqProof, evaluate_share_with};
use super::super::suite::{CONTEXT_VOPRF, finalize_hash, hash_to_group};
use super::super::{
    Blind, BlindedElement, Commitment, EvaluatedElement, KeyShare, OprfInput, OprfKey,
    evaluate_directly, verify_evaluation,
};
use super::{scalar_hex, unhex};

const BLIND: &str = "64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706";

/// A.1.1, OPRF mode.
const OPRF_SK: &str = "5ebcea5ee37023ccb9fc2d2019f9d7737be85591ae8652ffa9ef0f4d37063b0e";

struct OprfVector {
    input: &'static str,
    blinded: &'static str,
    evaluated: &'static str,
    output: &'static str,
}

const OPRF_VECTORS: [OprfVector; 2] = [
    OprfVector {
        input: "00",
        blinded: "609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c",
        evaluated: "7ec6578ae5120958eb2db1745758ff379e77cb64fe77b0b2d8cc917ea0869c7e",
        output: "527759c3d9366f277d8c6020418d96bb393ba2afb20ff90df23fb7708264e2f3\
                 ab9135e3bd69955851de4b1f9fe8a0973396719b7912ba9ee8aa7d0b5e24bcf6",
    },
    OprfVector {
        input: "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
        blinded: "da27ef466870f5f15296299850aa088629945a17d1f5b7f5ff043f76b3c06418",
        evaluated: "b4cbf5a4f1eeda5a63ce7b77c7d23f461db3fcab0dd28e4e17cecb5c90d02c25",
        output: "f4a74c9c592497375e796aa837e907b1a045d34306a749db9f34221f7e750cb4\
                 f2a6413a6bf6fa5e19ba6348eb673934a722a7ede2e7621306d18951e7cf2c73",
    },
];

/// A.1.2, VOPRF mode.
const VOPRF_SK: &str = "e6f73f344b79b379f1a0dd37e07ff62e38d9f71345ce62ae3a9bc60b04ccd909";
const VOPRF_PK: &str = "c803e2cc6b05fc15064549b5920659ca4a77b2cca6f04f6b357009335476ad4e";
const PROOF_R: &str = "222a5e897cf59db8145db8d16e597e8facb80ae7d4e26d9881aa6f61d645fc0e";

struct VoprfVector {
    input: &'static str,
    blinded: &'static str,
    evaluated: &'static str,
    proof: &'static str,
    output: &'static str,
}

const VOPRF_VECTORS: [VoprfVector; 2] = [
    VoprfVector {
        input: "00",
        blinded: "863f330cc1a1259ed5a5998a23acfd37fb4351a793a5b3c090b642ddc439b945",
        evaluated: "aa8fa048764d5623868679402ff6108d2521884fa138cd7f9c7669a9a014267e",
        proof: "ddef93772692e535d1a53903db24367355cc2cc78de93b3be5a8ffcc6985dd06\
                6d4346421d17bf5117a2a1ff0fcb2a759f58a539dfbe857a40bce4cf49ec600d",
        output: "b58cfbe118e0cb94d79b5fd6a6dafb98764dff49c14e1770b566e42402da1a7d\
                 a4d8527693914139caee5bd03903af43a491351d23b430948dd50cde10d32b3c",
    },
    VoprfVector {
        input: "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
        blinded: "cc0b2a350101881d8a4cba4c80241d74fb7dcbfde4a61fde2f91443c2bf9ef0c",
        evaluated: "60a59a57208d48aca71e9e850d22674b611f752bed48b36f7a91b372bd7ad468",
        proof: "401a0da6264f8cf45bb2f5264bc31e109155600babb3cd4e5af7d181a2c9dc0a\
                67154fabf031fd936051dec80b0b6ae29c9503493dde7393b722eafdf5a50b02",
        output: "8a9a2f3c7f085b65933594309041fc1898d42d0858e59f90814ae90571a6df60\
                 356f4610bf816f27afdd84f47719e480906d27ecd994985890e5f539e7ea74b6",
    },
];

/// A.1.2.3, VOPRF mode, batch of two (the second element's blind and the proof
/// randomness differ).
const BATCH_BLINDED_2: &str = "90a0145ea9da29254c3a56be4fe185465ebb3bf2a1801f7124bbbadac751e654";
const BATCH_EVALUATED_2: &str = "cc5ac221950a49ceaa73c8db41b82c20372a4c8d63e5dded2db920b7eee36a2a";
const BATCH_PROOF: &str = "cc203910175d786927eeb44ea847328047892ddf8590e723c37205cb74600b0a\
                           5ab5337c8eb4ceae0494c2cf89529dcf94572ed267473d567aeed6ab873dee08";
const BATCH_PROOF_R: &str = "419c4f4f5052c53c45f3da494d2b67b220d02118e0857cdbcf037f9ea84bbe0c";

#[test]
fn oprf_mode_vectors_blind_evaluate_finalize() {
    let key = OprfKey::from_bytes(&unhex(OPRF_SK)).expect("vector key");
    // The whole key as the only share: a 1-of-1 split.
    let share = KeyShare::from_bytes(1, &unhex(OPRF_SK)).expect("vector key");
    for v in &OPRF_VECTORS {
        let input = OprfInput::new(&unhex(v.input)).expect("short input");
        let (blind, blinded) = Blind::with_scalar(scalar_hex(BLIND), &input).expect("blind");
        assert_eq!(hex::encode(blinded.as_bytes()), v.blinded, "BlindedElement");

        let (evaluated, _proof) = evaluate_share_with(&share, &blinded, &Scalar::ONE);
        assert_eq!(
            hex::encode(evaluated.as_bytes()),
            v.evaluated,
            "EvaluationElement"
        );

        let y = blind.finish(&input, &evaluated);
        assert_eq!(hex::encode(y.expose()), v.output, "Output via blind");
        let direct = evaluate_directly(&key, &input).expect("evaluate");
        assert_eq!(
            hex::encode(direct.expose()),
            v.output,
            "Output via Evaluate"
        );
    }
}

#[test]
fn voprf_mode_vectors_proofs() {
    let share = KeyShare::from_bytes(1, &unhex(VOPRF_SK)).expect("vector key");
    let commitment = share.commitment();
    assert_eq!(
        hex::encode(commitment.as_bytes()),
        VOPRF_PK,
        "pkSm = skSm * G"
    );
    for v in &VOPRF_VECTORS {
        let input = unhex(v.input);
        let blinded =
            BlindedElement::from_point(hash_to_group(&input, CONTEXT_VOPRF) * scalar_hex(BLIND));
        assert_eq!(hex::encode(blinded.as_bytes()), v.blinded, "BlindedElement");

        let (evaluated, proof) = evaluate_share_with(&share, &blinded, &scalar_hex(PROOF_R));
        assert_eq!(
            hex::encode(evaluated.as_bytes()),
            v.evaluated,
            "EvaluationElement"
        );
        assert_eq!(hex::encode(proof.to_bytes()), v.proof, "Proof");

        let parsed = DleqProof::parse(&unhex(v.proof)).expect("vector proof parses");
        let evaluated = EvaluatedElement::parse(&unhex(v.evaluated)).expect("element");
        let blinded = BlindedElement::parse(&unhex(v.blinded)).expect("element");
        let pk = Commitment::parse(&unhex(VOPRF_PK)).expect("element");
        assert_eq!(
            verify_evaluation(&pk, &blinded, &evaluated, &parsed),
            Ok(())
        );

        // VOPRF's Finalize hashes like OPRF's (the proof is checked above).
        let unblinded = evaluated.point() * scalar_hex(BLIND).invert();
        let output = finalize_hash(&input, &unblinded.compress().to_bytes());
        assert_eq!(hex::encode(output), v.output, "Output");
    }
}

#[test]
fn voprf_mode_batch_vector_proof() {
    let sk = scalar_hex(VOPRF_SK);
    let pk = Commitment::parse(&unhex(VOPRF_PK)).expect("element");
    let blinded = [
        BlindedElement::parse(&unhex(VOPRF_VECTORS[0].blinded)).expect("element"),
        BlindedElement::parse(&unhex(BATCH_BLINDED_2)).expect("element"),
    ];
    let evaluated = [
        EvaluatedElement::parse(&unhex(VOPRF_VECTORS[0].evaluated)).expect("element"),
        EvaluatedElement::parse(&unhex(BATCH_EVALUATED_2)).expect("element"),
    ];
    let cs: Vec<_> = blinded.iter().map(|b| (b.point(), b.as_bytes())).collect();
    let ds: Vec<_> = evaluated
        .iter()
        .map(|e| (e.point(), e.as_bytes()))
        .collect();
    let proof = dleq::prove(
        &sk,
        (pk.point(), pk.as_bytes()),
        &cs,
        &ds,
        &scalar_hex(BATCH_PROOF_R),
    );
    assert_eq!(hex::encode(proof.to_bytes()), BATCH_PROOF);
    let parsed = DleqProof::parse(&unhex(BATCH_PROOF)).expect("proof");
    assert!(dleq::verify((pk.point(), pk.as_bytes()), &cs, &ds, &parsed));
    // The elements swapped: another statement, the proof fails.
    let swapped: Vec<_> = ds.iter().rev().copied().collect();
    assert!(!dleq::verify(
        (pk.point(), pk.as_bytes()),
        &cs,
        &swapped,
        &parsed
    ));
}
