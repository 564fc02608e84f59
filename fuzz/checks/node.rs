//! What the fuzz targets on bkv-node's edges assert: every gRPC request message decoded by
//! prost and then parsed field by field the way the services do (the client API
//! `bkv.v1.Vault` as `bkv_vault::VaultService` parses it, `bkv.v1.Admin`, the peer services
//! `bkv.v1.Raft` and `bkv.v1.Shares`), in depth the fields protocol v2 added to
//! `RegisterFinish`, both directions of the `Shares.Evaluate`, share repair and share refresh
//! peer calls, and the config file.
//! Shared by the cargo-fuzz targets (`fuzz/fuzz_targets/grpc_requests.rs`,
//! `register_finish.rs`, `share_evaluate.rs`, `node_config.rs`) and the bounded property
//! tests (`crates/bkv-node/tests/fuzz_props.rs`), which include this file with `#[path]`.

use std::io::Write as _;

use bkv_core::opaque;
use bkv_core::oprf::{BlindedElement, DleqProof, EvaluatedElement, ShareCiphertext, combine};
use bkv_core::protocol::MAX_TICKET_LEN;
use bkv_core::{
    AccountId, AttemptId, ClusterId, GuessLimit, RequestId, SealPurpose, ShareMap, fixtures,
};
use bkv_hsm::blob::Header;
use bkv_node::admin::parse_signed_map;
use bkv_node::config::{FlagOverrides, NodeConfig};
use bkv_node::error::VaultError;
use bkv_node::shares::refresh::parse_refreshed;
use bkv_node::shares::repair::parse_answers;
use bkv_node::shares::service::{
    parse_answer, parse_refresh, parse_repair, parse_request, request_message,
};
use bkv_proto::v1;
use bkv_vault::service::{parse_ksf, parse_reset_key, parse_shares};
use prost::Message;
use tonic::{Code, Status};

/// The cluster maximum guess limit the request checks parse against.
pub const MAX_GUESS_LIMIT: u32 = 100;

/// How many message types [`grpc_request`] knows; the first input byte picks one.
pub const MESSAGE_KINDS: u8 = 23;

/// The share map in force for every check: the fixtures' map (`bkv_core::fixtures`) of
/// epoch 1 with holders 1, 2 and 3, threshold 2.
pub fn share_map() -> ShareMap {
    fixtures::share_map(1, 3)
        .verify(&share_map_identity())
        .expect("the fixtures' map verifies")
}

/// The cluster identity key the checks verify share maps under (the fixtures').
pub fn share_map_identity() -> [u8; 32] {
    fixtures::identity().verifying_key().to_bytes()
}

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

/// The fields `RegisterFinish` may refuse as INVALID_ARGUMENT.
const REGISTER_FINISH_FIELDS: &[&str] = &[
    "request_id",
    "registration_upload",
    "sealed_key",
    "ksf",
    "reset_public_key",
    "guess_limit",
    "shares",
    "shares.commitment",
    "shares.ciphertext",
];

/// How `RegisterFinish` reads its request, in `VaultService::register_finish`'s order, with
/// the service's own parsers of the v2 fields, against [`share_map`] in force. `Ok(false)`:
/// made for another map than the one in force (FAILED_PRECONDITION `stale_share_map`, not a
/// field error: the client starts again).
fn register_finish(m: v1::RegisterFinishRequest) -> Result<bool, VaultError> {
    RequestId::parse(&m.request_id).map_err(|e| VaultError::bad_id("request_id", e))?;
    opaque::parse_registration_upload(&m.registration_upload).map_err(VaultError::from_protocol)?;
    opaque::parse_sealed_key(m.sealed_key).map_err(VaultError::from_protocol)?;
    parse_ksf(m.ksf)?;
    parse_reset_key(&m.reset_public_key)?;
    let max = GuessLimit::parse_max(MAX_GUESS_LIMIT).expect("in range");
    if m.guess_limit != 0 {
        GuessLimit::parse(m.guess_limit, max)
            .map_err(|e| VaultError::invalid("guess_limit", format!("out_of_range: {e}")))?;
    }
    let map = share_map();
    if m.share_map_epoch != map.epoch {
        return Ok(false);
    }
    parse_shares(&m.shares, &map)?;
    Ok(true)
}

/// Whether Argon2id parameters are ones a registration may name, stated apart from
/// `KsfParams::check`: Argon2's own range (at least one pass and one lane, at least 8 KiB per
/// lane) within the client's limits (1 GiB, 64 passes, 16 lanes).
fn ksf_acceptable(k: &v1::KsfParams) -> bool {
    (1..=16).contains(&k.p_cost)
        && (1..=64).contains(&k.t_cost)
        && (8 * k.p_cost..=1 << 20).contains(&k.m_cost_kib)
}

/// What `parse_shares` must answer for `shares` against [`share_map`]: `Ok` exactly when
/// there is one share per holder in the map's order, every commitment and ciphertext parses,
/// and the commitments lie on one polynomial of degree `threshold - 1`, stated apart from
/// `check_commitments`: with 3 holders and threshold 2, every pair of commitments
/// interpolates to the same point at 0. Otherwise the field the refusal must name, in the
/// order the service checks.
fn shares_model(shares: &[v1::ShareUpload], map: &ShareMap) -> Result<(), &'static str> {
    if shares.len() != map.holders.len() {
        return Err("shares");
    }
    let mut points = Vec::with_capacity(shares.len());
    for (share, holder) in shares.iter().zip(&map.holders) {
        if share.node_id != holder.node_id {
            return Err("shares");
        }
        let commitment =
            EvaluatedElement::parse(&share.commitment).map_err(|_| "shares.commitment")?;
        if ShareCiphertext::parse(&share.ciphertext).is_err() {
            return Err("shares.ciphertext");
        }
        points.push((share.node_id, commitment));
    }
    assert_eq!(
        (map.holders.len(), map.threshold),
        (3, 2),
        "the model is of 2 of 3"
    );
    let pair = |a: usize, b: usize| combine(&[points[a], points[b]]);
    let at_zero = pair(0, 1);
    if pair(0, 2) == at_zero && pair(1, 2) == at_zero {
        Ok(())
    } else {
        Err("shares.commitment")
    }
}

/// `RegisterFinishRequest` as the vault service reads it (prost, then every field, the v2
/// ones with the service's own parsers), against [`share_map`]: the whole request is refused
/// naming a field or accepted, and each v2 field, parsed on its own, is accepted exactly as a
/// model of its rules says (the KSF parameters, the reset key, the shares with their
/// commitments' consistency); accepted shares are kept as sent. Answers whether the request
/// was accepted.
pub fn register_finish_fields(data: &[u8]) -> bool {
    let Some(m) = decode::<v1::RegisterFinishRequest>(data) else {
        return false;
    };
    let map = share_map();
    // The KSF parameters.
    let ksf = parse_ksf(m.ksf);
    assert_eq!(
        ksf.is_ok(),
        m.ksf.as_ref().is_some_and(ksf_acceptable),
        "ksf {:?}: {ksf:?}",
        m.ksf
    );
    if let (Ok(parsed), Some(sent)) = (&ksf, &m.ksf) {
        assert_eq!(
            (parsed.m_cost_kib, parsed.t_cost, parsed.p_cost),
            (sent.m_cost_kib, sent.t_cost, sent.p_cost)
        );
    }
    refused_as(ksf.map(drop), &["ksf"]);
    // The reset key.
    let reset = parse_reset_key(&m.reset_public_key);
    assert_eq!(
        reset.is_ok(),
        bkv_core::oprf::ResetPublicKey::parse(&m.reset_public_key).is_ok()
    );
    if let Ok(key) = &reset {
        assert_eq!(key.as_slice(), m.reset_public_key.as_slice());
    }
    refused_as(reset.map(drop), &["reset_public_key"]);
    // The shares.
    let shares = parse_shares(&m.shares, &map);
    let model = shares_model(&m.shares, &map);
    match (&shares, model) {
        (Ok(stored), Ok(())) => {
            assert_eq!(stored.len(), m.shares.len());
            for (kept, sent) in stored.iter().zip(&m.shares) {
                assert_eq!(kept.node_id, sent.node_id);
                assert_eq!(kept.commitment.as_slice(), sent.commitment.as_slice());
                assert_eq!(kept.ciphertext, sent.ciphertext);
            }
        }
        (Err(_), Err(field)) => refused_as(shares.map(drop), &[field]),
        (got, expected) => panic!("parse_shares answered {got:?}, the model {expected:?}"),
    }
    // The whole request, as the service reads it.
    let whole = register_finish(m);
    let accepted = whole.as_ref().is_ok_and(|fresh| *fresh);
    refused_as(whole.map(drop), REGISTER_FINISH_FIELDS);
    accepted
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
    if m.reset_signature.len() != 64 {
        return Err(VaultError::invalid(
            "reset_signature",
            "wrong_length: must be 64 bytes",
        ));
    }
    // What runs before the HSM is asked to open the ticket: its sealed-blob header.
    Header::open(&m.ticket, SealPurpose::Ticket, &ticket_aad())
        .map_err(|e| VaultError::from_protocol(e.into()))?;
    Ok(())
}

/// How `Init` reads the identity key and the first share map (what follows, the node's own
/// membership in the map, needs the node): 32 bytes of key, a signed map that verifies under
/// it.
fn init(m: v1::InitRequest) -> Result<(), VaultError> {
    let identity: [u8; 32] = m.identity_public_key.as_slice().try_into().map_err(|_| {
        VaultError::invalid("identity_public_key", "wrong_length: must be 32 bytes")
    })?;
    let signed = parse_signed_map(m.share_map)?;
    signed
        .verify(&identity)
        .map_err(|e| VaultError::invalid("share_map", format!("refused: {e}")))?;
    Ok(())
}

/// How `SetShareMap` reads its map, against the identity key of the cluster
/// ([`share_map_identity`]).
fn set_share_map(m: v1::SetShareMapRequest) -> Result<(), VaultError> {
    let signed = parse_signed_map(m.share_map)?;
    let map = signed
        .verify(&share_map_identity())
        .map_err(|e| VaultError::invalid("share_map", format!("refused: {e}")))?;
    assert_eq!(map.encode(), signed.encoded, "a verified map is canonical");
    Ok(())
}

/// One request message, picked by the first byte: the eight `bkv.v1.Vault` requests parsed
/// as `VaultService` does, the `bkv.v1.Admin` requests, the two `bkv.v1.Raft` requests
/// (their payloads have their own targets) and the `bkv.v1.Shares` request. Answers whether
/// the request was accepted.
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
        1 => decode::<v1::RegisterFinishRequest>(body).is_some_and(|m| {
            let result = register_finish(m);
            let accepted = result.as_ref().is_ok_and(|fresh| *fresh);
            refused_as(result.map(drop), REGISTER_FINISH_FIELDS);
            accepted
        }),
        2 => decode::<v1::ActivateRequest>(body).is_some(),
        3 => parsed::<v1::RecoverStartRequest>(body, &["attempt_id", "blinded_element"], |m| {
            AttemptId::parse(&m.attempt_id).map_err(|e| VaultError::bad_id("attempt_id", e))?;
            BlindedElement::parse(&m.blinded_element)
                .map_err(|e| VaultError::invalid("blinded_element", format!("invalid: {e}")))?;
            Ok(())
        }),
        4 => parsed::<v1::RecoverFinishRequest>(
            body,
            &["ticket", "credential_finalization", "reset_signature"],
            recover_finish,
        ),
        5 => decode::<v1::StatusRequest>(body).is_some(),
        6 => decode::<v1::DeleteRequest>(body).is_some(),
        7 => parsed::<v1::InitRequest>(
            body,
            &["identity_public_key", "share_map", "share_map.signature"],
            init,
        ),
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
        18 => decode::<v1::ForwardRequest>(body).is_some_and(|m| {
            bkv_raft::codec::decode_bounded::<bkv_core::Request>(
                &m.request,
                bkv_raft::MAX_FORWARD_REQUEST_BYTES,
            )
            .is_ok()
        }),
        19 => parsed::<v1::RecoverLoginRequest>(body, &["attempt_id", "credential_request"], |m| {
            AttemptId::parse(&m.attempt_id).map_err(|e| VaultError::bad_id("attempt_id", e))?;
            opaque::parse_credential_request(&m.credential_request)
                .map_err(VaultError::from_protocol)?;
            Ok(())
        }),
        20 => parsed::<v1::SetShareMapRequest>(
            body,
            &["share_map", "share_map.signature"],
            set_share_map,
        ),
        21 => decode::<v1::EraseSharesRequest>(body).is_some(),
        _ => share_evaluate(&[&[0][..], body].concat()),
    }
}

/// How many messages [`share_evaluate`] knows: the first byte picks one.
pub const EVALUATE_KINDS: u8 = 9;

/// The `bkv.v1.Shares.Evaluate` peer call, both ways, decoded by prost and read with the
/// node's own functions; the first byte picks:
/// - 0: `EvaluateRequest`, as a share-holder reads it (`parse_request`): accepted requests
///   are written back by `request_message` to the very message; a refusal is
///   INVALID_ARGUMENT naming the account, the attempt id or the blinded element.
/// - 1: `EvaluateResponse`, as the serving node reads a holder's answer (`parse_answer`):
///   accepted exactly when the element and the proof parse, and kept as sent; a refusal is
///   INTERNAL (a faulty holder, not the client's doing).
/// - 2 and 3: `RepairDealRequest` and `RepairCombineRequest`, as a helper reads them
///   (`parse_repair`): accepted requests give one task per record with the scope's target
///   and helpers, and the pieces as sent; a refusal is INVALID_ARGUMENT naming the scope or
///   a record's account or pieces.
/// - 4 and 5: `RepairDealResponse` (two pieces per record) and `RepairCombineResponse` (one
///   sum), as the node repaired reads a helper's answers (`parse_answers`): accepted only
///   if every answer is a refusal or exactly that many well-formed ciphertexts, kept as
///   sent.
/// - 6 and 7: `RefreshDealRequest` and `RefreshApplyRequest`, as a participant reads them
///   (`parse_refresh`): accepted requests give one task per record with the scope's
///   participants, and the pieces as sent; a refusal names the scope or a record's field.
/// - 8: `RefreshApplyResponse`, as the node running the pass reads a participant's new
///   shares (`parse_refreshed`): accepted only if every answer is a refusal or exactly one
///   well-formed ciphertext with a 32-byte commitment, kept as sent.
///
/// Answers whether the message was accepted.
pub fn share_evaluate(data: &[u8]) -> bool {
    let Some((&which, body)) = data.split_first() else {
        return false;
    };
    match which % EVALUATE_KINDS {
        2 => {
            let Some(m) = decode::<v1::RepairDealRequest>(body) else {
                return false;
            };
            return repair_request(m.scope.as_ref(), &m.records);
        }
        3 => {
            let Some(m) = decode::<v1::RepairCombineRequest>(body) else {
                return false;
            };
            return repair_request(m.scope.as_ref(), &m.records);
        }
        4 => {
            let Some(m) = decode::<v1::RepairDealResponse>(body) else {
                return false;
            };
            return repair_answers(m.answers, 2);
        }
        5 => {
            let Some(m) = decode::<v1::RepairCombineResponse>(body) else {
                return false;
            };
            return repair_answers(m.answers, 1);
        }
        6 => {
            let Some(m) = decode::<v1::RefreshDealRequest>(body) else {
                return false;
            };
            return refresh_request(m.scope.as_ref(), &m.records);
        }
        7 => {
            let Some(m) = decode::<v1::RefreshApplyRequest>(body) else {
                return false;
            };
            return refresh_request(m.scope.as_ref(), &m.records);
        }
        8 => {
            let Some(m) = decode::<v1::RefreshApplyResponse>(body) else {
                return false;
            };
            return refreshed_answers(m.answers);
        }
        _ => {}
    }
    if which % EVALUATE_KINDS == 0 {
        let Some(m) = decode::<v1::EvaluateRequest>(body) else {
            return false;
        };
        match parse_request(&m) {
            Ok(request) => {
                assert_eq!(request_message(&request), m, "request does not round-trip");
                true
            }
            Err(e) => {
                refused_as(Err(e), &["account", "attempt_id", "blinded_element"]);
                false
            }
        }
    } else {
        let Some(m) = decode::<v1::EvaluateResponse>(body) else {
            return false;
        };
        let expected = EvaluatedElement::parse(&m.evaluated_element).is_ok()
            && DleqProof::parse(&m.proof).is_ok();
        match parse_answer(&m) {
            Ok(evaluated) => {
                assert!(expected, "accepted a bad answer");
                assert_eq!(
                    evaluated.element.as_bytes().as_slice(),
                    m.evaluated_element.as_slice()
                );
                assert_eq!(evaluated.proof.to_bytes().as_slice(), m.proof.as_slice());
                true
            }
            Err(e) => {
                assert!(!expected, "refused a good answer: {e}");
                assert_eq!(Status::from(e).code(), Code::Internal);
                false
            }
        }
    }
}

/// A share repair request as a helper reads it (see [`share_evaluate`]).
fn repair_request(scope: Option<&v1::RepairScope>, records: &[v1::RepairRecord]) -> bool {
    records_request(
        parse_repair(scope, records),
        records,
        |task| {
            let scope = scope.expect("accepted with a scope");
            assert_eq!((task.target, &task.helpers), (scope.target, &scope.helpers));
            (task.account.as_str().to_string(), task.version.get())
        },
        "scope.helpers",
    )
}

/// A share refresh request as a participant reads it (see [`share_evaluate`]).
fn refresh_request(scope: Option<&v1::RefreshScope>, records: &[v1::RepairRecord]) -> bool {
    records_request(
        parse_refresh(scope, records),
        records,
        |task| {
            let scope = scope.expect("accepted with a scope");
            assert_eq!(task.participants, scope.participants);
            (task.account.as_str().to_string(), task.version.get())
        },
        "scope.participants",
    )
}

/// A repair or refresh request as parsed: accepted, one task per record (`check` checks a
/// task against the scope and gives its account and version) with the pieces as sent;
/// refused, a refusal naming the scope (`scope_field`) or a record's field.
fn records_request<T>(
    parsed: Result<Vec<(T, Vec<ShareCiphertext>)>, VaultError>,
    records: &[v1::RepairRecord],
    check: impl Fn(&T) -> (String, u64),
    scope_field: &str,
) -> bool {
    match parsed {
        Ok(tasks) => {
            assert_eq!(tasks.len(), records.len());
            for ((task, pieces), record) in tasks.iter().zip(records) {
                assert_eq!(check(task), (record.account.clone(), record.version));
                let sent: Vec<&[u8]> = pieces.iter().map(|p| p.as_bytes().as_slice()).collect();
                let wire: Vec<&[u8]> = record.pieces.iter().map(Vec::as_slice).collect();
                assert_eq!(sent, wire, "pieces not kept as sent");
            }
            true
        }
        Err(e) => {
            refused_as(
                Err(e),
                &[
                    "scope",
                    scope_field,
                    "records",
                    "records.account",
                    "records.pieces",
                ],
            );
            false
        }
    }
}

/// A helper's repair answers as the node repaired reads them (see [`share_evaluate`]).
fn repair_answers(answers: Vec<v1::RepairAnswer>, per: usize) -> bool {
    let n = answers.len();
    let expected = answers.iter().all(|a| {
        !a.refused.is_empty()
            || (a.ciphertexts.len() == per
                && a.ciphertexts
                    .iter()
                    .all(|c| ShareCiphertext::parse(c).is_ok()))
    });
    match parse_answers(7, answers.clone(), n, per) {
        Ok(parsed) => {
            assert!(expected, "accepted a bad answer");
            for (got, sent) in parsed.iter().zip(&answers) {
                match got {
                    None => assert!(!sent.refused.is_empty()),
                    Some(cts) => {
                        let got: Vec<&[u8]> = cts.iter().map(|c| c.as_bytes().as_slice()).collect();
                        let wire: Vec<&[u8]> = sent.ciphertexts.iter().map(Vec::as_slice).collect();
                        assert_eq!(got, wire);
                    }
                }
            }
            true
        }
        Err(_) => {
            assert!(!expected, "refused good answers");
            false
        }
    }
}

/// A participant's new shares as the node running a refresh pass reads them.
fn refreshed_answers(answers: Vec<v1::RepairAnswer>) -> bool {
    let n = answers.len();
    let expected = answers.iter().all(|a| {
        !a.refused.is_empty()
            || (a.ciphertexts.len() == 1
                && ShareCiphertext::parse(&a.ciphertexts[0]).is_ok()
                && a.commitment.len() == 32)
    });
    match parse_refreshed(7, answers.clone(), n) {
        Ok(parsed) => {
            assert!(expected, "accepted a bad answer");
            for (got, sent) in parsed.iter().zip(&answers) {
                match got {
                    None => assert!(!sent.refused.is_empty()),
                    Some(share) => {
                        assert_eq!(share.node_id, 7);
                        assert_eq!(share.ciphertext, sent.ciphertexts[0]);
                        assert_eq!(share.commitment.as_slice(), sent.commitment.as_slice());
                    }
                }
            }
            true
        }
        Err(_) => {
            assert!(!expected, "refused good answers");
            false
        }
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
