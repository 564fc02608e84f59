//! Disk faults on the lab harness (`bkv_tests::netns`): each node's data dir is a small
//! `tmpfs` that the test fills (shrinks to what it holds), and fsync fails through the
//! `log_flush` failpoint, under load and attack, with a snapshot every 50 entries.
//!
//! 1. A follower's disk fills while it applies entries: its audit appends fail first, then its
//!    Raft log; it must stop serving ("raft stopped") and from then on release nothing.
//! 2. A follower's disk fills and it is asked for a snapshot at once: the snapshot write meets
//!    the full disk too.
//! 3. The leader's disk fills: it stops, the others elect a leader and serve (the time to the
//!    first accepted write is printed).
//! 4. A follower's fsync fails (`log_flush=error`), then the leader's: each stops serving and
//!    releases nothing from then on.
//!
//! Healed (space back, failpoints off, restarted), every node catches up and agrees. What
//! each node's log says it could not write is printed; every checker holds (a full node may
//! lack audit lines it could not append, never hold different ones).

use std::time::{Duration, Instant};

use bkv_tests::RaftOptions;
use bkv_tests::chaos::lab::lab_options;
use bkv_tests::chaos::{ChaosCluster, Load, LoadSpec, VerifyOptions};
use bkv_tests::netns;

/// What a node's log says it could not write since byte `from`.
fn failed_writes(cc: &ChaosCluster, node: u64, from: usize) -> String {
    let log = cc
        .cluster
        .node(node)
        .map(|n| n.log_text())
        .unwrap_or_default();
    let new = log.get(from..).unwrap_or_default();
    let mut seen = Vec::new();
    for (what, needle) in [
        ("audit append", "cannot append to the audit file"),
        ("raft log", "Write Logs"),
        ("snapshot", "snapshot"),
        ("fsync failpoint", "failpoint log_flush"),
    ] {
        let n = new
            .lines()
            .filter(|l| l.contains(needle) && (l.contains("No space") || l.contains("failpoint")))
            .count();
        if n > 0 {
            seen.push(format!("{what} x{n}"));
        }
    }
    seen.join(", ")
}

#[test]
fn full_disks_and_failing_fsync_fail_closed_and_lose_nothing_acknowledged() -> anyhow::Result<()> {
    netns::run(
        "full_disks_and_failing_fsync_fail_closed_and_lose_nothing_acknowledged",
        3,
        Duration::from_secs(900),
        |lab| async move {
            let mut options = lab_options(3, lab);
            options.raft = RaftOptions {
                snapshot_every_logs: 50,
                logs_kept_after_snapshot: 10,
                ..RaftOptions::default()
            };
            let mut cc = ChaosCluster::start("c150_kernel_disk_faults", options).await?;
            let load = Load::start(
                &cc,
                &LoadSpec {
                    honest: 3,
                    victims: 2,
                    attackers: 3,
                    seed: 150,
                    ..LoadSpec::default()
                },
            )
            .await?;
            let ids = cc.cluster.ids();
            let mut stopped = 0;
            for phase in [
                "follower",
                "follower+snapshot",
                "leader",
                "follower fsync",
                "leader fsync",
            ] {
                let leader = cc.observe_leader(Duration::from_secs(20)).await?;
                let node = if phase.starts_with("leader") {
                    leader
                } else {
                    *ids.iter().find(|i| **i != leader).unwrap_or(&1)
                };
                let from = cc.cluster.node(node)?.log_text().len();
                let set = Instant::now();
                if phase.ends_with("fsync") {
                    cc.nemesis
                        .failpoint(&cc.cluster, node, "log_flush=error", true)
                        .await?;
                } else {
                    cc.nemesis.fill_disk(&cc.cluster, node)?;
                    if phase.ends_with("snapshot") {
                        let answer = cc.cluster.admin_at(node).await?.snapshot().await;
                        println!("snapshot asked of node {node} on a full disk: {answer:?}");
                    }
                    cc.nemesis
                        .begin_when_stopped(&cc.cluster, node, "disk full")
                        .await;
                }
                if phase.starts_with("leader") {
                    let took = cc.time_to_first_write(set, Duration::from_secs(30)).await?;
                    cc.record_unavailability(
                        &format!("first write after the {phase}"),
                        took.as_millis() as u64,
                    );
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
                let view = cc.cluster.node_view(node).await?;
                println!(
                    "{phase}: node {node} after {} ms: serving {}, {}; could not write: {}",
                    set.elapsed().as_millis(),
                    view.serving,
                    view.not_serving_reason,
                    failed_writes(&cc, node, from)
                );
                if !view.serving && view.not_serving_reason.contains("raft stopped") {
                    stopped += 1;
                }
                cc.sample_digests().await;
                cc.nemesis.heal(&mut cc.cluster).await?;
                cc.cluster
                    .wait_digests_equal(&ids, Duration::from_secs(60))
                    .await?;
            }
            let (ops, accounts) = load.stop().await?;
            let summary = cc.verify(&accounts, &VerifyOptions::default()).await?;
            let f = &summary.figures;
            println!(
                "{ops} client operations; {stopped} of 5 broken nodes stopped; audit lines lost \
                 on full disks at {} indexes; {} fail-closed windows, {} answers refused in them",
                f.get("replicas_agree.audit_gaps_on_full_disks")
                    .copied()
                    .unwrap_or(0),
                f["fail_closed.windows"],
                f["fail_closed.refused_in_windows"],
            );
            anyhow::ensure!(
                stopped == 5,
                "a node with a full disk or failing fsync kept serving"
            );
            anyhow::ensure!(
                f.get("kernel.full_disks").copied().unwrap_or(0) == 3,
                "{f:?}"
            );
            Ok(())
        },
    )
}
