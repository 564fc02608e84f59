//! Hostile snapshot bytes: decoding never panics, refuses every truncation, and accepts
//! only canonical bytes (anything it accepts re-encodes to the very same bytes).

use bkv_core::fixtures;
use bkv_core::{
    AccountId, AttemptId, ChargeNumber, Command, GuessLimit, RecordVersion, Request, RequestId,
    StateDecodeError, VaultState,
};
use proptest::prelude::*;

/// A state built from a random but mostly successful list of commands.
fn state() -> impl Strategy<Value = VaultState> {
    prop::collection::vec((0..6u8, 0..3u8, 0..4u8, 1..=4u32), 0..40).prop_map(|steps| {
        let mut s = VaultState::default();
        let limit = |n| GuessLimit::parse_max(n).expect("in range");
        let apply = |s: &mut VaultState, index: u64, command| {
            s.apply(
                index,
                &Request {
                    at_unix_ms: 0,
                    command,
                },
            )
        };
        apply(&mut s, 1, fixtures::bootstrap(limit(3), limit(4)));
        apply(&mut s, 2, fixtures::set_share_map(1, 3));
        let mut last_staged = 0;
        for (i, (kind, acct, n, lim)) in steps.into_iter().enumerate() {
            let index = i as u64 + 3;
            let account = AccountId::parse(&format!("a{acct}")).expect("valid");
            let command = match kind {
                0 => Command::Stage {
                    account,
                    request_id: RequestId::new([n; 16]),
                    guess_limit: limit(lim),
                    sealed_record: vec![n; usize::from(n) * 5],
                    oprf: fixtures::oprf_record(1, 3),
                },
                1 => Command::Activate {
                    account,
                    version: RecordVersion(last_staged),
                },
                2 | 3 => Command::ChargeGuess {
                    account,
                    attempt_id: AttemptId::new([n; 16]),
                    request_hash: [lim as u8; 32],
                },
                4 => fixtures::reset(
                    &account,
                    RecordVersion(last_staged),
                    ChargeNumber(u64::from(n)),
                ),
                _ => Command::Delete { account },
            };
            if kind == 0 {
                last_staged = index;
            }
            apply(&mut s, index, command);
        }
        s
    })
}

/// Accepted bytes are exactly the encoding of what they decode to.
fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(s) = VaultState::decode(bytes) {
        prop_assert_eq!(s.encode(), bytes);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        check(&bytes)?;
    }

    #[test]
    fn random_bodies_behind_a_good_header_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        // The format this code reads, so that the bodies reach the body decoder.
        let mut bytes = b"bkvstate\x00\x05".to_vec();
        bytes.extend(body);
        check(&bytes)?;
    }

    #[test]
    fn snapshots_round_trip_and_every_truncation_fails(s in state()) {
        let bytes = s.encode();
        let back = VaultState::decode(&bytes);
        prop_assert_eq!(back, Ok(s));
        for len in 0..bytes.len() {
            prop_assert!(VaultState::decode(&bytes[..len]).is_err(), "prefix {} accepted", len);
        }
        let mut long = bytes.clone();
        long.push(0);
        prop_assert_eq!(VaultState::decode(&long), Err(StateDecodeError::TrailingBytes(1)));
    }

    #[test]
    fn altered_snapshots_never_panic(
        s in state(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = s.encode();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        check(&bytes)?;
    }
}
