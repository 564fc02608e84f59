//! bkv's own test vectors of protocol v2's cryptography, for third-party clients:
//! `testdata/vectors/oprf-v2.json` at the repository root holds every derivation of the
//! module's items 2 to 8 from fixed inputs. This test recomputes the file and compares it
//! byte for byte; `BKV_WRITE_VECTORS=1 cargo test -p bkv-core oprf_v2_vectors` rewrites it.

use curve25519_dalek::scalar::Scalar;
use serde::Serialize;
use sha2::{Digest, Sha512};

use super::super::dleq::evaluate_share_with;
use super::super::shamir::{lagrange_at_zero, split_with};
use super::super::share_ciphertext::{encrypt_share_with, share_key};
use super::super::suite::{CONTEXT_OPRF, CONTEXT_VOPRF, hash_to_group};
use super::super::{
    Blind, Commitment, EvaluatedElement, KeyShare, OprfError, OprfKey, ResetKey, ShareContext,
    SoftwareShareKey, check_commitments, combine, evaluate_directly, open_share, oprf_input,
    reset_message, verify_evaluation, verify_reset,
};
use super::scalar_of;
use crate::ids::{AccountId, ChargeNumber, RecordVersion};
use crate::protocol::ExportKey;

#[derive(Serialize)]
struct File {
    description: &'static str,
    encodings: Encodings,
    hardened_password: HardenedPasswordVector,
    shamir_split: SplitVector,
    threshold_evaluation: EvaluationVector,
    commitment_check: CommitmentCheckVector,
    share_transport: TransportVector,
    reset_authorization: ResetVector,
}

#[derive(Serialize)]
struct Encodings {
    description: &'static str,
    context_string_oprf: String,
    context_string_voprf: String,
    hash_to_group_dst: String,
    hash_to_scalar_dst_voprf: String,
}

#[derive(Serialize)]
struct HardenedPasswordVector {
    description: &'static str,
    account: String,
    password_utf8: String,
    password: String,
    oprf_input: String,
    oprf_key: String,
    input_element: String,
    unblinded_element: String,
    hardened_password: String,
}

#[derive(Serialize)]
struct SplitVector {
    description: &'static str,
    oprf_key: String,
    threshold: usize,
    coefficients: Vec<String>,
    shares: Vec<ShareVector>,
}

#[derive(Serialize)]
struct ShareVector {
    node_id: u64,
    share: String,
    commitment: String,
}

#[derive(Serialize)]
struct EvaluationVector {
    description: &'static str,
    oprf_input: String,
    blind: String,
    blinded_element: String,
    evaluations: Vec<NodeEvaluation>,
    combinations: Vec<Combination>,
    hardened_password: String,
}

#[derive(Serialize)]
struct NodeEvaluation {
    node_id: u64,
    commitment: String,
    proof_random_scalar: String,
    evaluated_element: String,
    proof: String,
}

#[derive(Serialize)]
struct Combination {
    node_ids: Vec<u64>,
    lagrange_coefficients: Vec<String>,
    combined_element: String,
    hardened_password: String,
}

#[derive(Serialize)]
struct CommitmentCheckVector {
    description: &'static str,
    threshold: usize,
    consistent: Vec<IndexedCommitment>,
    inconsistent: Vec<IndexedCommitment>,
    inconsistent_node_id: u64,
}

#[derive(Serialize)]
struct IndexedCommitment {
    node_id: u64,
    commitment: String,
}

#[derive(Serialize)]
struct TransportVector {
    description: &'static str,
    recipient_secret_key: String,
    recipient_public_key: String,
    cluster_name: String,
    account: String,
    node_id: u64,
    guess_limit: u32,
    reset_public_key: String,
    share: String,
    commitment: String,
    context: String,
    ephemeral_secret_key: String,
    ephemeral_public_key: String,
    shared_secret: String,
    hkdf_salt: String,
    hkdf_info: String,
    aes_key: String,
    nonce: String,
    share_ciphertext: String,
}

#[derive(Serialize)]
struct ResetVector {
    description: &'static str,
    export_key: String,
    reset_seed: String,
    reset_public_key: String,
    cluster_name: String,
    account: String,
    version: u64,
    charge: u64,
    reset_message: String,
    signature: String,
}

fn h(bytes: impl AsRef<[u8]>) -> String {
    hex::encode(bytes)
}

fn sh(s: &Scalar) -> String {
    hex::encode(s.as_bytes())
}

/// Computes the vector file from its fixed inputs, checking each step against the API.
fn vectors() -> File {
    let account = AccountId::parse("alice@example.com").expect("valid");
    let password = "correct horse battery staple";
    let cluster_name = "bkv-test-cluster";
    let k = scalar_of("bkv/v2 test vector: oprf key");
    let key = OprfKey::from_bytes(k.as_bytes()).expect("nonzero");

    // 2. The hardened password, directly.
    let input = oprf_input(&account, password.as_bytes()).expect("short");
    let p = hash_to_group(input.as_bytes(), CONTEXT_OPRF);
    let y = evaluate_directly(&key, &input).expect("evaluate");
    let hardened_password = HardenedPasswordVector {
        description: "item 2: oprf_input = I2OSP(len(account), 2) || account || password; \
                      input_element = HashToGroup(oprf_input) (OPRF mode); unblinded_element \
                      = oprf_key * input_element; hardened_password = SHA-512(I2OSP(len(\
                      oprf_input), 2) || oprf_input || I2OSP(32, 2) || unblinded_element || \
                      \"Finalize\"), RFC 9497 Evaluate",
        account: account.to_string(),
        password_utf8: password.into(),
        password: h(password),
        oprf_input: h(input.as_bytes()),
        oprf_key: sh(&k),
        input_element: h(p.compress().as_bytes()),
        unblinded_element: h((p * k).compress().as_bytes()),
        hardened_password: h(y.expose()),
    };

    // 3 and 4. A 2-of-3 split over node ids 1, 2 and 3.
    let node_ids = [1u64, 2, 3];
    let threshold = 2;
    let coefficients = [scalar_of("bkv/v2 test vector: coefficient 1")];
    let shares = split_with(&key, &coefficients, &node_ids, threshold).expect("split");
    let points: Vec<(u64, Commitment)> = shares.iter().map(|(s, c)| (s.index(), *c)).collect();
    check_commitments(&points, threshold).expect("consistent");
    let shamir_split = SplitVector {
        description: "items 3 and 4: f(x) = oprf_key + coefficients[0] * x + ...; share of \
                      node i = f(node_id) as a scalar (32 bytes, little-endian); commitment = \
                      share * G (ristretto255 basepoint)",
        oprf_key: sh(&k),
        threshold,
        coefficients: coefficients.iter().map(sh).collect(),
        shares: shares
            .iter()
            .map(|(s, c)| ShareVector {
                node_id: s.index(),
                share: h(s.to_bytes()),
                commitment: h(c.as_bytes()),
            })
            .collect(),
    };

    // 6 and 4. Recovery: blind, each node evaluates with a proof, any two combine.
    let blind_scalar = scalar_of("bkv/v2 test vector: blind");
    let (_, blinded) = Blind::with_scalar(blind_scalar, &input).expect("blind");
    let mut evaluated = Vec::new();
    let evaluations = shares
        .iter()
        .map(|(share, commitment)| {
            let r = scalar_of(&format!("bkv/v2 test vector: proof {}", share.index()));
            let (z, proof) = evaluate_share_with(share, &blinded, &r);
            verify_evaluation(commitment, &blinded, &z, &proof).expect("proof verifies");
            evaluated.push((share.index(), z));
            NodeEvaluation {
                node_id: share.index(),
                commitment: h(commitment.as_bytes()),
                proof_random_scalar: sh(&r),
                evaluated_element: h(z.as_bytes()),
                proof: h(proof.to_bytes()),
            }
        })
        .collect();
    let combinations = [[0usize, 1], [0, 2], [1, 2]]
        .iter()
        .map(|pair| {
            let chosen: Vec<(u64, EvaluatedElement)> = pair.iter().map(|&i| evaluated[i]).collect();
            let ids: Vec<u64> = chosen.iter().map(|(x, _)| *x).collect();
            let combined = combine(&chosen).expect("combine");
            let (blind, _) = Blind::with_scalar(blind_scalar, &input).expect("blind");
            let out = blind.finish(&input, &combined);
            assert_eq!(out, y, "every pair gives the direct output");
            Combination {
                lagrange_coefficients: lagrange_at_zero(&ids)
                    .expect("distinct")
                    .iter()
                    .map(sh)
                    .collect(),
                node_ids: ids,
                combined_element: h(combined.as_bytes()),
                hardened_password: h(out.expose()),
            }
        })
        .collect();
    let threshold_evaluation = EvaluationVector {
        description: "items 4 and 6: blinded_element = blind * HashToGroup(oprf_input); each \
                      node: evaluated_element = share * blinded_element and proof = c || s of \
                      RFC 9497 GenerateProof(share, G, commitment, [blinded_element], \
                      [evaluated_element]) in VOPRF mode with the given proof_random_scalar; \
                      combined_element = sum of lagrange_coefficients[i] * evaluated_element \
                      of the listed nodes; hardened_password = RFC 9497 Finalize(oprf_input, \
                      blind, combined_element), equal to the direct one",
        oprf_input: h(input.as_bytes()),
        blind: sh(&blind_scalar),
        blinded_element: h(blinded.as_bytes()),
        evaluations,
        combinations,
        hardened_password: h(y.expose()),
    };

    // 5. A 3-of-5 split over scattered node ids, and the same with one commitment replaced.
    let ids5 = [3u64, 7, 8, 20, 1000];
    let coefficients5 = [
        scalar_of("bkv/v2 test vector: 3-of-5 coefficient 1"),
        scalar_of("bkv/v2 test vector: 3-of-5 coefficient 2"),
    ];
    let shares5 = split_with(&key, &coefficients5, &ids5, 3).expect("split");
    let consistent: Vec<(u64, Commitment)> = shares5.iter().map(|(s, c)| (s.index(), *c)).collect();
    check_commitments(&consistent, 3).expect("consistent");
    let mut inconsistent = consistent.clone();
    inconsistent[3].1 = points[0].1;
    assert_eq!(
        check_commitments(&inconsistent, 3),
        Err(OprfError::InconsistentCommitment {
            index: 20,
            threshold: 3
        })
    );
    let listed = |c: &[(u64, Commitment)]| {
        c.iter()
            .map(|(x, k)| IndexedCommitment {
                node_id: *x,
                commitment: h(k.as_bytes()),
            })
            .collect()
    };
    let commitment_check = CommitmentCheckVector {
        description: "item 5: with threshold t, the first t commitments define the polynomial; \
                      every later commitment K_j must equal sum over the first t of L_i(x_j) * \
                      K_i (L_i the Lagrange basis polynomials of the first t node ids). \
                      'consistent' passes; 'inconsistent' (node 20's commitment replaced) is \
                      refused at node 20",
        threshold: 3,
        consistent: listed(&consistent),
        inconsistent: listed(&inconsistent),
        inconsistent_node_id: 20,
    };

    // 7. The share of node 2 encrypted to its share-receiving key.
    let recipient_secret = unhex_fixed("bkv/v2 test vector: node 2 share-receiving key");
    let node_key = SoftwareShareKey::from_bytes(&recipient_secret).expect("valid p256 scalar");
    let recipient = node_key.public();
    let ephemeral_secret = unhex_fixed("bkv/v2 test vector: ephemeral key");
    let ephemeral = p256::SecretKey::from_slice(&ephemeral_secret).expect("valid p256 scalar");
    let nonce: [u8; 12] = *b"bkv-v2-nonce";
    let (share, commitment) = &shares[1];
    // The reset key of item 8, as a registration binds it into every share.
    let export_bytes: [u8; 64] = Sha512::digest(b"bkv/v2 test vector: export key").into();
    let reset_public =
        ResetKey::derive(&ExportKey::take_from(&mut export_bytes.clone()).expect("64 bytes"))
            .public();
    let guess_limit = 10;
    let context = ShareContext {
        cluster_name: cluster_name.to_string(),
        account: account.clone(),
        node_id: share.index(),
        guess_limit,
        reset_key: reset_public,
        commitment: *commitment,
    };
    let context_bytes = context.to_bytes();
    let ciphertext = encrypt_share_with(&recipient, share, &context_bytes, &ephemeral, &nonce);
    let z = node_key
        .diffie_hellman(ciphertext.ephemeral_public())
        .expect("ecdh");
    let opened = open_share(&z, &ciphertext, &recipient, &context).expect("opens");
    assert_eq!(opened.to_bytes(), share.to_bytes());
    let e = ciphertext.ephemeral_public();
    let share_transport = TransportVector {
        description: "item 7: context = \"bkv/v2/share\" || I2OSP(len(cluster_name), 2) || \
                      cluster_name || I2OSP(len(account), 2) || account || I2OSP(node_id, 8) || \
                      I2OSP(guess_limit, 4) || reset_public_key || commitment; shared_secret = \
                      x-coordinate of ephemeral_secret_key * recipient_public_key (P-256; \
                      secret keys are 32-byte big-endian scalars); aes_key = HKDF-SHA256(salt \
                      = ephemeral_public_key || recipient_public_key, ikm = shared_secret, info \
                      = \"bkv/v2/share-key\" || context); share_ciphertext = \
                      ephemeral_public_key || nonce || AES-256-GCM(aes_key, nonce, share, aad \
                      = context) (ciphertext then 16-byte tag)",
        recipient_secret_key: h(recipient_secret),
        recipient_public_key: h(recipient.as_bytes()),
        cluster_name: cluster_name.to_string(),
        account: account.to_string(),
        node_id: share.index(),
        guess_limit,
        reset_public_key: h(reset_public),
        share: h(share.to_bytes()),
        commitment: h(commitment.as_bytes()),
        context: h(&context_bytes),
        ephemeral_secret_key: h(ephemeral_secret),
        ephemeral_public_key: h(e),
        shared_secret: h(*z),
        hkdf_salt: h([e.as_slice(), recipient.as_bytes()].concat()),
        hkdf_info: h([b"bkv/v2/share-key".as_slice(), &context_bytes].concat()),
        aes_key: h(*share_key(&z, e, recipient.as_bytes(), &context_bytes)),
        nonce: h(nonce),
        share_ciphertext: h(ciphertext.as_bytes()),
    };

    // 8. Reset authorization.
    let export_key = ExportKey::take_from(&mut export_bytes.clone()).expect("64 bytes");
    let reset_key = ResetKey::derive(&export_key);
    let mut seed = [0u8; 32];
    hkdf::Hkdf::<Sha512>::new(None, &export_bytes)
        .expand(b"bkv/v2/reset-key", &mut seed)
        .expect("32 bytes");
    assert_eq!(
        ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes(),
        reset_key.public()
    );
    let (version, charge) = (42_007u64, 3u64);
    let message = reset_message(
        cluster_name,
        &account,
        RecordVersion(version),
        ChargeNumber(charge),
    );
    let signature = reset_key.sign(&message);
    assert!(verify_reset(&reset_key.public(), &message, &signature));
    let reset_authorization = ResetVector {
        description: "item 8: reset_seed = HKDF-SHA512(ikm = export_key, salt = empty, info = \
                      \"bkv/v2/reset-key\"), 32 bytes; reset_public_key = its Ed25519 public \
                      key (RFC 8032); reset_message = \"bkv/v2/reset\" || \
                      I2OSP(len(cluster_name), 2) || cluster_name || I2OSP(len(account), 2) || \
                      account || I2OSP(version, 8) || I2OSP(charge, 8); signature = Ed25519 signature of reset_message (verified strictly)",
        export_key: h(export_bytes),
        reset_seed: h(seed),
        reset_public_key: h(reset_key.public()),
        cluster_name: cluster_name.to_string(),
        account: account.to_string(),
        version,
        charge,
        reset_message: h(&message),
        signature: h(signature),
    };

    File {
        description: "Test vectors of bkv protocol v2's cryptography (threshold OPRF, share \
                      transport, reset authorization), computed by bkv-core's oprf module. \
                      Byte strings are lowercase hex. ristretto255 elements are 32-byte \
                      canonical encodings (RFC 9496), scalars 32 bytes little-endian; P-256 \
                      points are 65-byte uncompressed SEC1. Integers in byte strings are \
                      big-endian (I2OSP).",
        encodings: Encodings {
            description: "item 1: RFC 9497 ristretto255-SHA512; OPRF mode (0x00) for blind, \
                          evaluate and finalize, VOPRF mode (0x01) for the evaluation proofs",
            context_string_oprf: h(CONTEXT_OPRF),
            context_string_voprf: h(CONTEXT_VOPRF),
            hash_to_group_dst: h([b"HashToGroup-".as_slice(), CONTEXT_OPRF].concat()),
            hash_to_scalar_dst_voprf: h([b"HashToScalar-".as_slice(), CONTEXT_VOPRF].concat()),
        },
        hardened_password,
        shamir_split,
        threshold_evaluation,
        commitment_check,
        share_transport,
        reset_authorization,
    }
}

/// A fixed 32-byte value named by a label: the first half of `SHA-512(label)`; as a P-256
/// scalar (big-endian) it is below the group order for the labels used here.
fn unhex_fixed(label: &str) -> [u8; 32] {
    let digest: [u8; 64] = Sha512::digest(label.as_bytes()).into();
    let mut out = [0u8; 32];
    out.copy_from_slice(&digest[..32]);
    out
}

const FILE: &str = "oprf-v2.json";

#[test]
fn oprf_v2_vectors_match_the_committed_file() {
    crate::vector_files::match_or_write(FILE, &vectors(), "oprf_v2_vectors");
}

/// The committed file read back and checked through the public API only, as a third-party
/// client would use it.
#[test]
fn oprf_v2_vectors_check_through_the_public_api() {
    let Some(v) = crate::vector_files::read(FILE) else {
        return; // the other test is rewriting the file right now
    };
    let x = |p: &str| -> Vec<u8> {
        let s = v.pointer(p).and_then(|s| s.as_str()).expect(p);
        hex::decode(s).expect("hex")
    };
    let account = AccountId::parse("alice@example.com").expect("valid");
    let input = oprf_input(&account, &x("/hardened_password/password")).expect("short");
    assert_eq!(input.as_bytes(), x("/hardened_password/oprf_input"));
    let key = OprfKey::from_bytes(&x("/hardened_password/oprf_key")).expect("key");
    let y = evaluate_directly(&key, &input).expect("evaluate");
    assert_eq!(
        y.expose().to_vec(),
        x("/hardened_password/hardened_password")
    );

    for i in 0..3 {
        let e = format!("/threshold_evaluation/evaluations/{i}");
        let commitment = Commitment::parse(&x(&format!("{e}/commitment"))).expect("c");
        let blinded =
            super::super::BlindedElement::parse(&x("/threshold_evaluation/blinded_element"))
                .expect("b");
        let z = EvaluatedElement::parse(&x(&format!("{e}/evaluated_element"))).expect("z");
        let proof = super::super::DleqProof::parse(&x(&format!("{e}/proof"))).expect("proof");
        assert_eq!(verify_evaluation(&commitment, &blinded, &z, &proof), Ok(()));
        let share = KeyShare::from_bytes(i + 1, &x(&format!("/shamir_split/shares/{i}/share")))
            .expect("share");
        assert_eq!(share.commitment(), commitment);
    }
}
