//! What the fuzz targets on bkv-node's edges assert: every gRPC request message decoded by
//! prost and then parsed field by field the way the services do, and the config file.
//! Shared by the cargo-fuzz targets (`fuzz/fuzz_targets/grpc_requests.rs`,
//! `node_config.rs`) and the bounded property tests (`crates/bkv-node/tests/fuzz_props.rs`),
//! which include this file with `#[path]`.

use std::io::Write as _;

use bkv_core::opaque;
use bkv_core::protocol::MAX_TICKET_LEN;
use bkv_core::{AccountId, AttemptId, ClusterId, GuessLimit, RequestId, SealPurpose};
use bkv_hsm::blob::Header;
use bkv_node::config::{FlagOverrides, NodeConfig};
use bkv_node::error::VaultError;
use bkv_proto::v1;
use prost::Message;
use tonic::{Code, Status};

/// The cluster maximum guess limit the request checks parse against.
pub const MAX_GUESS_LIMIT: u32 = 100;

/// How many message types [`grpc_request`] knows; the first input byte picks one.
pub const MESSAGE_KINDS: u8 = 19;

/// Decodes one message with prost; if it decodes, checks that it re-encodes to bytes that
/// decode to the same message, of the length prost announces.
fn decode<M: Message + Default + PartialEq>(body: &[u8]) -> Option<M> {
    let m = M::decode(body).ok()?;
    let bytes = m.encode_to_vec();
    assert_eq!(bytes.len(), m.encoded_len());
    assert!(
        M::decode(bytes.as_slice()).ok().as_ref() == Some(&m),
        "prost round trip"
    );
    Some(m)
}

/// A refused field answers INVALID_ARGUMENT with a `google.rpc.BadRequest` naming one of
/// `fields`, and a reason word.
fn refused_as(result: Result<(), VaultError>, fields: &[&str]) {
    let Err(e) = result else { return };
    let status = Status::from(e);
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = bkv_proto::status::ErrorDetails::of(&status).expect("details decode");
    let field = details
        .field_violation
        .as_ref()
        .map(|v| v.field.as_str())
        .unwrap_or_default();
    assert!(
        fields.contains(&field),
        "refusal names {field:?}, not one of {fields:?}"
    );
    assert!(!details.reason.is_empty(), "refusal without a reason");
}

/// The AAD a ticket's header is opened with: cluster `07..07`, account `alice` (in the node,
/// the account comes from the token).
pub fn ticket_aad() -> Vec<u8> {
    let account = AccountId::parse("alice").expect("valid account");
    bkv_core::seal::Aad::ticket(&ClusterId::new([7; 16]), &account)
}

fn register_finish(m: v1::RegisterFinishRequest) -> Result<(), VaultError> {
    RequestId::parse(&m.request_id).map_err(|e| VaultError::bad_id("request_id", e))?;
    opaque::parse_registration_upload(&m.registration_upload).map_err(VaultError::from_protocol)?;
    opaque::parse_sealed_key(m.sealed_key).map_err(VaultError::from_protocol)?;
    let max = GuessLimit::parse_max(MAX_GUESS_LIMIT).expect("in range");
    if m.guess_limit != 0 {
        GuessLimit::parse(m.guess_limit, max)
            .map_err(|e| VaultError::invalid("guess_limit", format!("out_of_range: {e}")))?;
    }
    Ok(())
}

fn recover_finish(m: v1::RecoverFinishRequest) -> Result<(), VaultError> {
    if m.ticket.is_empty() {
        return Err(VaultError::invalid("ticket", "empty"));
    }
    if m.ticket.len() > MAX_TICKET_LEN {
        return Err(VaultError::invalid("ticket", "too_large"));
    }
    opaque::parse_credential_finalization(&m.credential_finalization)
        .map_err(VaultError::from_protocol)?;
    // What runs before the HSM is asked to open the ticket: its sealed-blob header.
    Header::open(&m.ticket, SealPurpose::Ticket, &ticket_aad())
        .map_err(|e| VaultError::from_protocol(e.into()))?;
    Ok(())
}

/// One request message, picked by the first byte: the seven `bkv.v1.Vault` requests parsed
/// as `VaultService` does, the `bkv.v1.Admin` requests, and the two `bkv.v1.Raft` requests
/// (their payloads have their own targets). Answers whether the request was accepted.
pub fn grpc_request(data: &[u8]) -> bool {
    let Some((&kind, body)) = data.split_first() else {
        return false;
    };
    match kind % MESSAGE_KINDS {
        0 => parsed::<v1::RegisterStartRequest>(body, &["registration_request"], |m| {
            opaque::parse_registration_request(&m.registration_request)
                .map(drop)
                .map_err(VaultError::from_protocol)
        }),
        1 => parsed::<v1::RegisterFinishRequest>(
            body,
            &[
                "request_id",
                "registration_upload",
                "sealed_key",
                "guess_limit",
            ],
            register_finish,
        ),
        2 => decode::<v1::ActivateRequest>(body).is_some(),
        3 => parsed::<v1::RecoverStartRequest>(body, &["attempt_id", "credential_request"], |m| {
            AttemptId::parse(&m.attempt_id).map_err(|e| VaultError::bad_id("attempt_id", e))?;
            opaque::parse_credential_request(&m.credential_request)
                .map_err(VaultError::from_protocol)?;
            Ok(())
        }),
        4 => parsed::<v1::RecoverFinishRequest>(
            body,
            &["ticket", "credential_finalization"],
            recover_finish,
        ),
        5 => decode::<v1::StatusRequest>(body).is_some(),
        6 => decode::<v1::DeleteRequest>(body).is_some(),
        7 => decode::<v1::InitRequest>(body).is_some(),
        8 => decode::<v1::NodeInfoRequest>(body).is_some(),
        9 => decode::<v1::ProvisionClusterKeyRequest>(body)
            .is_some_and(|m| ClusterId::parse(&m.cluster_id).is_ok()),
        10 => decode::<v1::AddNodeRequest>(body).is_some(),
        11 => decode::<v1::RemoveNodeRequest>(body).is_some(),
        12 => decode::<v1::ClusterStatusRequest>(body).is_some(),
        13 => decode::<v1::NodeStatusRequest>(body).is_some(),
        14 => decode::<v1::TransferLeaderRequest>(body).is_some(),
        15 => decode::<v1::SnapshotRequest>(body).is_some(),
        16 => decode::<v1::AuditRequest>(body).is_some(),
        17 => decode::<v1::RaftMessage>(body).is_some(),
        _ => decode::<v1::ForwardRequest>(body).is_some_and(|m| {
            bkv_raft::codec::decode_bounded::<bkv_core::Request>(
                &m.request,
                bkv_raft::MAX_FORWARD_REQUEST_BYTES,
            )
            .is_ok()
        }),
    }
}

/// Decodes a message and parses its fields; a refusal must name one of `fields`.
fn parsed<M: Message + Default + PartialEq>(
    body: &[u8],
    fields: &[&str],
    parse: impl FnOnce(M) -> Result<(), VaultError>,
) -> bool {
    let Some(m) = decode::<M>(body) else {
        return false;
    };
    let result = parse(m);
    let ok = result.is_ok();
    refused_as(result, fields);
    ok
}

thread_local! {
    /// A scratch directory per thread (property tests run on several), reused by every load.
    static SCRATCH: tempfile::TempDir = tempfile::tempdir().expect("temp dir");
}

/// Loads `text` as a node's config file, written to this thread's scratch directory.
fn load(text: &[u8]) -> Result<NodeConfig, bkv_node::config::ConfigError> {
    let path = SCRATCH.with(|dir| dir.path().join("node.toml"));
    let mut file = std::fs::File::create(&path).expect("create config file");
    file.write_all(text).expect("write config file");
    drop(file);
    NodeConfig::load(Some(&path), std::iter::empty(), &FlagOverrides::default())
}

/// `NodeConfig::load` on arbitrary bytes as the config file: never panics; what loads is
/// valid, and written back as TOML loads again to the same configuration. Answers whether
/// the bytes loaded.
pub fn node_config(data: &[u8]) -> bool {
    let Ok(config) = load(data) else {
        return false;
    };
    config.validate().expect("a loaded config is valid");
    let text = toml::to_string(&config).expect("a loaded config serializes");
    let again = load(text.as_bytes()).expect("a written config loads");
    assert_eq!(
        format!("{again:?}"),
        format!("{config:?}"),
        "config round trip"
    );
    true
}
