//! The fuzz targets on bkv-node's edges (gRPC request messages, the v2 fields of
//! `RegisterFinish`, the `Shares.Evaluate` peer call, the config file) as bounded property
//! tests, so `make test` catches regressions without a fuzzer: each check
//! (`fuzz/checks/node.rs`, the very code the cargo-fuzz targets run) gets random bytes and
//! mutations of the committed seeds (`fuzz/corpus/<target>/`), and the seeds themselves are
//! held to their names.
//!
//! `cargo test -p bkv-node --test fuzz_props -- --ignored write_seeds` rewrites the seeds (run
//! bkv-core's seed writer first: the request seeds reuse its OPAQUE messages).

#[path = "../../../fuzz/checks/node.rs"]
mod checks;
#[path = "../../../fuzz/checks/props.rs"]
mod props;

use bkv_core::oprf::{
    Blind, Commitment, KeyShare, OprfKey, ResetKey, ShareContext, SoftwareShareKey, encrypt_share,
    evaluate_share, oprf_input, split,
};
use bkv_core::protocol::{ExportKey, KsfParams};
use bkv_core::{AccountId, Command, Request, SealPurpose, fixtures};
use bkv_hsm::blob::{Header, IV_LEN};
use bkv_proto::v1;
use props::{check_seeds, mutated, random, seeds, write_seed};
use proptest::prelude::*;
use rand::rngs::OsRng;

const REQUESTS: &str = "grpc_requests";
const REGISTER_FINISH: &str = "register_finish";
const EVALUATE: &str = "share_evaluate";
const CONFIG: &str = "node_config";

/// Config loading writes a file and runs figment: fewer cases keep the test quick.
const CONFIG_CASES: u32 = 128;

#[test]
fn committed_seeds_match_their_names() {
    check_seeds(
        REQUESTS,
        |b| {
            checks::grpc_request(b);
        },
        checks::grpc_request,
    );
    check_seeds(
        REGISTER_FINISH,
        |b| {
            checks::register_finish_fields(b);
        },
        checks::register_finish_fields,
    );
    check_seeds(
        EVALUATE,
        |b| {
            checks::share_evaluate(b);
        },
        checks::share_evaluate,
    );
    check_seeds(
        CONFIG,
        |b| {
            checks::node_config(b);
        },
        checks::node_config,
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: props::CASES, ..ProptestConfig::default() })]

    #[test]
    fn random_requests(kind in 0..checks::MESSAGE_KINDS, body in random(300)) {
        checks::grpc_request(&[&[kind][..], &body].concat());
    }

    #[test]
    fn mutated_requests(bytes in mutated(REQUESTS)) {
        checks::grpc_request(&bytes);
    }

    #[test]
    fn random_register_finish(body in random(600)) {
        checks::register_finish_fields(&body);
    }

    #[test]
    fn mutated_register_finish(bytes in mutated(REGISTER_FINISH)) {
        checks::register_finish_fields(&bytes);
    }

    #[test]
    fn random_evaluate(which in 0..checks::EVALUATE_KINDS, body in random(200)) {
        checks::share_evaluate(&[&[which][..], &body].concat());
    }

    #[test]
    fn mutated_evaluate(bytes in mutated(EVALUATE)) {
        checks::share_evaluate(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CONFIG_CASES, ..ProptestConfig::default() })]

    #[test]
    fn random_configs(bytes in random(200)) {
        checks::node_config(&bytes);
    }

    #[test]
    fn mutated_configs(bytes in mutated(CONFIG)) {
        checks::node_config(&bytes);
    }
}

/// The valid seed of one of bkv-core's OPAQUE targets.
fn opaque_seed(target: &str) -> Vec<u8> {
    seeds(target)
        .into_iter()
        .find(|(name, _)| name == "valid-1")
        .map(|(_, b)| b)
        .unwrap_or_else(|| panic!("{target}/valid-1: run bkv-core's write_seeds first"))
}

fn request(kind: u8, m: &impl prost::Message) -> Vec<u8> {
    [vec![kind], m.encode_to_vec()].concat()
}

/// An evaluation request a serving node sends a holder.
fn evaluate_request(blinded: &bkv_core::oprf::BlindedElement) -> v1::EvaluateRequest {
    v1::EvaluateRequest {
        account: "alice".into(),
        version: 3000,
        attempt_id: vec![3; 16],
        charge: 2,
        blinded_element: blinded.as_bytes().to_vec(),
    }
}

/// Seeds of `register_finish`: a client's registration, and one of each refusal.
fn register_finish_seeds(good: &v1::RegisterFinishRequest) {
    let seed = |name: &str, m: &v1::RegisterFinishRequest| {
        write_seed(REGISTER_FINISH, name, &prost::Message::encode_to_vec(m));
    };
    seed("valid-2-of-3", good);
    let edit = |f: &dyn Fn(&mut v1::RegisterFinishRequest)| {
        let mut m = good.clone();
        f(&mut m);
        m
    };
    seed(
        "invalid-ksf-lanes",
        &edit(&|m| {
            if let Some(k) = m.ksf.as_mut() {
                k.p_cost = 17;
            }
        }),
    );
    seed("invalid-ksf-missing", &edit(&|m| m.ksf = None));
    seed(
        "invalid-reset-key-identity",
        &edit(&|m| {
            m.reset_public_key = [&[1u8][..], &[0; 31]].concat();
        }),
    );
    seed("invalid-stale-epoch", &edit(&|m| m.share_map_epoch = 2));
    seed("invalid-share-count", &edit(&|m| m.shares.truncate(2)));
    seed("invalid-share-order", &edit(&|m| m.shares.swap(1, 2)));
    seed(
        "invalid-commitment-identity",
        &edit(&|m| m.shares[0].commitment = vec![0; 32]),
    );
    seed(
        "invalid-ciphertext-compressed",
        &edit(&|m| m.shares[2].ciphertext[0] = 0x02),
    );
    // The third holder's commitment from another polynomial: each parses, but they do not
    // lie on one line.
    let other = v2_registration();
    seed(
        "invalid-inconsistent",
        &edit(&|m| m.shares[2].commitment = other.shares[2].commitment.clone()),
    );
}

/// Seeds of `share_evaluate`: a request and a holder's real answer, and refusals of each.
fn evaluate_seeds(good: &v1::EvaluateRequest) {
    let seed = |name: &str, which: u8, m: &dyn Fn() -> Vec<u8>| {
        write_seed(EVALUATE, name, &[vec![which], m()].concat());
    };
    seed("valid-request", 0, &|| prost::Message::encode_to_vec(good));
    seed("invalid-request-account", 0, &|| {
        prost::Message::encode_to_vec(&v1::EvaluateRequest {
            account: "a b".into(),
            ..good.clone()
        })
    });
    seed("invalid-request-attempt", 0, &|| {
        prost::Message::encode_to_vec(&v1::EvaluateRequest {
            attempt_id: vec![3; 15],
            ..good.clone()
        })
    });
    seed("invalid-request-identity", 0, &|| {
        prost::Message::encode_to_vec(&v1::EvaluateRequest {
            blinded_element: vec![0; 32],
            ..good.clone()
        })
    });
    let blinded =
        bkv_core::oprf::BlindedElement::parse(&good.blinded_element).expect("valid element");
    let key = OprfKey::generate(&mut OsRng);
    let shares = split(&key, &[1, 2, 3], 2, &mut OsRng).expect("split");
    let (z, proof) = evaluate_share(&shares[0].0, &blinded, &mut OsRng);
    let answer = v1::EvaluateResponse {
        evaluated_element: z.as_bytes().to_vec(),
        proof: proof.to_bytes().to_vec(),
    };
    seed("valid-answer", 1, &|| {
        prost::Message::encode_to_vec(&answer)
    });
    seed("invalid-answer-proof", 1, &|| {
        let mut proof = answer.proof.clone();
        proof[..32].fill(0);
        prost::Message::encode_to_vec(&v1::EvaluateResponse {
            proof,
            ..answer.clone()
        })
    });
    seed("invalid-answer-element", 1, &|| {
        prost::Message::encode_to_vec(&v1::EvaluateResponse {
            evaluated_element: answer.evaluated_element[..31].to_vec(),
            ..answer.clone()
        })
    });
    repair_seeds(&seed, &shares[0].0);
}

/// Writes one seed: its name, the message kind byte, the encoded message.
type SeedWriter<'a> = dyn Fn(&str, u8, &dyn Fn() -> Vec<u8>) + 'a;

/// Seeds of the share repair messages in `share_evaluate` (kinds 2 to 5): requests of both
/// steps and answers of both, and refusals of each.
fn repair_seeds(seed: &SeedWriter<'_>, share: &KeyShare) {
    let receiver = SoftwareShareKey::generate(&mut OsRng).public();
    let context = ShareContext {
        cluster_name: "bkv-fuzz".into(),
        account: AccountId::parse("alice").expect("valid"),
        node_id: share.index(),
        guess_limit: 5,
        reset_key: [7; 32],
        commitment: share.commitment(),
    };
    let ciphertext = || {
        encrypt_share(&receiver, share, &context, &mut OsRng)
            .as_bytes()
            .to_vec()
    };
    let scope = Some(v1::RepairScope {
        target: 4,
        helpers: vec![1, 2],
    });
    let record = |pieces: Vec<Vec<u8>>| v1::RepairRecord {
        account: "alice".into(),
        version: 3000,
        pieces,
    };
    let deal = v1::RepairDealRequest {
        scope: scope.clone(),
        records: vec![record(Vec::new()), record(Vec::new())],
    };
    seed("valid-repair-deal", 2, &|| {
        prost::Message::encode_to_vec(&deal)
    });
    seed("invalid-repair-deal-scope", 2, &|| {
        prost::Message::encode_to_vec(&v1::RepairDealRequest {
            scope: None,
            ..deal.clone()
        })
    });
    seed("invalid-repair-deal-account", 2, &|| {
        let mut bad = deal.clone();
        bad.records[1].account = "a b".into();
        prost::Message::encode_to_vec(&bad)
    });
    let combine = v1::RepairCombineRequest {
        scope,
        records: vec![record(vec![ciphertext(), ciphertext()])],
    };
    seed("valid-repair-combine", 3, &|| {
        prost::Message::encode_to_vec(&combine)
    });
    seed("invalid-repair-combine-piece", 3, &|| {
        let mut bad = combine.clone();
        bad.records[0].pieces[1].truncate(124);
        prost::Message::encode_to_vec(&bad)
    });
    let answer = |ciphertexts: Vec<Vec<u8>>| v1::RepairAnswer {
        ciphertexts,
        ..Default::default()
    };
    let refused = v1::RepairAnswer {
        refused: "share repair refused: the target holds a share of the record already".into(),
        ..Default::default()
    };
    let dealt = v1::RepairDealResponse {
        answers: vec![answer(vec![ciphertext(), ciphertext()]), refused.clone()],
    };
    seed("valid-repair-dealt", 4, &|| {
        prost::Message::encode_to_vec(&dealt)
    });
    seed("invalid-repair-dealt-count", 4, &|| {
        prost::Message::encode_to_vec(&v1::RepairDealResponse {
            answers: vec![answer(vec![ciphertext()])],
        })
    });
    let summed = v1::RepairCombineResponse {
        answers: vec![answer(vec![ciphertext()]), refused],
    };
    seed("valid-repair-sum", 5, &|| {
        prost::Message::encode_to_vec(&summed)
    });
    seed("invalid-repair-sum-point", 5, &|| {
        let mut bad = summed.clone();
        bad.answers[0].ciphertexts[0][1] ^= 0x01;
        prost::Message::encode_to_vec(&bad)
    });
    refresh_seeds(seed, &record, &ciphertext, share);
}

/// Seeds of the share refresh messages in `share_evaluate` (kinds 6 to 8): requests of both
/// steps, a participant's new shares, and refusals of each.
fn refresh_seeds(
    seed: &SeedWriter<'_>,
    record: &dyn Fn(Vec<Vec<u8>>) -> v1::RepairRecord,
    ciphertext: &dyn Fn() -> Vec<u8>,
    share: &KeyShare,
) {
    let scope = Some(v1::RefreshScope {
        participants: vec![1, 2, 3],
    });
    let deal = v1::RefreshDealRequest {
        scope: scope.clone(),
        records: vec![record(Vec::new()), record(Vec::new())],
    };
    seed("valid-refresh-deal", 6, &|| {
        prost::Message::encode_to_vec(&deal)
    });
    seed("invalid-refresh-deal-scope", 6, &|| {
        prost::Message::encode_to_vec(&v1::RefreshDealRequest {
            scope: None,
            ..deal.clone()
        })
    });
    let apply = v1::RefreshApplyRequest {
        scope,
        records: vec![record(vec![ciphertext(), ciphertext(), ciphertext()])],
    };
    seed("valid-refresh-apply", 7, &|| {
        prost::Message::encode_to_vec(&apply)
    });
    seed("invalid-refresh-apply-account", 7, &|| {
        let mut bad = apply.clone();
        bad.records[0].account = String::new();
        prost::Message::encode_to_vec(&bad)
    });
    let applied = v1::RefreshApplyResponse {
        answers: vec![
            v1::RepairAnswer {
                ciphertexts: vec![ciphertext()],
                commitment: share.commitment().as_bytes().to_vec(),
                ..Default::default()
            },
            v1::RepairAnswer {
                refused: "share refresh refused: another version is active here".into(),
                ..Default::default()
            },
        ],
    };
    seed("valid-refresh-applied", 8, &|| {
        prost::Message::encode_to_vec(&applied)
    });
    seed("invalid-refresh-applied-commitment", 8, &|| {
        let mut bad = applied.clone();
        bad.answers[0].commitment.truncate(31);
        prost::Message::encode_to_vec(&bad)
    });
}

/// A registration's v2 fields as a client makes them for the checks' share map (holders 1,
/// 2, 3, threshold 2): a real split, each share encrypted to a share-receiving key, a reset
/// key from an export key, light Argon2id parameters.
fn v2_registration() -> v1::RegisterFinishRequest {
    let rng = &mut OsRng;
    let account = AccountId::parse("alice").expect("valid");
    let map = checks::share_map();
    let ids: Vec<u64> = map.holders.iter().map(|h| h.node_id).collect();
    let key = OprfKey::generate(rng);
    let shares = split(&key, &ids, usize::from(map.threshold), rng).expect("split");
    let reset = ResetKey::derive(&ExportKey::take_from(&mut [9u8; 64]).expect("64 bytes"));
    let upload = |(share, commitment): &(KeyShare, Commitment)| {
        let context = ShareContext {
            cluster_name: fixtures::CLUSTER_NAME.into(),
            account: account.clone(),
            node_id: share.index(),
            guess_limit: 5,
            reset_key: reset.public(),
            commitment: *commitment,
        };
        let recipient = SoftwareShareKey::generate(&mut OsRng).public();
        v1::ShareUpload {
            node_id: share.index(),
            commitment: commitment.as_bytes().to_vec(),
            ciphertext: encrypt_share(&recipient, share, &context, &mut OsRng)
                .as_bytes()
                .to_vec(),
        }
    };
    let ksf = KsfParams::light();
    v1::RegisterFinishRequest {
        request_id: vec![1; 16],
        registration_upload: opaque_seed("registration_upload"),
        sealed_key: vec![2; 60],
        guess_limit: 5,
        ksf: Some(v1::KsfParams {
            m_cost_kib: ksf.m_cost_kib,
            t_cost: ksf.t_cost,
            p_cost: ksf.p_cost,
        }),
        share_map_epoch: map.epoch,
        shares: shares.iter().map(upload).collect(),
        reset_public_key: reset.public().to_vec(),
    }
}

/// Rewrites the seed corpora of bkv-node's targets.
#[test]
#[ignore = "writes fuzz/corpus; run by `make fuzz-seeds`"]
fn write_seeds() {
    let register_start = v1::RegisterStartRequest {
        registration_request: opaque_seed("registration_request"),
    };
    write_seed(
        REQUESTS,
        "valid-register-start",
        &request(0, &register_start),
    );
    let finish = v2_registration();
    write_seed(REQUESTS, "valid-register-finish", &request(1, &finish));
    register_finish_seeds(&finish);
    let short_id = v1::RegisterFinishRequest {
        request_id: vec![1; 15],
        ..finish.clone()
    };
    write_seed(
        REQUESTS,
        "invalid-register-finish-id",
        &request(1, &short_id),
    );
    let too_many = v1::RegisterFinishRequest {
        guess_limit: checks::MAX_GUESS_LIMIT + 1,
        ..finish.clone()
    };
    write_seed(
        REQUESTS,
        "invalid-register-finish-limit",
        &request(1, &too_many),
    );
    write_seed(
        REQUESTS,
        "valid-activate",
        &request(2, &v1::ActivateRequest { version: 9 }),
    );
    let input = oprf_input(&AccountId::parse("alice").expect("valid"), b"pw").expect("short");
    let (_, blinded) = Blind::start(&input, &mut OsRng).expect("blind");
    let start = v1::RecoverStartRequest {
        attempt_id: vec![3; 16],
        blinded_element: blinded.as_bytes().to_vec(),
    };
    write_seed(REQUESTS, "valid-recover-start", &request(3, &start));
    let identity_element = v1::RecoverStartRequest {
        blinded_element: vec![0; 32],
        ..start.clone()
    };
    write_seed(
        REQUESTS,
        "invalid-recover-start-identity",
        &request(3, &identity_element),
    );
    let login = v1::RecoverLoginRequest {
        attempt_id: vec![3; 16],
        credential_request: opaque_seed("credential_request"),
    };
    write_seed(REQUESTS, "valid-recover-login", &request(19, &login));
    let mut ticket = Header::new(
        SealPurpose::Ticket,
        [1; 8],
        &checks::ticket_aad(),
        [2; IV_LEN],
    )
    .encode()
    .to_vec();
    ticket.extend_from_slice(&[0x33; 200]);
    let recover = v1::RecoverFinishRequest {
        ticket,
        credential_finalization: opaque_seed("credential_finalization"),
        reset_signature: vec![4; 64],
    };
    write_seed(REQUESTS, "valid-recover-finish", &request(4, &recover));
    let short_signature = v1::RecoverFinishRequest {
        reset_signature: vec![4; 63],
        ..recover.clone()
    };
    write_seed(
        REQUESTS,
        "invalid-recover-finish-signature",
        &request(4, &short_signature),
    );
    let empty_ticket = v1::RecoverFinishRequest {
        ticket: Vec::new(),
        ..recover
    };
    write_seed(
        REQUESTS,
        "invalid-recover-finish-ticket",
        &request(4, &empty_ticket),
    );
    let signed = fixtures::share_map(1, 3);
    let map_proto = v1::SignedShareMap {
        encoded: signed.encoded.clone(),
        signature: signed.signature.to_vec(),
    };
    let init = v1::InitRequest {
        cluster_name: "bkv-fuzz".into(),
        default_guess_limit: 5,
        max_guess_limit: 10,
        identity_public_key: checks::share_map_identity().to_vec(),
        share_map: Some(map_proto.clone()),
    };
    write_seed(REQUESTS, "valid-init", &request(7, &init));
    let other_identity = v1::InitRequest {
        identity_public_key: fixtures::reset_signer().verifying_key().to_bytes().to_vec(),
        ..init.clone()
    };
    write_seed(
        REQUESTS,
        "invalid-init-other-identity",
        &request(7, &other_identity),
    );
    let set_map = v1::SetShareMapRequest {
        share_map: Some(map_proto.clone()),
    };
    write_seed(REQUESTS, "valid-set-share-map", &request(20, &set_map));
    let short = v1::SetShareMapRequest {
        share_map: Some(v1::SignedShareMap {
            signature: map_proto.signature[..63].to_vec(),
            ..map_proto
        }),
    };
    write_seed(
        REQUESTS,
        "invalid-set-share-map-signature",
        &request(20, &short),
    );
    let evaluate = evaluate_request(&blinded);
    write_seed(REQUESTS, "valid-evaluate", &request(22, &evaluate));
    write_seed(
        REQUESTS,
        "valid-erase-shares",
        &request(21, &v1::EraseSharesRequest { node_id: 3 }),
    );
    evaluate_seeds(&evaluate);
    let forward = v1::ForwardRequest {
        request: bkv_raft::codec::encode(&Request {
            at_unix_ms: 1,
            command: Command::Delete {
                account: AccountId::parse("alice").expect("valid"),
            },
        })
        .expect("encodes"),
    };
    write_seed(REQUESTS, "valid-forward", &request(18, &forward));
    let delete_through = v1::ForwardRequest {
        request: bkv_raft::codec::encode(&Request {
            at_unix_ms: 1,
            command: Command::DeleteThrough {
                account: AccountId::parse("alice").expect("valid"),
                through: bkv_core::RecordVersion(3000),
            },
        })
        .expect("encodes"),
    };
    write_seed(
        REQUESTS,
        "valid-forward-delete-through",
        &request(18, &delete_through),
    );
    write_seed(REQUESTS, "invalid-not-protobuf", &[0, 0xff, 0xff, 0xff]);

    let example = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cluster/node.example.toml"),
    )
    .expect("example config");
    write_seed(CONFIG, "valid-example", &example);
    let minimal = br#"node_id = 2
data_dir = "/var/lib/bkv"
[tls]
ca_cert = "ca.pem"
cert = "node.pem"
key = "node.key"
[hsm]
token_label = "bkv-node2"
user_pin_env = "PIN"
[[auth.issuers]]
name = "dev"
public_key_file = "issuer.pem"
"#;
    write_seed(CONFIG, "valid-minimal", minimal);
    let text = String::from_utf8_lossy(minimal);
    write_seed(
        CONFIG,
        "invalid-node-id-0",
        text.replace("node_id = 2", "node_id = 0").as_bytes(),
    );
    write_seed(
        CONFIG,
        "invalid-unknown-key",
        format!("{text}\n[hsm2]\nx = 1\n").as_bytes(),
    );
    write_seed(CONFIG, "invalid-not-toml", b"node_id = = 2\n[tls\n");
}
