//! Restarted nodes catch up. A killed node (and one stopped gracefully) restarts from its
//! own disk and catches up from the leader's log; a node that was down while the leader
//! built a snapshot and purged its log catches up through that snapshot. Afterwards every
//! node has the same state digest at the same applied index, and the restarted node serves
//! what was written while it was down. The catch-up times are printed.

use std::time::{Duration, Instant};

use bkv_client::Registered;
use bkv_tests::{Cluster, ClusterOptions, RaftOptions, account, password};

const RIGHT: &str = "correct horse battery staple";

async fn register_many(
    cluster: &Cluster,
    through: &[u64],
    prefix: &str,
    n: usize,
) -> anyhow::Result<Vec<(String, Registered)>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("{prefix}{i}");
        let client = cluster.vault(through, &name).await?;
        let registered = client
            .register(&account(&name), password(RIGHT), None)
            .await?;
        out.push((name, registered));
    }
    Ok(out)
}

async fn recover_all_through(
    cluster: &Cluster,
    node: u64,
    keys: &[(String, Registered)],
) -> anyhow::Result<()> {
    for (name, registered) in keys {
        let client = cluster.vault(&[node], name).await?;
        let got = client.recover(&account(name), password(RIGHT)).await?;
        assert_eq!(got.key, registered.key, "{name} via node {node}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_nodes_catch_up_from_disk_and_log_then_through_a_snapshot() -> anyhow::Result<()>
{
    let mut options = ClusterOptions::new(3);
    // No snapshot unless asked for; after one, keep almost no log behind it.
    options.raft = RaftOptions {
        snapshot_every_logs: 100_000,
        logs_kept_after_snapshot: 2,
        ..RaftOptions::default()
    };
    let mut cluster = Cluster::start_with(options).await?;
    let all = cluster.ids();
    let before = register_many(&cluster, &all, "before", 3).await?;

    // Part A: kill -9 the leader, write while it is down, restart it.
    let a = cluster.leader(Duration::from_secs(10)).await?;
    cluster.kill9(a)?;
    let survivors: Vec<u64> = all.iter().copied().filter(|i| *i != a).collect();
    let while_a_down = register_many(&cluster, &survivors, "while-a-down", 3).await?;
    let (applied_before, _) = cluster
        .wait_digests_equal(&survivors, Duration::from_secs(10))
        .await?;
    let restarted = Instant::now();
    cluster.restart(a).await?;
    let (applied, digest) = cluster
        .wait_digests_equal(&all, Duration::from_secs(30))
        .await?;
    println!(
        "FIGURE catch-up from log: node {a} (old leader) equal to the others {} ms after \
         restart (applied index {applied}, digest {digest})",
        restarted.elapsed().as_millis()
    );
    assert!(applied >= applied_before);
    cluster.wait_serving(a, Duration::from_secs(30)).await?;
    recover_all_through(&cluster, a, &while_a_down).await?;
    recover_all_through(&cluster, a, &before[..1]).await?;
    let view = cluster.node_view(a).await?;
    assert_eq!(view.snapshot_index, 0, "node {a} caught up from the log");

    // Part A': a graceful stop (SIGTERM, exit status 0) and restart of a follower.
    let leader = cluster.leader(Duration::from_secs(10)).await?;
    let f = *all
        .iter()
        .find(|i| **i != leader)
        .ok_or_else(|| anyhow::anyhow!("no follower"))?;
    cluster.sigterm(f).await?;
    let up: Vec<u64> = all.iter().copied().filter(|i| *i != f).collect();
    let while_f_down = register_many(&cluster, &up, "while-f-down", 2).await?;
    let restarted = Instant::now();
    cluster.restart(f).await?;
    cluster
        .wait_digests_equal(&all, Duration::from_secs(30))
        .await?;
    println!(
        "node {f} stopped with SIGTERM, restarted, equal to the others after {} ms",
        restarted.elapsed().as_millis()
    );
    cluster.wait_serving(f, Duration::from_secs(30)).await?;
    recover_all_through(&cluster, f, &while_f_down).await?;

    // Part B: a follower is down while the leader snapshots and purges its log.
    let leader = cluster.leader(Duration::from_secs(10)).await?;
    let b = *all
        .iter()
        .find(|i| **i != leader)
        .ok_or_else(|| anyhow::anyhow!("no follower"))?;
    let (b_applied, _) = cluster
        .wait_digests_equal(&all, Duration::from_secs(10))
        .await?;
    cluster.kill9(b)?;
    let up: Vec<u64> = all.iter().copied().filter(|i| *i != b).collect();
    let while_b_down = register_many(&cluster, &up, "while-b-down", 4).await?;
    // The leader purges its log in batches of 256 entries (openraft's purge_batch_size):
    // enough entries that the purge leaves the stopped node's next index behind.
    let filled = Instant::now();
    cluster.write_entries(&up, 300).await?;
    println!(
        "300 log entries written in {} ms",
        filled.elapsed().as_millis()
    );
    let snapshot = cluster.admin_at(leader).await?.snapshot().await?;
    println!(
        "leader {leader} snapshot at index {} ({} bytes); node {b} stopped at {b_applied}",
        snapshot.last_log_index, snapshot.size_bytes
    );
    assert!(snapshot.last_log_index > b_applied + 300);
    let after_snapshot = register_many(&cluster, &up, "after-snapshot", 2).await?;
    let restarted = Instant::now();
    cluster.restart(b).await?;
    let (applied, digest) = cluster
        .wait_digests_equal(&all, Duration::from_secs(30))
        .await?;
    println!(
        "FIGURE catch-up through a snapshot: node {b} equal to the others {} ms after restart \
         (applied index {applied}, digest {digest})",
        restarted.elapsed().as_millis()
    );
    let view = cluster.node_view(b).await?;
    assert!(
        view.snapshot_index >= snapshot.last_log_index,
        "node {b} installed the leader's snapshot (its snapshot index is {}, the leader's {})",
        view.snapshot_index,
        snapshot.last_log_index
    );
    cluster.wait_serving(b, Duration::from_secs(30)).await?;
    recover_all_through(&cluster, b, &while_b_down[..2]).await?;
    recover_all_through(&cluster, b, &after_snapshot).await?;
    recover_all_through(&cluster, b, &while_a_down[..1]).await?;
    cluster
        .wait_digests_equal(&all, Duration::from_secs(10))
        .await?;
    Ok(())
}
