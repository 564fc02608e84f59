//! The fuzz targets on bkv-raft's decoders as bounded property tests, so `make test` catches
//! regressions without a fuzzer: each check (`fuzz/checks/raft.rs`, the very code the
//! cargo-fuzz targets run) gets random bytes and mutations of the committed seeds
//! (`fuzz/corpus/<target>/`), and the seeds themselves are held to their names.
//!
//! `cargo test -p bkv-raft --test fuzz_props -- --ignored write_seeds` rewrites the seeds.

#[path = "../../../fuzz/checks/raft.rs"]
mod checks;
#[path = "../../../fuzz/checks/props.rs"]
mod props;

use std::collections::{BTreeMap, BTreeSet};

use bkv_core::{
    AccountId, AttemptId, ChargeNumber, Command, GuessLimit, Outcome, RecordVersion, Request,
    RequestId, fixtures,
};
use bkv_raft::codec::{decode, encode};
use bkv_raft::snapshot::SnapshotImage;
use bkv_raft::types::{BkvNode, LogEntry, LogId, NodeId, Proposal, StoredMembership, TypeConfig};
use openraft::error::{Fatal, InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{CommittedLeaderId, EntryPayload, Membership, SnapshotMeta, Vote};
use props::{CASES, check_seeds, mutated, random, write_seed};
use proptest::prelude::*;

type Answer<T, E = openraft::error::Infallible> = Result<T, RaftError<NodeId, E>>;

/// A fuzz target as the tests see it: its corpus name, its check, and whether its parser
/// accepts an input (what the seed names are held to).
type Target = (&'static str, fn(&[u8]), fn(&[u8]) -> bool);

/// Each target: its corpus name, its check, and what the decoder accepts.
const TARGETS: &[Target] = &[
    ("raft_append_entries", checks::append_entries, |b| {
        decode::<AppendEntriesRequest<TypeConfig>>(b).is_ok()
    }),
    ("raft_vote", checks::vote, |b| {
        decode::<VoteRequest<NodeId>>(b).is_ok()
    }),
    ("raft_install_snapshot", checks::install_snapshot, |b| {
        decode::<InstallSnapshotRequest<TypeConfig>>(b).is_ok()
    }),
    ("raft_responses", checks::responses, responds),
    ("snapshot_image", checks::snapshot_image, |b| {
        SnapshotImage::decode(b).is_ok()
    }),
];

/// Whether a `raft_responses` input decodes as the type its first byte picks.
fn responds(b: &[u8]) -> bool {
    let Some((&which, body)) = b.split_first() else {
        return false;
    };
    match which % 5 {
        0 => decode::<Answer<AppendEntriesResponse<NodeId>>>(body).is_ok(),
        1 => decode::<Answer<VoteResponse<NodeId>>>(body).is_ok(),
        2 => decode::<Answer<InstallSnapshotResponse<NodeId>, InstallSnapshotError>>(body).is_ok(),
        3 => decode::<Request>(body).is_ok(),
        _ => decode::<Outcome>(body).is_ok(),
    }
}

#[test]
fn committed_seeds_match_their_names() {
    for (target, check, accepts) in TARGETS {
        check_seeds(target, *check, accepts);
    }
}

/// The committed entries seed carries every command of protocol v2, so the fuzzer starts
/// from inputs that reach the state machine's v2 rules: applied in order to the sample state
/// (as `checks::append_entries` does), the share map of epoch 2 goes in force, bob's record
/// stages, alice's signed reset applies, and the reset signed for another charge is refused.
#[test]
fn entries_seed_reaches_every_v2_rule() {
    let (_, bytes) = props::seeds("raft_append_entries")
        .into_iter()
        .find(|(name, _)| name == "valid-entries")
        .expect("valid-entries seed");
    let rpc: AppendEntriesRequest<TypeConfig> = decode(&bytes).expect("seed decodes");
    let mut state = checks::sample_state();
    let outcomes: Vec<Outcome> = rpc
        .entries
        .iter()
        .filter_map(|e| match &e.payload {
            EntryPayload::Normal(p) => Some(p.requests.clone()),
            _ => None,
        })
        .flatten()
        .zip(100..)
        .map(|(r, i)| state.apply(i, &r).outcome)
        .collect();
    assert!(matches!(
        outcomes[..2],
        [Outcome::Charged { .. }, Outcome::Charged { .. }]
    ));
    assert!(
        matches!(outcomes[2], Outcome::Staged { .. }),
        "{:?}",
        outcomes[2]
    );
    assert!(
        matches!(outcomes[3], Outcome::Reset { reset: true, .. }),
        "{:?}",
        outcomes[3]
    );
    assert_eq!(
        outcomes[4],
        Outcome::Rejected(bkv_core::Rejection::BadResetSignature)
    );
    assert_eq!(outcomes[5], Outcome::ShareMapSet { epoch: 2 });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn random_messages(which in 0..TARGETS.len(), bytes in random(300)) {
        (TARGETS[which].1)(&bytes);
    }

    #[test]
    fn mutated_messages(
        (which, bytes) in (0..TARGETS.len()).prop_flat_map(|w| (Just(w), mutated(TARGETS[w].0))),
    ) {
        (TARGETS[which].1)(&bytes);
    }
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn membership() -> Membership<NodeId, BkvNode> {
    let nodes: BTreeMap<NodeId, BkvNode> = (1..=3)
        .map(|i| {
            let addr = |p: u16| format!("127.0.0.1:{}", p + i as u16);
            (i, BkvNode::new(addr(7200), addr(7100), addr(7300)))
        })
        .collect();
    Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes)
}

fn request(command: Command) -> Request {
    Request {
        at_unix_ms: 1_800_000_000_000,
        command,
    }
}

fn enc<T: serde::Serialize>(v: &T) -> Vec<u8> {
    encode(v).expect("seed encodes")
}

/// `which` byte, then the body.
fn tagged(which: u8, body: Vec<u8>) -> Vec<u8> {
    [vec![which], body].concat()
}

/// Rewrites the seed corpora of bkv-raft's targets.
#[test]
#[ignore = "writes fuzz/corpus; run by `make fuzz-seeds`"]
fn write_seeds() {
    let alice = AccountId::parse("alice").expect("valid");
    let charge = request(Command::ChargeGuess {
        account: alice.clone(),
        attempt_id: AttemptId::new([5; 16]),
        request_hash: [6; 32],
    });
    // Protocol v2's commands, valid against the sample state (`checks::sample_state`:
    // alice's version 3 has charge 1; the charge above is charge 2).
    let share_map = request(fixtures::set_share_map(2, 3));
    let stage = request(Command::Stage {
        account: AccountId::parse("bob").expect("valid"),
        request_id: RequestId::new([8; 16]),
        guess_limit: GuessLimit::parse_max(3).expect("in range"),
        sealed_record: vec![0xbb; 40],
        oprf: fixtures::oprf_record(1, 3),
    });
    let reset = request(fixtures::reset(
        &alice,
        RecordVersion(3_000),
        ChargeNumber(2),
    ));
    let forged_reset = request(Command::ResetGuesses {
        account: alice.clone(),
        version: RecordVersion(3_000),
        charge: ChargeNumber(2),
        signature: fixtures::reset_signature(&alice, RecordVersion(3_000), ChargeNumber(1)),
    });
    let entries: Vec<LogEntry> = vec![
        LogEntry {
            log_id: log_id(1, 1),
            payload: EntryPayload::Blank,
        },
        LogEntry {
            log_id: log_id(1, 2),
            payload: EntryPayload::Membership(membership()),
        },
        LogEntry {
            log_id: log_id(1, 3),
            payload: EntryPayload::Normal(Proposal {
                requests: vec![charge.clone(), charge.clone()],
            }),
        },
        LogEntry {
            log_id: log_id(1, 4),
            payload: EntryPayload::Normal(Proposal {
                requests: vec![stage.clone(), reset.clone(), forged_reset.clone()],
            }),
        },
        LogEntry {
            log_id: log_id(1, 5),
            payload: EntryPayload::Normal(Proposal::one(share_map.clone())),
        },
    ];
    let append = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(1, 1),
        prev_log_id: None,
        entries,
        leader_commit: Some(log_id(1, 2)),
    };
    let heartbeat = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(2, 1),
        prev_log_id: Some(log_id(2, 9)),
        entries: Vec::new(),
        leader_commit: Some(log_id(2, 9)),
    };
    let append_bytes = enc(&append);
    write_seed("raft_append_entries", "valid-entries", &append_bytes);
    write_seed("raft_append_entries", "valid-heartbeat", &enc(&heartbeat));
    write_seed(
        "raft_append_entries",
        "invalid-truncated",
        &append_bytes[..append_bytes.len() - 2],
    );
    let mut trailing = enc(&heartbeat);
    trailing.push(0);
    write_seed("raft_append_entries", "invalid-trailing", &trailing);

    let vote = VoteRequest::<NodeId> {
        vote: Vote::new(3, 2),
        last_log_id: Some(log_id(2, 9)),
    };
    write_seed("raft_vote", "valid-1", &enc(&vote));
    write_seed("raft_vote", "invalid-empty", &[]);

    let meta = SnapshotMeta {
        last_log_id: Some(log_id(2, 9)),
        last_membership: StoredMembership::new(Some(log_id(1, 2)), membership()),
        snapshot_id: "2-1-9-1".into(),
    };
    let image = SnapshotImage {
        last_applied: Some(log_id(2, 9)),
        membership: meta.last_membership.clone(),
        state: checks::sample_state(),
    };
    let image_bytes = image.encode().expect("image encodes");
    let chunk = InstallSnapshotRequest::<TypeConfig> {
        vote: Vote::new_committed(2, 1),
        meta,
        offset: 0,
        data: image_bytes.clone(),
        done: true,
    };
    write_seed("raft_install_snapshot", "valid-one-chunk", &enc(&chunk));
    let bad_done = {
        let mut b = enc(&chunk);
        let last = b.len() - 1;
        b[last] = 2; // `done` is a bool: only 0 and 1 decode
        b
    };
    write_seed("raft_install_snapshot", "invalid-bool", &bad_done);

    write_seed("snapshot_image", "valid-1", &image_bytes);
    let mut v2 = image_bytes.clone();
    v2[9] = 2;
    write_seed("snapshot_image", "invalid-version", &v2);

    let ok_append: Answer<AppendEntriesResponse<NodeId>> = Ok(AppendEntriesResponse::Success);
    let conflict: Answer<AppendEntriesResponse<NodeId>> = Ok(AppendEntriesResponse::Conflict);
    let stopped: Answer<AppendEntriesResponse<NodeId>> = Err(RaftError::Fatal(Fatal::Stopped));
    let granted: Answer<VoteResponse<NodeId>> = Ok(VoteResponse {
        vote: Vote::new(3, 2),
        vote_granted: true,
        last_log_id: Some(log_id(2, 9)),
    });
    let installed: Answer<InstallSnapshotResponse<NodeId>, InstallSnapshotError> =
        Ok(InstallSnapshotResponse {
            vote: Vote::new_committed(2, 1),
        });
    write_seed(
        "raft_responses",
        "valid-append-ok",
        &tagged(0, enc(&ok_append)),
    );
    write_seed(
        "raft_responses",
        "valid-append-conflict",
        &tagged(0, enc(&conflict)),
    );
    write_seed(
        "raft_responses",
        "valid-append-stopped",
        &tagged(0, enc(&stopped)),
    );
    write_seed("raft_responses", "valid-vote", &tagged(1, enc(&granted)));
    write_seed(
        "raft_responses",
        "valid-snapshot",
        &tagged(2, enc(&installed)),
    );
    write_seed(
        "raft_responses",
        "valid-forward-request",
        &tagged(3, enc(&charge)),
    );
    // Seed names say whether the bytes decode; the forged reset decodes, and the state
    // machine refuses it when it applies (the check holds it to that).
    for (name, r) in [
        ("valid-forward-share-map", &share_map),
        ("valid-forward-stage", &stage),
        ("valid-forward-reset", &reset),
        ("valid-forward-forged-reset", &forged_reset),
    ] {
        write_seed("raft_responses", name, &tagged(3, enc(r)));
    }
    let stage_bytes = enc(&stage);
    write_seed(
        "raft_responses",
        "invalid-forward-stage-truncated",
        &tagged(3, stage_bytes[..stage_bytes.len() - 1].to_vec()),
    );
    write_seed(
        "raft_responses",
        "valid-forward-outcome",
        &tagged(4, enc(&Outcome::Deleted { existed: true })),
    );
    let mut bad_account = tagged(3, enc(&charge));
    let at = bad_account
        .windows(5)
        .position(|w| w == b"alice")
        .expect("account in the request");
    bad_account[at] = b' ';
    write_seed("raft_responses", "invalid-forward-account", &bad_account);
}
