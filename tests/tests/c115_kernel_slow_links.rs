//! Slow links made by the kernel, on the lab harness (`bkv_tests::netns`): every packet from
//! the leader to its followers held 30 ms plus a random 0 to 120 ms by the packet delayer
//! (`bkv-netdelay` on an NFQUEUE: the jitter reorders packets inside TCP streams), then the
//! leader's traffic limited to 256 kbit/s and a follower's to 64 kbit/s (`tbf`), under load.
//! Writes get slower but keep succeeding; every checker holds; the delayer's and the queueing
//! discipline's counts show the packets delayed, reordered and held back.
//!
//! The cluster runs with the Raft timing an operator sets for links this slow (OPERATIONS.md,
//! "Raft timing"): openraft 0.9 gives each AppendEntries (heartbeats included) one heartbeat
//! interval to be answered, so with the defaults (100 ms) a link whose one-way delay reaches
//! 150 ms replicates almost nothing and the leader loses its quorum (seen: every write of the
//! delayed phase unanswered for 12 s, then elections).

use std::time::{Duration, Instant};

use bkv_tests::RaftOptions;
use bkv_tests::chaos::lab::lab_options;
use bkv_tests::chaos::{ChaosCluster, Fault, Honest, Load, LoadSpec, VerifyOptions};
use bkv_tests::netns;

#[test]
fn kernel_delay_jitter_reordering_and_rate_limits_keep_every_invariant() -> anyhow::Result<()> {
    netns::run(
        "kernel_delay_jitter_reordering_and_rate_limits_keep_every_invariant",
        3,
        Duration::from_secs(900),
        |lab| async move {
            let mut options = lab_options(3, lab);
            options.raft = RaftOptions {
                heartbeat_ms: 400,
                election_timeout_min_ms: 1_500,
                election_timeout_max_ms: 3_000,
                ..options.raft
            };
            let mut cc = ChaosCluster::start("c115_kernel_slow_links", options).await?;
            let load = Load::start(
                &cc,
                &LoadSpec {
                    honest: 2,
                    victims: 2,
                    attackers: 3,
                    seed: 115,
                    ..LoadSpec::default()
                },
            )
            .await?;
            let ids = cc.cluster.ids();
            let canaries = cc.canaries.clone();
            let timed_register = |cc: &ChaosCluster, name: String| {
                let (kit, h, c) = (cc.kit.clone(), cc.history.clone(), canaries.clone());
                async move {
                    let p = Honest::new(name.clone(), name, &c);
                    let t = Instant::now();
                    let ok = p.register(&kit, &h, &c, None, 0).await?.is_some();
                    anyhow::Ok((ok, t.elapsed()))
                }
            };
            let (_, before) = timed_register(&cc, "slow-baseline".into()).await?;

            // Phase 1: delay with jitter (and so reordering) on the leader's links out.
            let leader = cc.observe_leader(Duration::from_secs(20)).await?;
            for o in ids.iter().copied().filter(|i| *i != leader) {
                cc.nemesis.link(
                    &cc.cluster,
                    leader,
                    o,
                    Fault::Delay {
                        base: Duration::from_millis(30),
                        jitter: Duration::from_millis(120),
                    },
                )?;
            }
            let (ok, delayed) = timed_register(&cc, "slow-delayed".into()).await?;
            anyhow::ensure!(ok, "no registration went through the delayed leader");
            tokio::time::sleep(Duration::from_secs(4)).await;
            cc.sample_digests().await;
            cc.nemesis.heal(&mut cc.cluster).await?;

            // Phase 2: rate limits, 256 kbit/s on the leader and 64 kbit/s on a follower.
            let leader = cc.observe_leader(Duration::from_secs(20)).await?;
            let f = *ids.iter().find(|i| **i != leader).unwrap_or(&1);
            cc.nemesis.rate_limit(&cc.cluster, leader, 256)?;
            cc.nemesis.rate_limit(&cc.cluster, f, 64)?;
            let (ok, limited) = timed_register(&cc, "slow-limited".into()).await?;
            anyhow::ensure!(ok, "no registration went through the rate-limited leader");
            tokio::time::sleep(Duration::from_secs(4)).await;
            cc.sample_digests().await;

            let (ops, accounts) = load.stop().await?;
            let summary = cc.verify(&accounts, &VerifyOptions::default()).await?;
            let f = &summary.figures;
            let get = |k: &str| f.get(k).copied().unwrap_or(0);
            println!(
                "{ops} client operations; registration {} ms before, {} ms with the delay, {} ms \
                 with the rate limits; packets delayed {}, reordered {}, dropped by the rate \
                 limits {}",
                before.as_millis(),
                delayed.as_millis(),
                limited.as_millis(),
                get("kernel.packets_delayed"),
                get("kernel.packets_reordered"),
                get("kernel.packets_rate_dropped"),
            );
            anyhow::ensure!(get("kernel.packets_delayed") > 0, "nothing delayed: {f:?}");
            anyhow::ensure!(
                get("kernel.packets_reordered") > 0,
                "nothing reordered: {f:?}"
            );
            Ok(())
        },
    )
}
