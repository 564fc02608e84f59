//! `VaultState::apply` of the two commands every recovery commits, `ChargeGuess` and
//! `ResetGuesses` (whose apply verifies the client's Ed25519 reset signature), on states of
//! 10 thousand and 1 million active accounts, each record a realistic 330-byte sealed blob
//! with the public OPRF half of protocol v2 (three shares: commitments and 125-byte
//! ciphertexts, the reset key, the KSF parameters). Also prints what such a state takes:
//! resident memory and the size of its encoding (what a snapshot holds on disk).
//!
//! `cargo bench -p bkv-core --bench apply` (building the 1M state takes a few seconds).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bkv_core::ids::{AccountId, AttemptId, GuessLimit, RequestId};
use bkv_core::{Command, Outcome, Request, VaultState, fixtures};
use criterion::{Criterion, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng as _, RngCore as _, SeedableRng as _};

/// Bytes of a sealed record: password file (192), sealed key (60), policy and the HSM
/// blob's header and tag.
const SEALED_RECORD_LEN: usize = 330;

fn request(command: Command) -> Request {
    Request {
        at_unix_ms: 1_700_000_000_000,
        command,
    }
}

fn account(i: u64) -> AccountId {
    AccountId::parse(&format!("user-{i:08}@example.com")).expect("valid account id")
}

/// Resident set size of this process, bytes (Linux).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// A bootstrapped state (the fixtures' cluster and share map: three holders) with `n` active
/// accounts; returns it and the next log index.
fn state_with(n: u64) -> (VaultState, u64) {
    let mut rng = StdRng::seed_from_u64(n);
    let mut state = VaultState::default();
    let mut index = 1;
    let boot = state.apply(
        index,
        &request(fixtures::bootstrap(
            GuessLimit::DEFAULT,
            GuessLimit::DEFAULT,
        )),
    );
    assert_eq!(boot.outcome, Outcome::Bootstrapped);
    index += 1;
    let map = state.apply(index, &request(fixtures::set_share_map(1, 3)));
    assert_eq!(map.outcome, Outcome::ShareMapSet { epoch: 1 });
    let oprf = fixtures::oprf_record(1, 3);
    let mut record = vec![0u8; SEALED_RECORD_LEN];
    for i in 0..n {
        rng.fill_bytes(&mut record);
        let mut rid = [0u8; 16];
        rng.fill_bytes(&mut rid);
        index += 1;
        let staged = state.apply(
            index,
            &request(Command::Stage {
                account: account(i),
                request_id: RequestId::new(rid),
                guess_limit: GuessLimit::DEFAULT,
                sealed_record: record.clone(),
                oprf: oprf.clone(),
            }),
        );
        let Outcome::Staged { version } = staged.outcome else {
            panic!("stage: {:?}", staged.outcome);
        };
        index += 1;
        state.apply(
            index,
            &request(Command::Activate {
                account: account(i),
                version,
            }),
        );
    }
    (state, index + 1)
}

fn bench_apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("vault_state_apply");
    for n in [10_000u64, 1_000_000] {
        let before = rss_bytes();
        let built = Instant::now();
        let (mut state, mut index) = state_with(n);
        let took = built.elapsed();
        let rss = rss_bytes().saturating_sub(before);
        let encoded = state.encode().len();
        println!(
            "state of {n} accounts: built in {:.1} s; resident memory +{:.1} MiB ({:.0} B per \
             account); encoded (snapshot) {:.1} MiB ({:.0} B per account)",
            took.as_secs_f64(),
            rss as f64 / (1 << 20) as f64,
            rss as f64 / n as f64,
            encoded as f64 / (1 << 20) as f64,
            encoded as f64 / n as f64,
        );
        let mut rng = StdRng::seed_from_u64(7);
        let label = if n >= 1_000_000 { "1M" } else { "10k" };
        // Each iteration charges a random account and resets it so that the state stays the
        // same size: the charge alone is timed, then (below) the reset alone.
        group.bench_function(format!("charge_guess/{label}_accounts"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| timed_charge(&mut state, &mut index, &mut rng, n, false))
                    .sum()
            })
        });
        group.bench_function(format!("reset_guesses/{label}_accounts"), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let a = account(rng.gen_range(0..n));
                    let mut attempt = [0u8; 16];
                    rng.fill_bytes(&mut attempt);
                    index += 1;
                    let applied = state.apply(
                        index,
                        &request(Command::ChargeGuess {
                            account: a.clone(),
                            attempt_id: AttemptId::new(attempt),
                            request_hash: [5; 32],
                        }),
                    );
                    let Outcome::Charged {
                        version, charge, ..
                    } = applied.outcome
                    else {
                        panic!("charge: {:?}", applied.outcome);
                    };
                    let reset = request(fixtures::reset(&a, version, charge));
                    index += 1;
                    let started = Instant::now();
                    let applied = black_box(state.apply(index, &reset));
                    timed += started.elapsed();
                    assert!(
                        matches!(applied.outcome, Outcome::Reset { reset: true, .. }),
                        "reset: {:?}",
                        applied.outcome
                    );
                }
                timed
            })
        });
        // A reset signed by another key (one a node made up): refused on the signature,
        // which every replica verifies; the state does not change, so no charge is needed.
        let forged = {
            let a = account(0);
            request(Command::ResetGuesses {
                account: a.clone(),
                version: version_of(&state, &a),
                charge: last_charge_of(&state, &a),
                signature: [7; 64],
            })
        };
        group.bench_function(format!("reset_guesses_forged/{label}_accounts"), |b| {
            b.iter(|| {
                index += 1;
                let applied = black_box(state.apply(index, &forged));
                assert_eq!(
                    applied.outcome,
                    Outcome::Rejected(bkv_core::Rejection::BadResetSignature)
                );
            })
        });
        // A charge while a snapshot still holds a clone of the state and shares the charged
        // account's chunk (the worst case: the apply copies the chunk's keys and pointers).
        group.bench_function(format!("charge_guess_shared/{label}_accounts"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| timed_charge(&mut state, &mut index, &mut rng, n, true))
                    .sum()
            })
        });
        // What a snapshot does under the state lock: clone the state (shared chunks).
        group.bench_function(format!("clone/{label}_accounts"), |b| {
            b.iter(|| black_box(state.clone()))
        });
        // What it then does with the lock released: encode the clone.
        group.sample_size(10);
        group.bench_function(format!("encode/{label}_accounts"), |b| {
            b.iter(|| black_box(state.encode().len()))
        });
        group.sample_size(30);
        drop(state);
    }
    group.finish();
}

/// The active version of `account`.
fn version_of(state: &VaultState, account: &AccountId) -> bkv_core::RecordVersion {
    match state.account_status(account).record {
        bkv_core::RecordStatus::Active { version, .. } => version,
        other => panic!("not active: {other:?}"),
    }
}

/// The latest charge on `account`'s active record.
fn last_charge_of(state: &VaultState, account: &AccountId) -> bkv_core::ChargeNumber {
    match state.account_status(account).record {
        bkv_core::RecordStatus::Active { last_charge, .. } => last_charge,
        other => panic!("not active: {other:?}"),
    }
}

/// Charges a random one of the `n` accounts, then resets it so that the state stays the same
/// size, and returns how long the charge alone took. With `shared`, a clone of the state (a
/// snapshot in progress) is held across the charge.
fn timed_charge(
    state: &mut VaultState,
    index: &mut u64,
    rng: &mut StdRng,
    n: u64,
    shared: bool,
) -> Duration {
    let snapshot = shared.then(|| state.clone());
    let a = account(rng.gen_range(0..n));
    let mut attempt = [0u8; 16];
    rng.fill_bytes(&mut attempt);
    let charge = request(Command::ChargeGuess {
        account: a.clone(),
        attempt_id: AttemptId::new(attempt),
        request_hash: [5; 32],
    });
    *index += 1;
    let started = Instant::now();
    let applied = black_box(state.apply(*index, &charge));
    let took = started.elapsed();
    drop(snapshot);
    let Outcome::Charged {
        version, charge, ..
    } = applied.outcome
    else {
        panic!("charge: {:?}", applied.outcome);
    };
    *index += 1;
    let reset = state.apply(*index, &request(fixtures::reset(&a, version, charge)));
    assert!(
        matches!(reset.outcome, Outcome::Reset { reset: true, .. }),
        "reset: {:?}",
        reset.outcome
    );
    took
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_apply
}
criterion_main!(benches);
