//! Lossy links made by the kernel, on the lab harness (`bkv_tests::netns`), while attackers
//! guess and owners recover: a random 20% of the leader's packets lost (to and from its peers
//! and the clients), then 30% of a follower's peer packets; every packet of the leader
//! duplicated (`TEE`); every TCP connection between nodes refused with a reset, twice. Raft
//! and TLS run over TCP, so the faults hit inside streams: retransmissions, duplicate
//! segments, resets. Every checker holds, and the packet filter's counts show that packets
//! were lost, duplicated and refused.

use std::time::Duration;

use bkv_tests::chaos::lab::lab_options;
use bkv_tests::chaos::{ChaosCluster, Load, LoadSpec, VerifyOptions};
use bkv_tests::netns;

#[test]
fn kernel_packet_loss_duplication_and_resets_keep_every_invariant() -> anyhow::Result<()> {
    netns::run(
        "kernel_packet_loss_duplication_and_resets_keep_every_invariant",
        3,
        Duration::from_secs(900),
        |lab| async move {
            let mut cc =
                ChaosCluster::start("c110_kernel_lossy_links", lab_options(3, lab)).await?;
            let load = Load::start(
                &cc,
                &LoadSpec {
                    honest: 2,
                    victims: 2,
                    attackers: 4,
                    guess_limit: 4,
                    seed: 110,
                    ..LoadSpec::default()
                },
            )
            .await?;
            let ids = cc.cluster.ids();
            let hold = Duration::from_secs(4);

            // Phase 1: 20% of the leader's packets lost, peers and clients.
            let leader = cc.observe_leader(Duration::from_secs(20)).await?;
            cc.nemesis.lose(&cc.cluster, leader, 20, true)?;
            tokio::time::sleep(hold).await;
            cc.sample_digests().await;
            cc.nemesis.heal(&mut cc.cluster).await?;

            // Phase 2: 30% of a follower's peer packets lost.
            let leader = cc.observe_leader(Duration::from_secs(20)).await?;
            let f = *ids.iter().find(|i| **i != leader).unwrap_or(&1);
            cc.nemesis.lose(&cc.cluster, f, 30, false)?;
            tokio::time::sleep(hold).await;
            cc.sample_digests().await;
            cc.nemesis.heal(&mut cc.cluster).await?;

            // Phase 3: every packet of the leader arrives twice.
            let leader = cc.observe_leader(Duration::from_secs(20)).await?;
            cc.nemesis.duplicate(&cc.cluster, leader)?;
            tokio::time::sleep(hold).await;
            cc.sample_digests().await;
            cc.nemesis.heal(&mut cc.cluster).await?;

            // Phase 4: connections between nodes reset, twice.
            for _ in 0..2 {
                cc.nemesis.reset_connections(&cc.cluster)?;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            cc.sample_digests().await;

            let (ops, accounts) = load.stop().await?;
            let summary = cc.verify(&accounts, &VerifyOptions::default()).await?;
            let f = &summary.figures;
            let get = |k: &str| f.get(k).copied().unwrap_or(0);
            println!(
                "{ops} client operations; packets lost {}, duplicated {}, reset {}",
                get("kernel.packets_lost"),
                get("kernel.packets_duplicated"),
                get("kernel.packets_reset")
            );
            anyhow::ensure!(get("kernel.packets_lost") > 0, "no packet was lost: {f:?}");
            anyhow::ensure!(
                get("kernel.packets_duplicated") > 0,
                "no packet was duplicated: {f:?}"
            );
            anyhow::ensure!(get("guess_bound.attacker_releases") > 5, "{f:?}");
            Ok(())
        },
    )
}
