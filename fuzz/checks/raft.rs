//! What the fuzz targets on bkv-raft's decoders assert: Raft messages as a peer sends them
//! (`bkv.v1.Raft` payloads), the answers a peer returns, forwarded writes, and snapshot data.
//! Shared by the cargo-fuzz targets (`fuzz/fuzz_targets/raft_*.rs`, `snapshot_image.rs`) and
//! the bounded property tests (`crates/bkv-raft/tests/fuzz_props.rs`), which include this file
//! with `#[path]`.
//!
//! postcard accepts a few encodings of one value (over-long varints), so a decoded message is
//! checked to re-encode stably: encode(decode(bytes)) decodes to the same value, re-encodes to
//! the same bytes, and is never longer than the input.

use bkv_core::{Outcome, Request};
use bkv_raft::MAX_FORWARD_REQUEST_BYTES;
use bkv_raft::codec::{self, decode_bounded};
use bkv_raft::config::MAX_MESSAGE_BYTES;
use bkv_raft::snapshot::SnapshotImage;
use bkv_raft::types::{BkvNode, NodeId, TypeConfig};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{EntryPayload, Membership, MessageSummary};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Decodes `data` as the service does (bounded, strict); if it decodes, checks that the value
/// re-encodes stably and returns it.
fn decode_stable<T: Serialize + DeserializeOwned>(data: &[u8], max: usize) -> Option<T> {
    let value: T = decode_bounded(data, max).ok()?;
    let first = codec::encode(&value).expect("a decoded value encodes");
    assert!(
        first.len() <= data.len(),
        "re-encoding grew from {} to {} bytes",
        data.len(),
        first.len()
    );
    let again: T = codec::decode(&first).expect("re-encoded bytes decode");
    let second = codec::encode(&again).expect("a decoded value encodes");
    assert_eq!(first, second, "encoding is not stable");
    Some(value)
}

/// What the service's membership check and openraft's logging do with a decoded membership.
fn touch_membership(m: &Membership<NodeId, BkvNode>) {
    let configs = m.get_joint_config();
    let usable = !configs.is_empty()
        && configs.iter().all(|c| !c.is_empty())
        && m.voter_ids().all(|id| m.get_node(&id).is_some());
    if usable {
        let _ = m.learner_ids().count();
        let _ = m.nodes().count();
        let _ = m.summary();
        let _ = m.to_string();
    }
}

/// `AppendEntriesRequest<TypeConfig>` as `RaftService::append_entries` decodes it.
pub fn append_entries(data: &[u8]) {
    let Some(rpc) = decode_stable::<AppendEntriesRequest<TypeConfig>>(data, MAX_MESSAGE_BYTES)
    else {
        return;
    };
    let _ = rpc.summary();
    for entry in &rpc.entries {
        let _ = entry.summary();
        if let EntryPayload::Membership(m) = &entry.payload {
            touch_membership(m);
        }
    }
}

/// `VoteRequest<NodeId>` as `RaftService::vote` decodes it.
pub fn vote(data: &[u8]) {
    if let Some(rpc) = decode_stable::<VoteRequest<NodeId>>(data, MAX_MESSAGE_BYTES) {
        let _ = rpc.summary();
        let _ = rpc.to_string();
    }
}

/// `InstallSnapshotRequest<TypeConfig>` as `RaftService::install_snapshot` decodes it.
pub fn install_snapshot(data: &[u8]) {
    if let Some(rpc) = decode_stable::<InstallSnapshotRequest<TypeConfig>>(data, MAX_MESSAGE_BYTES)
    {
        let _ = rpc.summary();
        let _ = rpc.to_string();
        touch_membership(rpc.meta.last_membership.membership());
    }
}

/// The answers a peer returns (decoded by `GrpcNetwork`), and the two `Forward` payloads;
/// the first byte picks which.
pub fn responses(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    type Answer<T, E = openraft::error::Infallible> = Result<T, RaftError<NodeId, E>>;
    match which % 5 {
        0 => {
            if let Some(Ok(r)) =
                decode_stable::<Answer<AppendEntriesResponse<NodeId>>>(body, MAX_MESSAGE_BYTES)
            {
                let _ = r.to_string();
            }
        }
        1 => {
            if let Some(Ok(r)) =
                decode_stable::<Answer<VoteResponse<NodeId>>>(body, MAX_MESSAGE_BYTES)
            {
                let _ = r.summary();
            }
        }
        2 => {
            if let Some(Ok(r)) = decode_stable::<
                Answer<InstallSnapshotResponse<NodeId>, InstallSnapshotError>,
            >(body, MAX_MESSAGE_BYTES)
            {
                let _ = r.to_string();
            }
        }
        3 => {
            if let Some(r) = decode_stable::<Request>(body, MAX_FORWARD_REQUEST_BYTES) {
                // The state machine re-checks what serde cannot: applying a forwarded write
                // (twice, as a retry would) must not panic, and must leave a state that its
                // own decoder accepts.
                let mut state = sample_state();
                let _ = state.apply(4, &r);
                let _ = state.apply(5, &r);
                let bytes = state.encode();
                assert_eq!(
                    bkv_core::VaultState::decode(&bytes).as_ref(),
                    Ok(&state),
                    "applying {r:?} left a state that does not decode"
                );
            }
        }
        _ => {
            let _ = decode_stable::<Outcome>(body, MAX_MESSAGE_BYTES);
        }
    }
}

/// A bootstrapped state with one active record (`alice`, version 2, limit 3), for forwarded
/// requests to act on.
fn sample_state() -> bkv_core::VaultState {
    use bkv_core::{AccountId, ClusterId, Command, GuessLimit, RecordVersion, RequestId};
    let limit = |n| GuessLimit::parse_max(n).expect("in range");
    let alice = AccountId::parse("alice").expect("valid account");
    let mut state = bkv_core::VaultState::default();
    let commands = [
        Command::Bootstrap {
            cluster_id: ClusterId::new([9; 16]),
            cluster_name: "fuzz".into(),
            sealed_server_setup: vec![1, 2, 3],
            key_check_value: [0; 3],
            key_id: [0; 8],
            default_guess_limit: limit(3),
            max_guess_limit: limit(10),
        },
        Command::Stage {
            account: alice.clone(),
            request_id: RequestId::new([1; 16]),
            guess_limit: limit(3),
            sealed_record: vec![0xaa; 40],
        },
        Command::Activate {
            account: alice,
            version: RecordVersion(2),
        },
    ];
    for (i, command) in commands.into_iter().enumerate() {
        state.apply(
            i as u64 + 1,
            &Request {
                at_unix_ms: 0,
                command,
            },
        );
    }
    state
}

/// `SnapshotImage::decode`: snapshot data from a peer or from disk.
pub fn snapshot_image(data: &[u8]) {
    let Ok(image) = SnapshotImage::decode(data) else {
        return;
    };
    let bytes = image.encode().expect("a decoded snapshot encodes");
    assert!(bytes.len() <= data.len(), "re-encoding grew");
    let again = SnapshotImage::decode(&bytes).expect("re-encoded snapshot decodes");
    assert_eq!(again, image, "snapshot does not round-trip");
    touch_membership(image.membership.membership());
}
