//! Membership changes under load: a fourth node joins through the key ceremony while a
//! background client keeps registering and recovering, then an original node (the leader)
//! is removed. Every key written before, during and after stays recoverable (also through
//! the new node alone), and the status shows the new membership.

use std::time::Duration;

use bkv_client::proto::MemberRole;
use bkv_client::{BackupKey, VaultClient, VaultError};
use bkv_tests::{Cluster, account, password};
use tokio::sync::watch;

const RIGHT: &str = "correct horse battery staple";
/// Most operations the background client runs.
const LOAD_OPS: usize = 200;

/// Registers `load-<i>` and recovers it, until told to stop or `LOAD_OPS` are done. Returns
/// each registered account and key; any failure fails the test.
async fn load(
    clients: Vec<(String, VaultClient)>,
    stop: watch::Receiver<bool>,
    progress: watch::Sender<usize>,
) -> anyhow::Result<Vec<(String, BackupKey)>> {
    let mut done = Vec::new();
    for (name, client) in clients {
        if *stop.borrow() {
            break;
        }
        let id = account(&name);
        // A registration that raced a share map change is refused (STALE_SHARE_MAP) and
        // started again, as the protocol says: its shares were split for the old map.
        let mut tries = 0;
        let registered = loop {
            tries += 1;
            match client.register(&id, password(RIGHT), None).await {
                Ok(r) => break r,
                Err(VaultError::Server { code, message })
                    if tries < 3
                        && code == tonic::Code::FailedPrecondition
                        && message.contains("STALE_SHARE_MAP") => {}
                Err(e) => anyhow::bail!("background register {name} (try {tries}): {e}"),
            }
        };
        let recovered = client
            .recover(&id, password(RIGHT))
            .await
            .map_err(|e| anyhow::anyhow!("background recover {name}: {e}"))?;
        anyhow::ensure!(recovered.key == registered.key, "{name}: other key back");
        done.push((name, registered.key));
        progress.send_replace(done.len());
    }
    Ok(done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn add_a_node_under_load_then_remove_the_leader() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(3).await?;
    let original = cluster.ids();

    let mut keys: Vec<(String, BackupKey)> = Vec::new();
    for name in ["early0", "early1"] {
        let client = cluster.vault(&original, name).await?;
        let r = client
            .register(&account(name), password(RIGHT), None)
            .await?;
        keys.push((name.to_string(), r.key));
    }

    // Phase 1: node 4 joins through the ceremony while the background load runs.
    let mut clients = Vec::new();
    for i in 0..LOAD_OPS {
        let name = format!("load{i}");
        clients.push((name.clone(), cluster.vault(&original, &name).await?));
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let (progress_tx, mut progress) = watch::channel(0usize);
    let background = tokio::spawn(load(clients, stop_rx, progress_tx));
    let new = cluster.add_node().await?;
    assert_eq!(new, 4);
    cluster
        .wait_voters(&[1, 2, 3, 4], Duration::from_secs(30))
        .await?;
    let during_add = *progress.borrow();

    // Phase 2: remove the leader (an original node) while the load still runs.
    let leader = cluster.leader(Duration::from_secs(10)).await?;
    assert!(original.contains(&leader));
    cluster.remove_node(leader).await?;
    let remaining: Vec<u64> = [1, 2, 3, 4].into_iter().filter(|i| *i != leader).collect();
    cluster
        .wait_voters(&remaining, Duration::from_secs(30))
        .await?;
    let new_leader = cluster.leader(Duration::from_secs(15)).await?;
    assert_ne!(new_leader, leader);
    println!("removed leader {leader}; new leader {new_leader}; voters {remaining:?}");

    // The background client (which still lists the removed node) goes on: two more pairs.
    let at_removal = *progress.borrow_and_update();
    tokio::time::timeout(
        Duration::from_secs(60),
        progress.wait_for(|n| *n >= at_removal + 2),
    )
    .await
    .map_err(|_| anyhow::anyhow!("background load stalled after the removal"))?
    // An ended load (a failure) is reported by its result below.
    .ok();
    let _ = stop_tx.send(true);
    let loaded = tokio::time::timeout(Duration::from_secs(120), background)
        .await
        .map_err(|_| anyhow::anyhow!("background load did not finish"))???;
    println!(
        "background load: {} register+recover pairs, all good ({during_add} done when node \
         {new} was a voter, {at_removal} when node {leader} was removed)",
        loaded.len()
    );
    keys.extend(loaded);

    // Phase 3: every key, through the new node alone; a new key through the others.
    for (name, key) in &keys {
        let client = cluster.vault(&[new], name).await?;
        let got = client.recover(&account(name), password(RIGHT)).await?;
        assert_eq!(&got.key, key, "{name} via new node {new}");
    }
    let late = cluster.vault(&remaining, "late").await?;
    let r = late
        .register(&account("late"), password(RIGHT), None)
        .await?;
    let via_new = cluster.vault(&[new], "late").await?;
    assert_eq!(
        via_new
            .recover(&account("late"), password(RIGHT))
            .await?
            .key,
        r.key
    );

    // Phase 4: the status names exactly the new membership, every member serving, and all
    // replicas agree.
    let status = cluster.status().await?;
    let mut members: Vec<(u64, i32)> = status.members.iter().map(|m| (m.node_id, m.role)).collect();
    members.sort_unstable();
    let expected: Vec<(u64, i32)> = remaining
        .iter()
        .map(|id| (*id, i32::from(MemberRole::Voter)))
        .collect();
    assert_eq!(members, expected);
    for m in &status.members {
        let view = m
            .status
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no view of node {}: {}", m.node_id, m.error))?;
        assert!(
            view.serving,
            "node {} serving: {}",
            m.node_id, view.not_serving_reason
        );
        assert_eq!(
            view.state_digest, "",
            "node {}: a plain status computes no digest",
            m.node_id
        );
    }
    assert_eq!(status.leader_id, new_leader);
    cluster
        .wait_digests_equal(&remaining, Duration::from_secs(10))
        .await?;
    // Asked for, every member's digest is there: SHA-256 in hex.
    let with = cluster.admin().await?.status_with_digests().await?;
    for m in &with.members {
        let digest = m.status.as_ref().map(|v| v.state_digest.clone());
        assert!(
            digest
                .as_ref()
                .is_some_and(|d| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit())),
            "node {}: digest {digest:?}",
            m.node_id
        );
    }
    Ok(())
}
