//! The share refresh schedule: three nodes with `recovery.share_refresh_interval_secs = 3`
//! and six accounts registered. The leader refreshes every record once its sharing is three
//! seconds old, with no operator; then the leader is killed (-9) and restarted, and the
//! schedule goes on from the replicated state alone (each record's sharing is dated in it),
//! on whichever node leads. The audit shows every record refreshed again after the kill,
//! and no refresh before the record was due (each at least the interval after the record's
//! registration or its previous refresh, by the clocks of the entries). Every account then
//! recovers with its key through each pair of nodes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bkv_core::clock::now_unix_ms;
use bkv_tests::chaos::audit::Audit;
use bkv_tests::{Cluster, ClusterOptions, account, password, wait_for};

const ACCOUNTS: usize = 6;

/// The schedule's interval, seconds.
const INTERVAL_SECS: u64 = 3;

/// Longest wait for a round of scheduled refreshes (the interval, a check every 0.5 s, the
/// pass itself, and an election after the kill).
const ROUND_TIMEOUT: Duration = Duration::from_secs(45);

fn name(i: usize) -> String {
    format!("scheduled-{i}")
}

fn pw(i: usize) -> bkv_client::SecretString {
    password(&format!("scheduled password {i}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_refreshes_records_as_they_come_due_and_the_next_leader_goes_on()
-> anyhow::Result<()> {
    let started = Instant::now();
    let mut cluster = Cluster::start_with(ClusterOptions {
        share_refresh_interval_secs: INTERVAL_SECS,
        client_call_timeout: Duration::from_secs(15),
        ..ClusterOptions::new(3)
    })
    .await?;
    let result = run(&mut cluster).await;
    let result = cluster.settle(result);
    println!("t24 took {:.1} s", started.elapsed().as_secs_f64());
    result
}

async fn run(cluster: &mut Cluster) -> anyhow::Result<()> {
    let mut keys = Vec::new();
    // Record version -> (account index, when its sharing was dealt, Unix ms).
    let mut records = BTreeMap::new();
    for i in 0..ACCOUNTS {
        let registered = cluster
            .vault(&[1, 2, 3], &name(i))
            .await?
            .register(&account(&name(i)), pw(i), None)
            .await?;
        keys.push(registered.key.expose().to_vec());
        let version = registered.version.get();
        records.insert(version, (i, version / 1000));
    }

    // Round 1: the leader refreshes every record once it is due.
    let round = Instant::now();
    wait_refreshed(cluster, &records, 0, 1).await?;
    println!(
        "every record refreshed by the schedule within {:.1} s",
        round.elapsed().as_secs_f64()
    );
    // The pass is counted when it ends, after the rest that follows its last batch, by the
    // node that ran it (the leader, unless an election on this loaded machine moved it).
    let this = &*cluster;
    wait_for(
        "a node to count a scheduled pass",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async move {
            let mut passes = 0.0;
            for id in this.ids() {
                passes += this
                    .node(id)?
                    .metrics()
                    .await?
                    .count("bkv_share_refresh_passes_total", &[("trigger", "schedule")]);
            }
            Ok((passes >= 1.0).then_some(()))
        },
    )
    .await?;
    let first_leader = cluster.leader(Duration::from_secs(10)).await?;

    // Round 2: the leader is killed (-9) and restarts; a refresh needs every holder of a
    // record that is in the map (one that missed it would lose its share), so the records
    // wait for it, and whichever node leads then refreshes them again.
    cluster.kill9(first_leader)?;
    let killed_at = now_unix_ms();
    let round = Instant::now();
    let interim = cluster.leader(Duration::from_secs(20)).await?;
    cluster.restart(first_leader).await?;
    cluster
        .wait_serving(first_leader, Duration::from_secs(30))
        .await?;
    wait_refreshed(cluster, &records, killed_at, 1).await?;
    let second_leader = cluster.leader(Duration::from_secs(10)).await?;
    println!(
        "node {first_leader} killed and restarted (node {interim} led meanwhile); every record \
         refreshed again within {:.1} s, node {second_leader} leading",
        round.elapsed().as_secs_f64()
    );

    // No record was refreshed before it was due.
    let events = refreshes(cluster, &records)?;
    let interval_ms = INTERVAL_SECS * 1000;
    for (version, (i, dealt)) in &records {
        let mut previous = *dealt;
        for at in events.get(version).into_iter().flatten() {
            anyhow::ensure!(
                at.saturating_sub(previous) >= interval_ms,
                "{} refreshed at {at}, {} ms after its sharing of {previous}",
                name(*i),
                at.saturating_sub(previous)
            );
            previous = *at;
        }
    }
    let counts: Vec<usize> = records
        .keys()
        .map(|v| events.get(v).map_or(0, Vec::len))
        .collect();
    println!("refreshes per record: {counts:?}, none before it was due");

    // Every account recovers with its key through each pair of nodes.
    for (i, key) in keys.iter().enumerate() {
        for up in [[1u64, 2], [2, 3], [1, 3]] {
            let recovered = cluster
                .vault(&up, &name(i))
                .await?
                .recover(&account(&name(i)), pw(i))
                .await
                .map_err(|e| anyhow::anyhow!("{} through {up:?}: {e}", name(i)))?;
            anyhow::ensure!(
                recovered.key.expose()[..] == key[..],
                "{} through {up:?}: another key",
                name(i)
            );
        }
    }
    Ok(())
}

/// Waits until the audit shows every record refreshed at least `n` times by entries of
/// clock `since` (Unix ms) or later.
async fn wait_refreshed(
    cluster: &Cluster,
    records: &BTreeMap<u64, (usize, u64)>,
    since: u64,
    n: usize,
) -> anyhow::Result<()> {
    wait_for(
        &format!("every record refreshed {n} time(s) since {since}"),
        ROUND_TIMEOUT,
        Duration::from_millis(250),
        || async move {
            let events = refreshes(cluster, records)?;
            let done = records.keys().all(|v| {
                events
                    .get(v)
                    .is_some_and(|at| at.iter().filter(|t| **t >= since).count() >= n)
            });
            Ok(done.then_some(()))
        },
    )
    .await
}

/// Each record's `shares_refreshed` events in the cluster's merged audit: the clocks of
/// their entries, in log order.
fn refreshes(
    cluster: &Cluster,
    records: &BTreeMap<u64, (usize, u64)>,
) -> anyhow::Result<BTreeMap<u64, Vec<u64>>> {
    let mut out: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for line in Audit::read(cluster.dir())?.merged() {
        if line.kind != "shares_refreshed" {
            continue;
        }
        let version = line
            .version
            .ok_or_else(|| anyhow::anyhow!("a shares_refreshed event without a version"))?;
        anyhow::ensure!(
            records.contains_key(&version),
            "a refresh of version {version}, which no account of the test has"
        );
        out.entry(version).or_default().push(line.at_unix_ms);
    }
    Ok(out)
}
