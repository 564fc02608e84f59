//! The seeded random chaos run: a schedule of faults (isolations, one-way blackholes, slow
//! and reset links, kill -9, SIGSTOP, slow and failing disks, failing HSMs) and a workload
//! drawn from a seed, played on a real cluster, then every checker. The seed and the
//! history file are printed; the same seed replays the same schedule.
//!
//! `make chaos SEED=7 DURATION=300` (or `BKV_CHAOS_SEED`, `BKV_CHAOS_DURATION` seconds,
//! `BKV_CHAOS_NODES`); `make test` runs it with the defaults below, briefly.

use std::time::Duration;

use bkv_tests::chaos::schedule::{self, Schedule};
use bkv_tests::chaos::{ChaosCluster, chaos_options};

fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seeded_random_chaos_keeps_every_invariant() -> anyhow::Result<()> {
    let seed = env_u64("BKV_CHAOS_SEED", 6);
    let duration = Duration::from_secs(env_u64("BKV_CHAOS_DURATION", 20));
    let nodes = env_u64("BKV_CHAOS_NODES", 3);
    let plan = Schedule::generate(seed, duration, nodes);
    println!("CHAOS SEED {seed}\n{}", plan.describe());
    let mut cc = ChaosCluster::start(
        &format!("c99_random_chaos-seed{seed}"),
        chaos_options(nodes),
    )
    .await?;
    match schedule::run(&mut cc, &plan).await {
        Ok(summary) => {
            println!(
                "seed {seed}: every checker passed ({} faults)",
                summary.figures["faults"]
            );
            Ok(())
        }
        Err(e) => {
            eprintln!(
                "CHAOS FAILURE seed {seed}, history {}; replay with `make chaos SEED={seed} DURATION={}`",
                cc.history
                    .path()
                    .map_or_else(|| "-".into(), |p| p.display().to_string()),
                duration.as_secs()
            );
            Err(e)
        }
    }
}
