//! Unit tests of the state's snapshot codec: typed errors for hostile bytes, invariant
//! checks on decode, and a pinned encoding.

use serde::Serialize;

use super::*;
use crate::fixtures;
use crate::ids::AttemptId;
use crate::oprf_record::StoredShare;

fn limit(n: u32) -> GuessLimit {
    GuessLimit::parse_max(n).expect("in range")
}

fn alice() -> AccountId {
    AccountId::parse("alice").expect("valid")
}

/// The entry at log index `at`, proposed at `at` ms (so a `Stage` there makes version
/// `at * 1000`).
fn req(at: u64, command: Command) -> (u64, Request) {
    (
        at,
        Request {
            at_unix_ms: at,
            command,
        },
    )
}

/// Bootstrap and a one-holder share map, then alice registers (v3000, limit 3), activates,
/// and makes two guesses; a new registration (v7000) is staged.
fn sample() -> VaultState {
    let a = alice();
    let entries = [
        req(1, fixtures::bootstrap(limit(3), limit(5))),
        req(2, fixtures::set_share_map(1, 1)),
        req(
            3,
            Command::Stage {
                account: a.clone(),
                request_id: RequestId::new([0x22; 16]),
                guess_limit: limit(3),
                sealed_record: vec![0xbb; 3],
                oprf: fixtures::oprf_record(1, 1),
            },
        ),
        req(
            4,
            Command::Activate {
                account: a.clone(),
                version: RecordVersion(3000),
            },
        ),
        req(
            5,
            Command::ChargeGuess {
                account: a.clone(),
                attempt_id: AttemptId::new([0x33; 16]),
                request_hash: [0x44; 32],
            },
        ),
        req(
            6,
            Command::ChargeGuess {
                account: a.clone(),
                attempt_id: AttemptId::new([0x34; 16]),
                request_hash: [0x45; 32],
            },
        ),
        req(
            7,
            Command::Stage {
                account: a,
                request_id: RequestId::new([0x23; 16]),
                guess_limit: limit(2),
                sealed_record: vec![0xcc; 2],
                oprf: fixtures::oprf_record(1, 1),
            },
        ),
    ];
    let mut state = VaultState::default();
    for (at, r) in &entries {
        let applied = state.apply(*at, r);
        assert!(
            !matches!(applied.outcome, Outcome::Rejected(_)),
            "{applied:?}"
        );
    }
    state
}

#[test]
fn the_sample_round_trips() {
    let state = sample();
    let bytes = state.encode();
    assert_eq!(VaultState::decode(&bytes), Ok(state.clone()));
    assert_eq!(
        VaultState::decode(&VaultState::default().encode()),
        Ok(VaultState::default())
    );
    assert_ne!(state.digest(), VaultState::default().digest());
    assert_eq!(state.account_count(), 1);
    assert_eq!(state.cluster().map(|c| c.max_guess_limit), Some(limit(5)));
}

/// The snapshot format is pinned: changing what is encoded needs a new format version.
#[test]
fn the_encoding_is_pinned() {
    let hex = hex::encode(sample().encode());
    let expected = concat!(
        "626b767374617465000507", // magic, format 5, last change 7
        "d836",                   // version clock 7000
        "0111111111111111111111111111111111016304aaaaaaaa01020304040404040404040305e8da63a40ca687c87cfce0",
        "5cb24a786c7e75cc49c70db5573f026f1c6a86ceaa0168626b762f76322f73686172652d6d6170000163000000000000",
        "000100010001000000000000000104010101010101010101010101010101010101010101010101010101010101010101",
        "0101010101010101010101010101010101010101010101010101010101010140314d54ac952297a5b6ccf2ef0b93c2ea",
        "d2ab9ef8d09b855ae56bad23315eb85c0d5234c3aea48100ac3f80496a9fa601b5c40f9919c8f8552fce457fe883240f",
        "016301010101410401010101010101010101010101010101010101010101010101010101010101010101010101010101",
        "0101010101010101010101010101010101010101010101010105616c69636501d8362323232323232323232323232323",
        "23230202cccc0101010101010101010101010101010101010101010101010101010101010101010101017d0101010101",
        "010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101",
        "010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101",
        "0101010101010101010101010101010101010101010101015b8649c0cfcdbe78a5ff962edfa48914dfd45af22afe358d",
        "e1f4dd7e4567d5ca08010101b817222222222222222222222222222222220303bbbbbb02020233333333333333333333",
        "333333333333444444444444444444444444444444444444444444444444444444444444444401343434343434343434",
        "343434343434344545454545454545454545454545454545454545454545454545454545454545020101010101010101",
        "010101010101010101010101010101010101010101010101010101017d01010101010101010101010101010101010101",
        "010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101",
        "010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101",
        "010101010101010101015b8649c0cfcdbe78a5ff962edfa48914dfd45af22afe358de1f4dd7e4567d5ca080101000000",
        // The end of alice's active record: its shares never refreshed (0).
        "00",
        "0222222222222222222222222222222222b81723232323232323232323232323232323d836d836",
    );
    assert_eq!(hex, expected);
}

#[test]
fn headers_are_checked() {
    let good = sample().encode();
    assert_eq!(VaultState::decode(&[]), Err(StateDecodeError::NotASnapshot));
    assert_eq!(
        VaultState::decode(&good[..9]),
        Err(StateDecodeError::NotASnapshot)
    );
    let mut bad = good.clone();
    bad[0] ^= 1;
    assert_eq!(
        VaultState::decode(&bad),
        Err(StateDecodeError::NotASnapshot)
    );
    let mut future = good.clone();
    future[9] = 6;
    assert_eq!(
        VaultState::decode(&future),
        Err(StateDecodeError::UnknownFormat(6))
    );
    // Formats 2 (reusable tickets), 3 (versions from log positions) and 4 (no refresh
    // clock) are not read.
    for format in [2, 3, 4] {
        let mut old = good.clone();
        old[9] = format;
        assert_eq!(
            VaultState::decode(&old),
            Err(StateDecodeError::UnknownFormat(u16::from(format)))
        );
    }
    let mut long = good.clone();
    long.extend_from_slice(&[0, 0, 0]);
    assert_eq!(
        VaultState::decode(&long),
        Err(StateDecodeError::TrailingBytes(3))
    );
    assert!(matches!(
        VaultState::decode(&good[..good.len() - 1]),
        Err(StateDecodeError::Malformed(_))
    ));
}

#[test]
fn non_canonical_bytes_are_refused() {
    // Two accounts written in descending order: they parse, but are not how we write them.
    let mut state = sample();
    let entry = state.accounts.get(&alice()).cloned().unwrap_or_default();
    *state
        .accounts
        .get_or_insert_default(&AccountId::parse("bob").expect("valid")) = entry;
    let good = state.encode();
    assert_eq!(VaultState::decode(&good).as_ref(), Ok(&state));
    #[derive(Serialize)]
    struct Unordered<'a> {
        last_change: u64,
        version_clock: u64,
        cluster: &'a Option<ClusterConfig>,
        accounts: Vec<(&'a AccountId, &'a Account)>,
    }
    let mut bytes = good[..10].to_vec();
    let body = Unordered {
        last_change: state.last_change,
        version_clock: state.version_clock,
        cluster: &state.cluster,
        accounts: state.accounts.iter().rev().collect(),
    };
    bytes.extend(postcard::to_stdvec(&body).unwrap_or_default());
    assert_eq!(bytes.len(), good.len());
    assert_eq!(
        VaultState::decode(&bytes),
        Err(StateDecodeError::NonCanonical)
    );
}

/// Breaks one invariant of the sample and checks that decoding refuses it.
fn refused(break_it: impl FnOnce(&mut VaultState)) -> Result<VaultState, StateDecodeError> {
    let mut state = sample();
    break_it(&mut state);
    VaultState::decode(&state.encode())
}

fn alice_mut(state: &mut VaultState) -> &mut Account {
    state.accounts.get_or_insert_default(&alice())
}

fn active_mut(state: &mut VaultState) -> &mut ActiveRecord {
    alice_mut(state)
        .active
        .as_mut()
        .expect("the sample has an active record")
}

/// A way to break the sample.
type Breaker = Box<dyn FnOnce(&mut VaultState)>;

#[test]
fn broken_invariants_are_refused() {
    use StateDecodeError::Invalid;
    let cases: Vec<(&str, Breaker)> = vec![
        ("no cluster", Box::new(|s| s.cluster = None)),
        ("index 0", Box::new(|s| s.last_change = 0)),
        (
            "default above max",
            Box::new(|s| {
                if let Some(c) = s.cluster.as_mut() {
                    c.default_guess_limit = limit(9);
                }
            }),
        ),
        (
            "empty account",
            Box::new(|s| {
                let e = alice_mut(s);
                e.active = None;
                e.staged = None;
            }),
        ),
        (
            "tombstone next to active",
            Box::new(|s| alice_mut(s).destroyed = Some(RecordVersion(1))),
        ),
        (
            "five registrations",
            Box::new(|s| {
                let e = alice_mut(s);
                for n in 0..3u8 {
                    e.registrations.push(Registration {
                        request_id: RequestId::new([n; 16]),
                        version: RecordVersion(2),
                    });
                }
            }),
        ),
        (
            "repeated registration",
            Box::new(|s| {
                let e = alice_mut(s);
                let first = e.registrations[0];
                e.registrations.push(first);
            }),
        ),
        (
            "future registration",
            Box::new(|s| alice_mut(s).registrations[0].version = RecordVersion(9_999)),
        ),
        (
            "staged older than active",
            Box::new(|s| {
                if let Some(st) = alice_mut(s).staged.as_mut() {
                    st.version = RecordVersion(2);
                }
            }),
        ),
        (
            "staged in the future",
            Box::new(|s| {
                if let Some(st) = alice_mut(s).staged.as_mut() {
                    st.version = RecordVersion(8_000);
                }
            }),
        ),
        (
            "share map not signed by the identity key",
            Box::new(|s| {
                if let Some(c) = s.cluster.as_mut() {
                    c.identity_key = [7; 32];
                }
            }),
        ),
        (
            "record of a future share map",
            Box::new(|s| active_mut(s).oprf.map_epoch = 2),
        ),
        (
            "record with the wrong threshold",
            Box::new(|s| {
                if let Some(st) = alice_mut(s).staged.as_mut() {
                    st.oprf.threshold = 2;
                }
            }),
        ),
        (
            "reset of a charge not made",
            Box::new(|s| {
                active_mut(s).last_reset = Some(ResetProof {
                    charge: ChargeNumber(9),
                    signature: [0; 64],
                })
            }),
        ),
        (
            "staged limit above max",
            Box::new(|s| {
                if let Some(st) = alice_mut(s).staged.as_mut() {
                    st.guess_limit = limit(6);
                }
            }),
        ),
        (
            "active limit above max",
            Box::new(|s| active_mut(s).guess_limit = limit(6)),
        ),
        (
            "used above limit",
            Box::new(|s| {
                let a = active_mut(s);
                a.guess_limit = limit(1);
            }),
        ),
        (
            "used above last charge",
            Box::new(|s| active_mut(s).last_charge = ChargeNumber(1)),
        ),
        (
            "more charges than entries",
            Box::new(|s| {
                let a = active_mut(s);
                a.guesses_used = 0;
                a.attempts.clear();
                a.last_charge = ChargeNumber(50);
            }),
        ),
        (
            "no version count",
            Box::new(|s| alice_mut(s).last_version = RecordVersion(0)),
        ),
        (
            "version clock behind a version",
            Box::new(|s| s.version_clock = 6_999),
        ),
        (
            "version clock without a cluster",
            Box::new(|s| {
                *s = VaultState::default();
                s.version_clock = 1;
            }),
        ),
        (
            "version count below the staged version",
            Box::new(|s| alice_mut(s).last_version = RecordVersion(5)),
        ),
        (
            "finished a charge not made",
            Box::new(|s| active_mut(s).last_finished = ChargeNumber(3)),
        ),
        (
            "reset of a charge not finished",
            Box::new(|s| {
                active_mut(s).last_reset = Some(ResetProof {
                    charge: ChargeNumber(1),
                    signature: [0; 64],
                })
            }),
        ),
        (
            "attempt table too short",
            Box::new(|s| {
                active_mut(s).attempts.pop_first();
            }),
        ),
        (
            "attempt with a wrong charge",
            Box::new(|s| {
                if let Some(at) = active_mut(s).attempts.values_mut().next() {
                    at.charge = ChargeNumber(2);
                }
            }),
        ),
        (
            "version 0",
            Box::new(|s| {
                let a = active_mut(s);
                a.version = RecordVersion(0);
            }),
        ),
    ];
    for (name, break_it) in cases {
        match refused(break_it) {
            Err(Invalid(_)) => {}
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn rejections_and_retries_leave_the_state_alone() {
    let mut state = sample();
    let before = state.clone();
    let a = alice();
    let retry = state.apply(
        8,
        &Request {
            at_unix_ms: 0,
            command: Command::ChargeGuess {
                account: a.clone(),
                attempt_id: AttemptId::new([0x33; 16]),
                request_hash: [0x44; 32],
            },
        },
    );
    assert!(matches!(
        retry.outcome,
        Outcome::Charged {
            charge: ChargeNumber(1),
            guesses_remaining: 2,
            ..
        }
    ));
    assert!(retry.events.is_empty());
    assert_eq!(state, before);
    let stale = state.apply(
        7,
        &Request {
            at_unix_ms: 0,
            command: Command::Delete { account: a },
        },
    );
    assert_eq!(
        stale.outcome,
        Outcome::Rejected(Rejection::StaleLogIndex { index: 7, last: 7 })
    );
    assert_eq!(state, before);
}

#[test]
fn accounts_with_a_share_count_active_records_naming_the_node() {
    let mut state = sample();
    // alice's active record names node 1 (its staged registration does not count).
    assert_eq!(state.accounts_with_share_of(1), 1);
    assert_eq!(state.accounts_with_share_of(2), 0);
    let bob = AccountId::parse("bob").unwrap();
    let entries = [
        req(8, fixtures::set_share_map(2, 3)),
        req(
            9,
            Command::Stage {
                account: bob.clone(),
                request_id: RequestId::new([0x24; 16]),
                guess_limit: limit(3),
                sealed_record: vec![0xdd; 3],
                oprf: fixtures::oprf_record(2, 3),
            },
        ),
    ];
    for (at, r) in &entries {
        let applied = state.apply(*at, r);
        assert!(
            !matches!(applied.outcome, Outcome::Rejected(_)),
            "{applied:?}"
        );
    }
    // Staged only: nobody holds bob's shares yet.
    assert_eq!(state.accounts_with_share_of(2), 0);
    let version = state
        .account_status(&bob)
        .staged
        .expect("bob's record is staged");
    let applied = state.apply(
        10,
        &req(
            10,
            Command::Activate {
                account: bob,
                version,
            },
        )
        .1,
    );
    assert!(
        !matches!(applied.outcome, Outcome::Rejected(_)),
        "{applied:?}"
    );
    assert_eq!(state.accounts_with_share_of(1), 2);
    assert_eq!(state.accounts_with_share_of(3), 1);
    assert_eq!(state.accounts_with_share_of(4), 0);
}

/// Versions follow the entries' clock, not the number of registrations: a client that
/// registers twice learns the time between, not how many others registered.
#[test]
fn versions_follow_the_clock_and_never_repeat() {
    let mut state = sample();
    let stage = |account: &str, id: u8| Command::Stage {
        account: AccountId::parse(account).expect("valid"),
        request_id: RequestId::new([id; 16]),
        guess_limit: limit(3),
        sealed_record: vec![id; 2],
        oprf: fixtures::oprf_record(1, 1),
    };
    let staged = |applied: Applied| match applied.outcome {
        Outcome::Staged { version } => version.get(),
        other => panic!("{other:?}"),
    };
    let mut index = 7;
    let mut at = |state: &mut VaultState, ms: u64, command: Command| {
        index += 1;
        state.apply(
            index,
            &Request {
                at_unix_ms: ms,
                command,
            },
        )
    };
    assert_eq!(state.version_clock(), 7_000);
    let first = staged(at(&mut state, 5, stage("carol", 1)));
    // One above the highest issued: the clock (5 ms, 5,000 µs) is behind it.
    assert_eq!(first, 7_001);
    // A hundred registrations of others in the same millisecond step by one each...
    for n in 0..100u8 {
        staged(at(&mut state, 5, stage(&format!("other-{n}"), n)));
    }
    // ...and once the clock is ahead, the next version is the clock, whatever came between.
    assert_eq!(staged(at(&mut state, 6, stage("carol", 2))), 7_102);
    assert_eq!(
        staged(at(&mut state, 50_000, stage("carol", 3))),
        50_000_000
    );
    for n in 0..100u8 {
        staged(at(
            &mut state,
            50_001,
            stage(&format!("other-{n}"), n.wrapping_add(100)),
        ));
    }
    assert_eq!(
        staged(at(&mut state, 60_000, stage("carol", 4))),
        60_000_000,
        "the hundred registrations between do not show"
    );
    // A barrier answers the highest version issued; the clock survives a snapshot and a
    // delete, so no version is issued twice.
    assert_eq!(
        at(&mut state, 60_000, Command::Barrier).outcome,
        Outcome::Barrier {
            through: RecordVersion(60_000_000)
        }
    );
    let carol = AccountId::parse("carol").expect("valid");
    at(&mut state, 60_000, Command::Delete { account: carol });
    let mut state = VaultState::decode(&state.encode()).expect("decodes");
    assert_eq!(state.version_clock(), 60_000_000);
    assert_eq!(
        staged(at(&mut state, 60_000, stage("carol", 5))),
        60_000_001
    );
}

/// A state with the map of epoch 1 (nodes 1 to 3) and `record` active as alice's version
/// 3000.
fn with_active_record(record: OprfRecord) -> VaultState {
    let mut state = VaultState::default();
    let setup = [
        req(1, fixtures::bootstrap(limit(3), limit(5))),
        req(2, fixtures::set_share_map(1, 3)),
        req(
            3,
            Command::Stage {
                account: alice(),
                request_id: RequestId::new([0x22; 16]),
                guess_limit: limit(3),
                sealed_record: vec![0xbb; 3],
                oprf: record,
            },
        ),
        req(
            4,
            Command::Activate {
                account: alice(),
                version: RecordVersion(3000),
            },
        ),
    ];
    for (at, r) in &setup {
        let applied = state.apply(*at, r);
        assert!(
            !matches!(applied.outcome, Outcome::Rejected(_)),
            "{applied:?}"
        );
    }
    state
}

/// A record of three holders with real commitments (shares of a random key), and a share
/// for node 4 as repair would make it: the commitment the holders' give at 4, and a
/// ciphertext of the share to a software key.
fn repairable_record() -> (OprfRecord, Vec<crate::oprf::KeyShare>, StoredShare) {
    use crate::oprf::{self, OprfKey, ShareContext, SoftwareShareKey};
    let mut rng = rand::rngs::OsRng;
    let key = OprfKey::generate(&mut rng);
    let split = oprf::split(&key, &[1, 2, 3, 4], 2, &mut rng).expect("split");
    let receive = SoftwareShareKey::generate(&mut rng).public();
    let mut stored = |(share, commitment): &(oprf::KeyShare, oprf::Commitment)| {
        let context = ShareContext {
            cluster_name: "test".into(),
            account: alice(),
            node_id: share.index(),
            guess_limit: 3,
            reset_key: [0; 32],
            commitment: *commitment,
        };
        StoredShare {
            node_id: share.index(),
            commitment: *commitment.as_bytes(),
            ciphertext: oprf::encrypt_share(&receive, share, &context, &mut rng)
                .as_bytes()
                .to_vec(),
        }
    };
    let mut record = fixtures::oprf_record(1, 3);
    record.shares = split[..3].iter().map(&mut stored).collect();
    let fourth = stored(&split[3]);
    let shares = split.into_iter().map(|(s, _)| s).collect();
    (record, shares, fourth)
}

#[test]
fn a_repaired_share_joins_the_record_only_on_its_polynomial_and_for_a_voter_of_the_map() {
    let a = alice();
    let (record, _, fourth) = repairable_record();
    let mut state = with_active_record(record);
    let add = |helpers: &[u64], share: &StoredShare| Command::AddShare {
        account: a.clone(),
        version: RecordVersion(3000),
        helpers: helpers.to_vec(),
        share: share.clone(),
    };
    // Node 4 is not in the map in force yet.
    let refused = state.apply(5, &req(5, add(&[1, 2], &fourth)).1);
    assert!(
        matches!(&refused.outcome, Outcome::Rejected(Rejection::BadRepair(why)) if why.contains("share map")),
        "{refused:?}"
    );
    assert_eq!(state.share_coverage(4).missing, 1);
    // Node 3 leaves, node 4 joins.
    let map = Command::SetShareMap {
        map: fixtures::share_map_of(2, &[1, 2, 4]),
    };
    let applied = state.apply(6, &req(6, map).1);
    assert!(!matches!(applied.outcome, Outcome::Rejected(_)));
    let before = state.clone();
    let mut bad_commitment = fourth.clone();
    bad_commitment.commitment = before.active_record(&a).expect("active").oprf.shares[2].commitment;
    let refusals: [(&[u64], &StoredShare, &str); 6] = [
        (&[1], &fourth, "threshold"),
        (&[2, 1], &fourth, "increasing"),
        (&[1, 5], &fourth, "helper 5"),
        (&[1, 3], &fourth, "helper 3 is not in the share map"),
        (&[1, 2], &bad_commitment, "polynomial"),
        (
            &[1, 2],
            &StoredShare {
                ciphertext: vec![4; 125],
                ..fourth.clone()
            },
            "ciphertext",
        ),
    ];
    for (at, (helpers, share, why)) in (7..).zip(refusals) {
        let refused = state.apply(at, &req(at, add(helpers, share)).1);
        assert!(
            matches!(&refused.outcome, Outcome::Rejected(Rejection::BadRepair(w)) if w.contains(why)),
            "{why}: {refused:?}"
        );
        assert_eq!(state, before, "a refused repair changes nothing");
    }
    let added = state.apply(20, &req(20, add(&[1, 2], &fourth)).1);
    assert_eq!(
        added.outcome,
        Outcome::ShareAdded {
            version: RecordVersion(3000),
            node_id: 4
        }
    );
    assert_eq!(added.events[0].kind, AuditKind::ShareRepaired);
    let holders: Vec<u64> = state
        .active_record(&a)
        .expect("active")
        .oprf
        .holders()
        .collect();
    // Node 3, out of the map, is no longer a holder of the record.
    assert_eq!(holders, [1, 2, 4]);
    // A repaired record goes through a snapshot (the codec's invariants allow it).
    assert_eq!(VaultState::decode(&state.encode()), Ok(state.clone()));
    assert_eq!(
        state.share_coverage(4),
        ShareCoverage {
            held: 1,
            missing: 0
        }
    );
    assert_eq!(state.records_missing_share_of(4, None, 10).0, []);
    // The same share again (a retried proposal) changes nothing; another share for the
    // same node is refused.
    let after = state.clone();
    let again = state.apply(21, &req(21, add(&[1, 2], &fourth)).1);
    assert!(matches!(again.outcome, Outcome::ShareAdded { .. }) && again.events.is_empty());
    let other = StoredShare {
        ciphertext: before.active_record(&a).unwrap().oprf.shares[0]
            .ciphertext
            .clone(),
        ..fourth.clone()
    };
    let refused = state.apply(22, &req(22, add(&[1, 2], &other)).1);
    assert!(matches!(
        refused.outcome,
        Outcome::Rejected(Rejection::BadRepair(_))
    ));
    assert_eq!(state, after);
    // A version that is not the active one.
    let stale = Command::AddShare {
        account: a.clone(),
        version: RecordVersion(2999),
        helpers: vec![1, 2],
        share: fourth,
    };
    assert_eq!(
        state.apply(23, &req(23, stale).1).outcome,
        Outcome::Rejected(Rejection::VersionNotActive)
    );
}

/// `shares` refreshed with a sharing of zero over `participants` (real commitments), each
/// encrypted to a software key as its node would: the stored shares and the new key shares.
fn refreshed_shares(
    shares: &[crate::oprf::KeyShare],
    participants: &[u64],
    threshold: u16,
) -> (Vec<StoredShare>, Vec<crate::oprf::KeyShare>) {
    use crate::oprf::{self, RefreshContext, ShareContext, SoftwareShareKey};
    let mut rng = rand::rngs::OsRng;
    let keys: Vec<SoftwareShareKey> = participants
        .iter()
        .map(|_| SoftwareShareKey::generate(&mut rng))
        .collect();
    let publics: Vec<oprf::P256PublicKey> = keys.iter().map(|k| k.public()).collect();
    let mine: Vec<&oprf::KeyShare> = participants
        .iter()
        .map(|x| shares.iter().find(|s| s.index() == *x).expect("a share"))
        .collect();
    let context = RefreshContext {
        cluster_name: "test".into(),
        account: alice(),
        version: 3000,
        guess_limit: 3,
        reset_key: [0; 32],
        threshold,
        participants: mine.iter().map(|s| (s.index(), s.commitment())).collect(),
    };
    let dealt: Vec<Vec<oprf::ShareCiphertext>> = participants
        .iter()
        .map(|x| oprf::deal_refresh(*x, &context, &publics, &mut rng).expect("deal"))
        .collect();
    mine.iter()
        .enumerate()
        .map(|(b, share)| {
            let pieces: Vec<oprf::ShareCiphertext> = dealt.iter().map(|d| d[b].clone()).collect();
            let zs: Vec<_> = pieces
                .iter()
                .map(|p| keys[b].diffie_hellman(p.ephemeral_public()).expect("ecdh"))
                .collect();
            let new =
                oprf::apply_refresh(share, &publics[b], &context, &pieces, &zs).expect("apply");
            let own = ShareContext {
                cluster_name: "test".into(),
                account: alice(),
                node_id: new.index(),
                guess_limit: 3,
                reset_key: [0; 32],
                commitment: new.commitment(),
            };
            let stored = StoredShare {
                node_id: new.index(),
                commitment: *new.commitment().as_bytes(),
                ciphertext: oprf::encrypt_share(&publics[b], &new, &own, &mut rng)
                    .as_bytes()
                    .to_vec(),
            };
            (stored, new)
        })
        .unzip()
}

#[test]
fn refreshed_shares_replace_the_records_only_if_they_share_its_key_among_voters_of_the_map() {
    let a = alice();
    let (record, shares, _) = repairable_record();
    let mut state = with_active_record(record.clone());
    let refresh_from = |from: &OprfRecord, shares: &[StoredShare]| Command::RefreshShares {
        account: a.clone(),
        version: RecordVersion(3000),
        from: from.shares_digest(),
        shares: shares.to_vec(),
    };
    let current = |state: &VaultState| state.active_record(&a).expect("active").oprf;
    let refresh =
        |state: &VaultState, shares: &[StoredShare]| refresh_from(&current(state), shares);
    let (good, new_keys) = refreshed_shares(&shares, &[1, 2, 3], 2);
    let before = state.clone();
    // Another key's sharing (consistent among themselves).
    let (other_key, _, _) = repairable_record();
    // One share left as it was: off the new polynomial.
    let mut one_stale = good.clone();
    one_stale[2] = record.shares[2].clone();
    // Exactly the threshold, one of them old: on some polynomial, of another key.
    let old_and_new = vec![record.shares[0].clone(), good[1].clone()];
    // A share for node 4, which holds none of the record (on the refreshed polynomial).
    let with_4 = {
        let (all, _) = refreshed_shares(&shares, &[1, 2, 3, 4], 2);
        vec![all[0].clone(), all[3].clone()]
    };
    let mut bad_ciphertext = good.clone();
    bad_ciphertext[1].ciphertext = vec![4; 125];
    let refusals: [(Vec<StoredShare>, &str); 7] = [
        (good[..1].to_vec(), "threshold"),
        (vec![good[1].clone(), good[0].clone()], "increasing"),
        (other_key.shares.clone(), "key"),
        (one_stale, "polynomial"),
        (old_and_new, "key"),
        (with_4, "node 4 holds no share"),
        (bad_ciphertext, "ciphertext"),
    ];
    for (at, (shares, why)) in (5..).zip(refusals) {
        let refused = state.apply(at, &req(at, refresh(&state, &shares)).1);
        assert!(
            matches!(&refused.outcome, Outcome::Rejected(Rejection::BadRefresh(w)) if w.contains(why)),
            "{why}: {refused:?}"
        );
        assert_eq!(state, before, "a refused refresh changes nothing");
    }
    // A version that is not the active one.
    let stale = Command::RefreshShares {
        account: a.clone(),
        version: RecordVersion(2999),
        from: record.shares_digest(),
        shares: good.clone(),
    };
    assert_eq!(
        state.apply(15, &req(15, stale).1).outcome,
        Outcome::Rejected(Rejection::VersionNotActive)
    );
    assert_eq!(state, before);
    // The honest refresh over all three holders applies.
    let applied = state.apply(20, &req(20, refresh(&state, &good)).1);
    assert_eq!(
        applied.outcome,
        Outcome::SharesRefreshed {
            version: RecordVersion(3000)
        }
    );
    assert_eq!(applied.events[0].kind, AuditKind::SharesRefreshed);
    assert_eq!(state.active_record(&a).expect("active").oprf.shares, good);
    // The same again (a retried proposal) changes nothing.
    let after = state.clone();
    let again = state.apply(21, &req(21, refresh_from(&record, &good)).1);
    assert!(matches!(again.outcome, Outcome::SharesRefreshed { .. }) && again.events.is_empty());
    assert_eq!(state, after);
    // Another refresh made from the shares before this one (a stale pass, or an old one
    // replayed) is refused, though it shares the key.
    let (stale_refresh, _) = refreshed_shares(&shares, &[1, 2, 3], 2);
    let refused = state.apply(21, &req(21, refresh_from(&record, &stale_refresh)).1);
    assert!(
        matches!(&refused.outcome, Outcome::Rejected(Rejection::BadRefresh(w)) if w.contains("no longer")),
        "{refused:?}"
    );
    assert_eq!(state, after);
    // Node 3 leaves the map: a refresh naming it is refused; one over nodes 1 and 2 (the
    // threshold) applies and drops node 3's share.
    let applied = state.apply(22, &req(22, fixtures::set_share_map(2, 2)).1);
    assert!(
        !matches!(applied.outcome, Outcome::Rejected(_)),
        "{applied:?}"
    );
    let in_map = state.clone();
    let (with_3, _) = refreshed_shares(&new_keys, &[1, 2, 3], 2);
    let refused = state.apply(23, &req(23, refresh(&state, &with_3)).1);
    assert!(
        matches!(&refused.outcome, Outcome::Rejected(Rejection::BadRefresh(w)) if w.contains("share map")),
        "{refused:?}"
    );
    assert_eq!(state, in_map);
    let (two, _) = refreshed_shares(&new_keys, &[1, 2], 2);
    let applied = state.apply(24, &req(24, refresh(&state, &two)).1);
    assert!(
        matches!(applied.outcome, Outcome::SharesRefreshed { .. }),
        "{applied:?}"
    );
    let holders: Vec<u64> = state
        .active_record(&a)
        .expect("active")
        .oprf
        .holders()
        .collect();
    assert_eq!(holders, [1, 2]);
}

#[test]
fn a_refresh_dates_the_records_sharing_from_its_entrys_clock() {
    let a = alice();
    let (record, shares, _) = repairable_record();
    // Registered by the entry of clock 3 ms (version 3000 µs).
    let mut state = with_active_record(record.clone());
    let due = |state: &VaultState, before: u64| {
        let (records, next) = state.records_dealt_before(None, 10, before);
        assert_eq!(next, None, "one scan covers the state");
        records
            .into_iter()
            .map(|(a, v, _)| (a, v))
            .collect::<Vec<_>>()
    };
    assert!(due(&state, 3).is_empty(), "dealt at 3 ms, not before");
    assert_eq!(due(&state, 4), [(a.clone(), RecordVersion(3000))]);
    assert_eq!(due(&state, u64::MAX).len(), 1);

    let (good, _) = refreshed_shares(&shares, &[1, 2, 3], 2);
    let refresh = Command::RefreshShares {
        account: a.clone(),
        version: RecordVersion(3000),
        from: record.shares_digest(),
        shares: good,
    };
    let applied = state.apply(9, &req(9_000, refresh).1);
    assert!(
        matches!(applied.outcome, Outcome::SharesRefreshed { .. }),
        "{applied:?}"
    );
    assert!(due(&state, 9_000).is_empty(), "refreshed at 9,000 ms");
    assert_eq!(due(&state, 9_001).len(), 1);
    // The date is part of the state: it survives a snapshot and changes the digest.
    let bytes = state.encode();
    assert_eq!(VaultState::decode(&bytes).as_ref(), Ok(&state));
    assert!(due(&VaultState::decode(&bytes).expect("decodes"), 9_000).is_empty());
}
