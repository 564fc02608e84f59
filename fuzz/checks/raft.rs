//! What the fuzz targets on bkv-raft's decoders assert: Raft messages as a peer sends them
//! (`bkv.v1.Raft` payloads), the answers a peer returns, forwarded writes, and snapshot data.
//! Shared by the cargo-fuzz targets (`fuzz/fuzz_targets/raft_*.rs`, `snapshot_image.rs`) and
//! the bounded property tests (`crates/bkv-raft/tests/fuzz_props.rs`), which include this file
//! with `#[path]`.
//!
//! Commands carried by entries and forwarded writes (protocol v2: `SetShareMap`, `Stage` with
//! its OPRF half, `ResetGuesses` with its signature, ...) are applied to a sample state, which
//! must refuse what serde cannot check and stay decodable.
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
    // What a follower's state machine does with the commands the entries carry.
    apply_to_sample(rpc.entries.iter().flat_map(|e| match &e.payload {
        EntryPayload::Normal(p) => p.requests.as_slice(),
        _ => &[],
    }));
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
                // The state machine re-checks what serde cannot.
                apply_to_sample([&r]);
            }
        }
        _ => {
            let _ = decode_stable::<Outcome>(body, MAX_MESSAGE_BYTES);
        }
    }
}

/// Most forwarded or replicated commands applied per input: bounds the work of one input
/// (each may verify a signature).
const MAX_APPLIED: usize = 64;

/// Applies `requests` to the sample state, each twice (as a retry would): must not panic,
/// must leave a state that its own decoder accepts, and what serde cannot check the state
/// machine must: a share map goes in force only signed by the cluster identity key, a
/// record stages only if it follows the map in force, and a reset applies only with the
/// record's reset key's signature.
fn apply_to_sample<'a>(requests: impl IntoIterator<Item = &'a Request>) {
    let mut state = sample_state();
    let mut index = 100;
    for r in requests.into_iter().take(MAX_APPLIED) {
        for _ in 0..2 {
            apply_checked(&mut state, index, r);
            index += 1;
        }
    }
    let bytes = state.encode();
    assert_eq!(
        bkv_core::VaultState::decode(&bytes).as_ref(),
        Ok(&state),
        "applying left a state that does not decode"
    );
}

/// Applies one request at `index` and checks the v2 rules on what it applied.
fn apply_checked(state: &mut bkv_core::VaultState, index: u64, r: &Request) {
    use bkv_core::Command;
    let cluster = state.cluster().cloned();
    let reset_key = match &r.command {
        Command::ResetGuesses {
            account, version, ..
        } => state
            .active_oprf(account, *version)
            .map(|(oprf, _)| oprf.reset_key),
        _ => None,
    };
    let applied = state.apply(index, r);
    let Some(cluster) = cluster else {
        // The sample state is bootstrapped: nothing but a second Bootstrap is refused as such.
        return;
    };
    match (&r.command, &applied.outcome) {
        (Command::SetShareMap { map }, Outcome::ShareMapSet { epoch }) => {
            let parsed = map
                .verify(&cluster.identity_key)
                .expect("a map in force verifies under the identity key");
            assert_eq!(parsed.epoch, *epoch);
            assert_eq!(parsed.cluster_name, cluster.cluster_name);
        }
        (Command::Stage { oprf, .. }, Outcome::Staged { version }) if version.get() == index => {
            let map = cluster
                .share_map
                .as_ref()
                .map(|m| &m.map)
                .expect("staged without a share map");
            assert_eq!(oprf.map_epoch, map.epoch, "staged under another map");
            assert_eq!(oprf.threshold, map.threshold, "staged another threshold");
            assert!(
                oprf.holders().eq(map.holders.iter().map(|h| h.node_id)),
                "staged for other holders"
            );
        }
        (
            Command::ResetGuesses {
                account,
                version,
                charge,
                signature,
            },
            Outcome::Reset { .. },
        ) => {
            let key = reset_key.expect("reset of a version that is not active");
            assert!(
                bkv_core::reset::reset_signature_valid(
                    &key,
                    &cluster.cluster_name,
                    account,
                    *version,
                    *charge,
                    signature,
                ),
                "a reset applied without the record's reset key's signature"
            );
        }
        _ => {}
    }
}

/// The fixtures' cluster (`bkv_core::fixtures`: identity key, share map of epoch 1 with
/// holders 1 to 3) with one active record (`alice`, limit 3, a guess charged), for forwarded
/// and replicated commands to act on.
pub fn sample_state() -> bkv_core::VaultState {
    use bkv_core::{AccountId, AttemptId, Command, GuessLimit, RecordVersion, RequestId, fixtures};
    let limit = |n| GuessLimit::parse_max(n).expect("in range");
    let alice = AccountId::parse("alice").expect("valid account");
    let mut state = bkv_core::VaultState::default();
    let commands = [
        fixtures::bootstrap(limit(3), limit(10)),
        fixtures::set_share_map(1, 3),
        Command::Stage {
            account: alice.clone(),
            request_id: RequestId::new([1; 16]),
            guess_limit: limit(3),
            sealed_record: vec![0xaa; 40],
            oprf: fixtures::oprf_record(1, 3),
        },
        Command::Activate {
            account: alice.clone(),
            version: RecordVersion(3_000),
        },
        Command::ChargeGuess {
            account: alice,
            attempt_id: AttemptId::new([2; 16]),
            request_hash: [3; 32],
        },
    ];
    for (i, command) in commands.into_iter().enumerate() {
        // Proposed at `i + 1` ms: the Stage at index 3 makes version 3,000.
        let applied = state.apply(
            i as u64 + 1,
            &Request {
                at_unix_ms: i as u64 + 1,
                command,
            },
        );
        assert!(
            !matches!(applied.outcome, Outcome::Rejected(_)),
            "sample state: {applied:?}"
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
