//! Test vectors of the error details: `testdata/vectors/errors.json` holds, for one error of
//! each kind a client branches on, the gRPC code and message and the exact
//! `grpc-status-details-bin` bytes (an encoded `google.rpc.Status`). This test recomputes the
//! file from the vault's own errors and compares it byte for byte, and decodes the committed
//! bytes with the plain `google.rpc` messages, as another gRPC implementation would.
//! `BKV_WRITE_VECTORS=1 cargo test -p bkv-vault error_vectors` rewrites it.

use std::path::PathBuf;

use bkv_core::token::TokenError;
use bkv_proto::google::rpc;
use prost::Message as _;
use serde_json::{Value, json};
use tonic::Status;

use super::VaultError;

fn cases() -> Vec<(&'static str, VaultError)> {
    vec![
        (
            "RecoverFinish with a wrong password, 3 guesses left",
            VaultError::WrongPassword {
                guesses_remaining: 3,
            },
        ),
        (
            "a request field of the wrong length",
            VaultError::invalid("attempt_id", "wrong_length: must be 16 bytes, got 3"),
        ),
        (
            "an account token without iss",
            VaultError::from_token(&TokenError::MissingClaim("iss")),
        ),
        (
            "an account token whose exp has passed",
            VaultError::from_token(&TokenError::Expired),
        ),
        (
            "a RecoverFinish of a ticket used already",
            VaultError::ticket_used(),
        ),
        (
            "a record destroyed after its last guess",
            VaultError::Destroyed,
        ),
        ("no active record", VaultError::no_record()),
        (
            "rate limited for 1.5 s",
            VaultError::RateLimited {
                retry_after_ms: 1500,
            },
        ),
        (
            "no quorum; the leader is known",
            VaultError::Unavailable {
                reason: "no quorum".into(),
                leader_hint: Some("10.0.0.2:7101".into()),
            },
        ),
    ]
}

fn vectors() -> Value {
    let cases: Vec<Value> = cases()
        .into_iter()
        .map(|(what, e)| {
            let status = Status::from(e);
            json!({
                "case": what,
                "code": status.code() as i32,
                "code_name": format!("{:?}", status.code()),
                "message": status.message(),
                "grpc_status_details_bin": hex::encode(status.details()),
            })
        })
        .collect();
    json!({
        "description": "Error statuses as bkv nodes send them. grpc_status_details_bin is the value of the grpc-status-details-bin trailer (base64 on the wire, as gRPC sends every -bin metadata; hex here): an encoded google.rpc.Status (proto/google/rpc/status.proto) with the status's code and message, whose details are google.protobuf.Any values with type_url \"type.googleapis.com/google.rpc.ErrorInfo\" (always first; domain \"bkv\", reason an UPPER_SNAKE word, metadata the values named in docs/PROTOCOL.md, map entries in key order), \"type.googleapis.com/google.rpc.BadRequest\" (INVALID_ARGUMENT: one field violation with field, description and reason) and \"type.googleapis.com/google.rpc.RetryInfo\" (RESOURCE_EXHAUSTED and UNAVAILABLE).",
        "cases": cases,
    })
}

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/vectors/errors.json")
}

fn writing() -> bool {
    std::env::var_os("BKV_WRITE_VECTORS").is_some()
}

#[test]
fn error_vectors_match_the_committed_file() {
    let text = serde_json::to_string_pretty(&vectors()).expect("json") + "\n";
    if writing() {
        std::fs::write(path(), &text).expect("write vectors");
        return;
    }
    let committed = std::fs::read_to_string(path()).expect("testdata/vectors/errors.json");
    assert!(
        committed == text,
        "errors.json differs from what the code computes; if the change is intended, rewrite \
         it with BKV_WRITE_VECTORS=1 cargo test -p bkv-vault error_vectors"
    );
}

/// The committed bytes decoded with the plain `google.rpc` messages only.
#[test]
fn error_vectors_decode_as_plain_google_rpc_status() {
    if writing() {
        return;
    }
    let text = std::fs::read_to_string(path()).expect("vector file");
    let v: Value = serde_json::from_str(&text).expect("json");
    let cases = v["cases"].as_array().expect("cases");
    let mut reasons = Vec::new();
    for case in cases {
        let bytes =
            hex::decode(case["grpc_status_details_bin"].as_str().expect("hex")).expect("hex");
        let status = rpc::Status::decode(bytes.as_slice()).expect("a google.rpc.Status");
        assert_eq!(i64::from(status.code), case["code"].as_i64().expect("code"));
        assert_eq!(status.message, case["message"].as_str().expect("message"));
        let first = status.details.first().expect("details");
        assert_eq!(first.type_url, "type.googleapis.com/google.rpc.ErrorInfo");
        let info = rpc::ErrorInfo::decode(first.value.as_slice()).expect("ErrorInfo");
        assert_eq!(info.domain, "bkv");
        let meta = |k: &str| info.metadata.get(k).map(String::as_str);
        match info.reason.as_str() {
            "WRONG_PASSWORD" => assert_eq!(meta("guessesRemaining"), Some("3")),
            "CLAIM_MISSING" => assert_eq!(meta("claim"), Some("iss")),
            "WRONG_LENGTH" => {
                assert_eq!(meta("field"), Some("attempt_id"));
                let bad = status
                    .details
                    .iter()
                    .find(|a| a.type_url == "type.googleapis.com/google.rpc.BadRequest")
                    .expect("BadRequest");
                let bad = rpc::BadRequest::decode(bad.value.as_slice()).expect("BadRequest");
                assert_eq!(bad.field_violations[0].field, "attempt_id");
                assert_eq!(bad.field_violations[0].reason, "WRONG_LENGTH");
            }
            "RATE_LIMITED" | "UNAVAILABLE" => {
                let retry = status
                    .details
                    .iter()
                    .find(|a| a.type_url == "type.googleapis.com/google.rpc.RetryInfo")
                    .expect("RetryInfo");
                let retry = rpc::RetryInfo::decode(retry.value.as_slice()).expect("RetryInfo");
                assert!(retry.retry_delay.is_some());
            }
            _ => {}
        }
        reasons.push(info.reason);
    }
    assert_eq!(
        reasons,
        [
            "WRONG_PASSWORD",
            "WRONG_LENGTH",
            "CLAIM_MISSING",
            "TOKEN_EXPIRED",
            "TICKET_USED",
            "DESTROYED",
            "NO_RECORD",
            "RATE_LIMITED",
            "UNAVAILABLE"
        ]
    );
}
