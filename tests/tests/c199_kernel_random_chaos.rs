//! The seeded random run on the kernel-fault harness: a schedule drawn from the whole fault
//! list (kernel: full, one-way and flapping partitions, packet loss, duplication, delay with
//! jitter and reordering, connection resets, rate limits, a node cut off from the clients,
//! full disks; processes: kill -9, SIGSTOP, slow and failing fsync, failing storage and HSM)
//! and a workload, played on a cluster in a lab, then every checker. The seed and the
//! history are printed; the same seed replays the same schedule.
//!
//! `make chaos` runs it after the loopback run with the same `SEED`, `DURATION` and `NODES`;
//! `make soak` runs it for `SOAK_SECONDS` at the soak pace (`BKV_CHAOS_PACE=soak`) and prints
//! the soak's figures. Environment: `BKV_CHAOS_SEED`, `BKV_CHAOS_DURATION` (seconds),
//! `BKV_CHAOS_NODES`, `BKV_CHAOS_PACE` (`test` or `soak`).

use std::time::{Duration, Instant};

use bkv_tests::chaos::lab::{Pace, kinds_of, lab_options, lab_schedule};
use bkv_tests::chaos::{ChaosCluster, schedule};
use bkv_tests::netns;

fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[test]
fn seeded_kernel_chaos_keeps_every_invariant() -> anyhow::Result<()> {
    let seed = env_u64("BKV_CHAOS_SEED", 11);
    let duration = Duration::from_secs(env_u64("BKV_CHAOS_DURATION", 30));
    let nodes = env_u64("BKV_CHAOS_NODES", 3);
    let pace = match std::env::var("BKV_CHAOS_PACE").as_deref() {
        Ok("soak") => Pace::Soak,
        _ => Pace::Test,
    };
    netns::run(
        "seeded_kernel_chaos_keeps_every_invariant",
        nodes,
        duration + Duration::from_secs(1800),
        |lab| async move {
            let plan = lab_schedule(seed, duration, nodes, pace);
            let soak = pace == Pace::Soak;
            if soak {
                println!(
                    "CHAOS SEED {seed} (soak of {} s: {} steps drawn, run until the time is up)",
                    duration.as_secs(),
                    plan.steps.len()
                );
            } else {
                println!("CHAOS SEED {seed}\n{}", plan.describe());
            }
            let name = format!("c199_kernel_random_chaos-seed{seed}");
            let mut cc = ChaosCluster::start(&name, lab_options(nodes, lab)).await?;
            let load_before = load_average();
            let started = Instant::now();
            let until = soak.then(|| started + duration);
            let result = schedule::run_until(&mut cc, &plan, until).await;
            let summary = match result {
                Ok(s) => s,
                Err(e) => {
                    eprintln!(
                        "CHAOS FAILURE seed {seed}, history {}; replay with `make chaos \
                         SEED={seed} DURATION={}`",
                        cc.history
                            .path()
                            .map_or_else(|| "-".into(), |p| p.display().to_string()),
                        duration.as_secs()
                    );
                    return Err(e);
                }
            };
            // What was played: the steps begun (a soak stops when its time is up).
            let played = cc
                .history
                .entries()
                .iter()
                .filter(|e| e.op == "heal")
                .count()
                .saturating_sub(1)
                .min(plan.steps.len());
            let mut done = plan.clone();
            done.steps.truncate(played);
            let f = &summary.figures;
            let get = |k: &str| f.get(k).copied().unwrap_or(0);
            println!(
                "{} seed {seed}: {} s, {} fault steps by kind {:?}",
                if soak { "SOAK" } else { "KERNEL CHAOS" },
                started.elapsed().as_secs(),
                played,
                kinds_of(&done)
            );
            println!(
                "faults injected {}, client operations {}, releases {} ({} to attackers), \
                 committed charges {}, guesses beyond the limit {}, acknowledged writes lost {} \
                 of {}, canary hits {} ({} files), replicas compared at {} audit indexes and {} \
                 digest indexes (all equal), fail-closed windows {} ({} answers refused), \
                 longest unavailability {} ms; load average {load_before} at the start, {} at \
                 the end",
                get("faults"),
                get("operations"),
                get("guess_bound.releases"),
                get("guess_bound.attacker_releases"),
                get("guess_bound.committed_charges"),
                get("guess_bound.beyond_limit"),
                get("no_lost_writes.lost"),
                get("no_lost_writes.acked_writes"),
                get("no_plaintext.hits"),
                get("no_plaintext.files"),
                get("replicas_agree.audit_indexes_compared"),
                get("replicas_agree.digest_indexes_compared"),
                get("fail_closed.windows"),
                get("fail_closed.refused_in_windows"),
                get("max_unavailability_ms"),
                load_average()
            );
            let kernel: Vec<String> = f
                .iter()
                .filter(|(k, _)| k.starts_with("kernel."))
                .map(|(k, v)| format!("{}={v}", &k["kernel.".len()..]))
                .collect();
            println!("kernel faults: {}", kernel.join(", "));
            Ok(())
        },
    )
}
