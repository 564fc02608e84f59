//! Snapshot catch-up of an isolated follower: its peer links are dropped while the others
//! take registrations, guesses and a few hundred filler entries, snapshot (every 100 entries)
//! and purge their logs. Healed, the follower can only catch up through a snapshot (its
//! audit file says so); then it agrees with the others, serves every key and every counter.

use std::time::Duration;

use bkv_tests::RaftOptions;
use bkv_tests::chaos::audit::Audit;
use bkv_tests::chaos::{ChaosCluster, Fault, Load, LoadSpec, VerifyOptions, chaos_options};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_isolated_follower_catches_up_through_a_snapshot() -> anyhow::Result<()> {
    let mut options = chaos_options(3);
    options.raft = RaftOptions {
        snapshot_every_logs: 100,
        logs_kept_after_snapshot: 2,
        ..RaftOptions::default()
    };
    let mut cc = ChaosCluster::start("c60_snapshot_catch_up", options).await?;
    let ids = cc.cluster.ids();
    let load = Load::start(
        &cc,
        &LoadSpec {
            attackers: 2,
            victims: 2,
            honest: 3,
            ..LoadSpec::default()
        },
    )
    .await?;

    // Phase 1: cut a follower off (connections dropped, new ones refused).
    let leader = cc.observe_leader(Duration::from_secs(20)).await?;
    let f = *ids.iter().find(|i| **i != leader).unwrap_or(&1);
    let (f_applied, _) = *cc
        .cluster
        .digests()
        .await?
        .get(&f)
        .ok_or_else(|| anyhow::anyhow!("no view of {f}"))?;
    let others: Vec<u64> = ids.iter().copied().filter(|i| *i != f).collect();
    cc.nemesis.isolate(&cc.cluster, f, &others, Fault::Drop)?;

    // Phase 2: the majority writes well past a snapshot and a log purge.
    cc.cluster.write_entries(&others, 350).await?;
    let leader = cc.observe_leader(Duration::from_secs(20)).await?;
    let view = cc.cluster.node_view(leader).await?;
    println!(
        "leader {leader} snapshot at {}, node {f} stopped at {f_applied}",
        view.snapshot_index
    );
    assert!(
        view.snapshot_index > f_applied + 256,
        "no snapshot past the follower: {view:?}"
    );
    cc.sample_digests().await;

    // Phase 3: heal; the follower catches up.
    cc.nemesis.heal(&mut cc.cluster).await?;
    cc.cluster
        .wait_digests_equal(&ids, Duration::from_secs(60))
        .await?;
    cc.sample_digests().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let audit = Audit::read(cc.cluster.dir())?;
    let installed = audit
        .nodes
        .get(&f)
        .is_some_and(|lines| lines.iter().any(|l| l.kind == "snapshot_installed"));
    assert!(
        installed,
        "node {f} caught up without installing a snapshot"
    );

    let (_, accounts) = load.stop().await?;
    cc.verify(&accounts, &VerifyOptions::default()).await?;
    Ok(())
}
