//! Partitions made by the kernel, on the lab harness (`bkv_tests::netns`): every packet
//! between the nodes crosses a hub namespace whose packet filter drops them. The leader cut
//! off both ways (it releases nothing meanwhile, the majority serves); a one-way partition
//! each way (the leader's packets lost, then its followers'); a follower whose links flap
//! every 300 ms. Then every checker, and the filter's own counts show that packets were
//! dropped.

use std::time::{Duration, Instant};

use bkv_tests::chaos::lab::lab_options;
use bkv_tests::chaos::{Attacker, ChaosCluster, Fault, Load, LoadSpec, VerifyOptions};
use bkv_tests::netns;

#[test]
fn kernel_partitions_full_one_way_and_flapping_keep_every_invariant() -> anyhow::Result<()> {
    netns::run(
        "kernel_partitions_full_one_way_and_flapping_keep_every_invariant",
        3,
        Duration::from_secs(900),
        |lab| async move {
            let mut cc = ChaosCluster::start("c120_kernel_partitions", lab_options(3, lab)).await?;
            let load = Load::start(
                &cc,
                &LoadSpec {
                    honest: 2,
                    victims: 2,
                    attackers: 3,
                    seed: 120,
                    ..LoadSpec::default()
                },
            )
            .await?;
            let ids = cc.cluster.ids();
            let victim = load.victim();

            // Phase 1: the leader cut off both ways (its packets and theirs dropped).
            let old = cc.observe_leader(Duration::from_secs(20)).await?;
            let majority: Vec<u64> = ids.iter().copied().filter(|i| *i != old).collect();
            cc.nemesis
                .isolate(&cc.cluster, old, &majority, Fault::Blackhole)?;
            let cut = Instant::now();
            let took = cc.time_to_first_write(cut, Duration::from_secs(30)).await?;
            cc.record_unavailability(
                "first write after the leader was cut off by the kernel",
                took.as_millis() as u64,
            );
            let attacker = Attacker::new("attacker-direct");
            for _ in 0..3 {
                let a = attacker.guess(&cc.kit, &cc.history, &victim, old).await?;
                anyhow::ensure!(
                    a.ticket.is_none(),
                    "the cut-off old leader answered a recovery start"
                );
            }
            cc.sample_digests().await;
            cc.nemesis.heal(&mut cc.cluster).await?;

            // Phase 2: one way, the leader's packets to its followers dropped (it hears them,
            // they do not hear it), then the other way.
            for (name, leader_to_followers) in [
                ("leader -> followers", true),
                ("followers -> leader", false),
            ] {
                let leader = cc.observe_leader(Duration::from_secs(20)).await?;
                for o in ids.iter().copied().filter(|i| *i != leader) {
                    let (from, to) = if leader_to_followers {
                        (leader, o)
                    } else {
                        (o, leader)
                    };
                    cc.nemesis.link(&cc.cluster, from, to, Fault::Blackhole)?;
                }
                tokio::time::sleep(Duration::from_secs(3)).await;
                cc.sample_digests().await;
                cc.nemesis.heal(&mut cc.cluster).await?;
                let after = cc.observe_leader(Duration::from_secs(20)).await?;
                println!("one-way {name}: leader {leader} before, {after} after");
            }

            // Phase 3: a follower's links flap every 300 ms for 4 s.
            let leader = cc.observe_leader(Duration::from_secs(20)).await?;
            let f = *ids.iter().find(|i| **i != leader).unwrap_or(&1);
            cc.nemesis
                .flap(&cc.cluster, f, Duration::from_millis(300))?;
            tokio::time::sleep(Duration::from_secs(4)).await;
            cc.sample_digests().await;

            let (_, accounts) = load.stop().await?;
            let summary = cc.verify(&accounts, &VerifyOptions::default()).await?;
            let f = &summary.figures;
            println!("kernel figures: {:?}", cc.nemesis.kernel_figures());
            anyhow::ensure!(
                f.get("kernel.packets_dropped").copied().unwrap_or(0) > 0,
                "the partitions dropped no packet: {f:?}"
            );
            anyhow::ensure!(
                f.get("kernel.flap_toggles").copied().unwrap_or(0) >= 8,
                "the partition did not flap: {f:?}"
            );
            anyhow::ensure!(f["fail_closed.refused_in_windows"] >= 3, "{f:?}");
            Ok(())
        },
    )
}
