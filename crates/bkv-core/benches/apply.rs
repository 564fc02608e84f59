//! `VaultState::apply` of the two commands every recovery commits, `ChargeGuess` and
//! `ResetGuesses`, on states of 10 thousand and 1 million active accounts, each record a
//! realistic 330-byte sealed blob. Also prints what such a state takes: resident memory
//! and the size of its encoding (what a snapshot holds on disk).
//!
//! `cargo bench -p bkv-core --bench apply` (building the 1M state takes a few seconds).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bkv_core::ids::{
    AccountId, AttemptId, ChargeNumber, ClusterId, GuessLimit, RecordVersion, RequestId,
};
use bkv_core::{Command, Outcome, Request, VaultState};
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

/// A bootstrapped state with `n` active accounts; returns it and the next log index.
fn state_with(n: u64) -> (VaultState, u64) {
    let mut rng = StdRng::seed_from_u64(n);
    let mut state = VaultState::default();
    let mut index = 1;
    let boot = state.apply(
        index,
        &request(Command::Bootstrap {
            cluster_id: ClusterId::new([1; 16]),
            cluster_name: "bench".into(),
            sealed_server_setup: vec![0; 128],
            key_check_value: [1, 2, 3],
            key_id: [4; 8],
            default_guess_limit: GuessLimit::DEFAULT,
            max_guess_limit: GuessLimit::DEFAULT,
        }),
    );
    assert_eq!(boot.outcome, Outcome::Bootstrapped);
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
                    let reset = request(reset(a, version, charge));
                    index += 1;
                    let started = Instant::now();
                    black_box(state.apply(index, &reset));
                    timed += started.elapsed();
                }
                timed
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
    state.apply(*index, &request(reset(a, version, charge)));
    took
}

fn reset(account: AccountId, version: RecordVersion, charge: ChargeNumber) -> Command {
    Command::ResetGuesses {
        account,
        version,
        charge,
    }
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
