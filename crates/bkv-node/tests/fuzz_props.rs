//! The fuzz targets on bkv-node's edges (gRPC request messages, the config file) as bounded
//! property tests, so `make test` catches regressions without a fuzzer: each check
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

use bkv_core::{AccountId, Command, Request, SealPurpose};
use bkv_hsm::blob::{Header, IV_LEN};
use bkv_proto::v1;
use props::{check_seeds, mutated, random, seeds, write_seed};
use proptest::prelude::*;

const REQUESTS: &str = "grpc_requests";
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
    let finish = v1::RegisterFinishRequest {
        request_id: vec![1; 16],
        registration_upload: opaque_seed("registration_upload"),
        sealed_key: vec![2; 60],
        guess_limit: 5,
    };
    write_seed(REQUESTS, "valid-register-finish", &request(1, &finish));
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
        ..finish
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
    let start = v1::RecoverStartRequest {
        attempt_id: vec![3; 16],
        credential_request: opaque_seed("credential_request"),
    };
    write_seed(REQUESTS, "valid-recover-start", &request(3, &start));
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
    };
    write_seed(REQUESTS, "valid-recover-finish", &request(4, &recover));
    let empty_ticket = v1::RecoverFinishRequest {
        ticket: Vec::new(),
        ..recover
    };
    write_seed(
        REQUESTS,
        "invalid-recover-finish-ticket",
        &request(4, &empty_ticket),
    );
    let init = v1::InitRequest {
        cluster_name: "bkv-fuzz".into(),
        default_guess_limit: 5,
        max_guess_limit: 10,
    };
    write_seed(REQUESTS, "valid-init", &request(7, &init));
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
