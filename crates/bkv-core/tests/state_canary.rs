//! Structure test: the state handles sealed blobs as opaque bytes. With random blobs that
//! each carry a canary, no outcome but `Charged` and no audit event ever holds a blob, a
//! `Charged` outcome holds exactly its record's blob, and the snapshot holds the blobs of
//! the live records and nothing of the staged-over, superseded, destroyed or deleted ones.
//!
//! (The plaintext canary test with real OPAQUE records lives with the OPAQUE server.)

use std::collections::BTreeMap;

use bkv_core::fixtures;
use bkv_core::{
    AccountId, AttemptId, ChargeNumber, ClusterId, Command, GuessLimit, Outcome, RecordStatus,
    RecordVersion, Request, RequestId, VaultState,
};
use proptest::prelude::*;

const CANARY: &[u8] = b"CANARY-7f3a";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

#[derive(Debug, Clone)]
enum Step {
    Stage { acct: u8, noise: Vec<u8> },
    ActivateLatest { acct: u8 },
    Charge { acct: u8, attempt: u8 },
    ResetLatest { acct: u8 },
    Delete { acct: u8 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..3u8, prop::collection::vec(any::<u8>(), 16..48))
            .prop_map(|(acct, noise)| Step::Stage { acct, noise }),
        3 => (0..3u8).prop_map(|acct| Step::ActivateLatest { acct }),
        6 => (0..3u8, 0..6u8).prop_map(|(acct, attempt)| Step::Charge { acct, attempt }),
        2 => (0..3u8).prop_map(|acct| Step::ResetLatest { acct }),
        1 => (0..3u8).prop_map(|acct| Step::Delete { acct }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn blobs_appear_only_where_they_belong(
        setup_noise in prop::collection::vec(any::<u8>(), 16..48),
        steps in prop::collection::vec(step(), 1..80),
    ) {
        let limit = |n| GuessLimit::parse_max(n).expect("in range");
        let account = |n: u8| AccountId::parse(&format!("acct-{n}")).expect("valid");
        let mut state = VaultState::default();
        let mut setup = setup_noise.clone();
        setup.extend_from_slice(b"SETUP-CANARY");
        let boot = state.apply(1, &Request {
            at_unix_ms: 0,
            command: Command::Bootstrap {
                cluster_id: ClusterId::new([3; 16]),
                cluster_name: fixtures::CLUSTER_NAME.into(),
                sealed_server_setup: setup.clone(),
                key_check_value: [0; 3],
                key_id: [0; 8],
                default_guess_limit: limit(2),
                max_guess_limit: limit(2),
                identity_key: fixtures::identity().verifying_key().to_bytes(),
            },
        });
        prop_assert_eq!(boot.outcome, Outcome::Bootstrapped);
        let mapped = state.apply(2, &Request { at_unix_ms: 0, command: fixtures::set_share_map(1, 3) });
        prop_assert_eq!(mapped.outcome, Outcome::ShareMapSet { epoch: 1 });
        // Every blob staged, by account and version, and the blobs of deleted accounts.
        let mut blobs: BTreeMap<(u8, RecordVersion), Vec<u8>> = BTreeMap::new();
        let mut deleted: Vec<Vec<u8>> = Vec::new();
        let mut latest: BTreeMap<u8, RecordVersion> = BTreeMap::new();
        let mut last_charge: BTreeMap<u8, (RecordVersion, ChargeNumber)> = BTreeMap::new();
        for (i, step) in steps.into_iter().enumerate() {
            let index = i as u64 + 3;
            let mut staging = None;
            let command = match step {
                Step::Stage { acct, noise } => {
                    let mut blob = noise;
                    blob.extend_from_slice(CANARY);
                    blob.extend_from_slice(&index.to_be_bytes());
                    staging = Some(blob.clone());
                    Command::Stage {
                        account: account(acct),
                        request_id: RequestId::new([index as u8; 16]),
                        guess_limit: limit(2),
                        sealed_record: blob,
                        oprf: fixtures::oprf_record(1, 3),
                    }
                }
                Step::ActivateLatest { acct } => Command::Activate {
                    account: account(acct),
                    version: latest.get(&acct).copied().unwrap_or_default(),
                },
                Step::Charge { acct, attempt } => Command::ChargeGuess {
                    account: account(acct),
                    attempt_id: AttemptId::new([attempt; 16]),
                    request_hash: [attempt; 32],
                },
                Step::ResetLatest { acct } => {
                    let (version, charge) = last_charge.get(&acct).copied().unwrap_or_default();
                    fixtures::reset(&account(acct), version, charge)
                }
                Step::Delete { acct } => {
                    let gone: Vec<_> = blobs.keys().filter(|(a, _)| *a == acct).copied().collect();
                    for key in gone {
                        deleted.extend(blobs.remove(&key));
                    }
                    latest.remove(&acct);
                    Command::Delete { account: account(acct) }
                }
            };
            let acct = match &command {
                Command::Stage { account, .. }
                | Command::Activate { account, .. }
                | Command::ChargeGuess { account, .. }
                | Command::ResetGuesses { account, .. }
                | Command::Delete { account } => account.clone(),
                _ => unreachable!("no other commands here"),
            };
            let applied = state.apply(index, &Request { at_unix_ms: 0, command });
            let n = acct.as_str().as_bytes()[5] - b'0';
            if let (Some(blob), Outcome::Staged { version }) = (staging, &applied.outcome) {
                prop_assert!(!blobs.contains_key(&(n, *version)), "a version staged twice");
                blobs.insert((n, *version), blob);
                latest.insert(n, *version);
            }

            // Events never carry a blob.
            let events = postcard::to_stdvec(&applied.events).expect("encodes");
            prop_assert!(!contains(&events, CANARY) && !contains(&events, b"SETUP-CANARY"));
            // Only `Charged` carries a blob, and exactly its own record's.
            let outcome = postcard::to_stdvec(&applied.outcome).expect("encodes");
            match &applied.outcome {
                Outcome::Charged { version, charge, sealed_record, .. } => {
                    prop_assert_eq!(Some(sealed_record), blobs.get(&(n, *version)));
                    prop_assert_eq!(count(&outcome, CANARY), 1);
                    last_charge.insert(n, (*version, *charge));
                }
                _ => prop_assert!(!contains(&outcome, CANARY)),
            }

            // The snapshot holds the blobs of live records, and no other.
            let snapshot = state.encode();
            let mut live = Vec::new();
            for n in 0..3u8 {
                let status = state.account_status(&account(n));
                live.extend(status.staged.map(|v| (n, v)));
                if let RecordStatus::Active { version, .. } = status.record {
                    live.push((n, version));
                }
            }
            for (key, blob) in &blobs {
                prop_assert_eq!(
                    contains(&snapshot, blob),
                    live.contains(key),
                    "blob of {:?} (live {:?})", key, live
                );
            }
            for blob in &deleted {
                prop_assert!(!contains(&snapshot, blob), "a deleted account's blob");
            }
            prop_assert_eq!(count(&snapshot, CANARY), live.len());
            prop_assert_eq!(count(&snapshot, b"SETUP-CANARY"), 1);
        }
    }
}
