//! Shares installed ahead of the first recovery: on a 3-node cluster, accounts are
//! registered and never recovered, and every node installs its share of each (opened with
//! its token's ECDH, checked, sealed) within a few sweep periods, so that a first recovery
//! pays none of it; a recovery then takes no further share ECDH on any node. The leader's
//! `/metrics` has each follower's replication lag, the others none.

use std::time::Duration;

use bkv_tests::{Cluster, ClusterOptions, account, password};

const ACCOUNTS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_node_installs_its_shares_before_any_recovery() -> anyhow::Result<()> {
    let mut cluster = Cluster::start_with(ClusterOptions::new(3)).await?;
    let ids = cluster.ids();
    let names: Vec<String> = (0..ACCOUNTS).map(|i| format!("ahead-{i}")).collect();
    for name in &names {
        cluster
            .vault(&ids, name)
            .await?
            .register(&account(name), password("a password for later"), None)
            .await?;
    }

    for id in &ids {
        cluster
            .wait_shares_held(*id, ACCOUNTS, Duration::from_secs(30))
            .await?;
        let node = cluster.node(*id)?;
        let ecdh = node
            .metrics()
            .await?
            .count("bkv_hsm_op_duration_seconds_count", &[("op", "share_ecdh")]);
        assert_eq!(
            ecdh, ACCOUNTS as f64,
            "node {id}: one share ECDH per account"
        );
        assert!(
            node.log_text()
                .contains("installed shares ahead of recoveries"),
            "node {id} logs its install pass"
        );
        println!("node {id}: {ACCOUNTS} shares held, {ecdh} share ECDH, no recovery yet");
    }

    let recovered = cluster
        .vault(&ids, &names[0])
        .await?
        .recover(&account(&names[0]), password("a password for later"))
        .await?;
    assert_eq!(recovered.key.expose().len(), 32, "the backup key came back");
    for id in &ids {
        let ecdh = cluster
            .node(*id)?
            .metrics()
            .await?
            .count("bkv_hsm_op_duration_seconds_count", &[("op", "share_ecdh")]);
        assert_eq!(
            ecdh, ACCOUNTS as f64,
            "node {id}: the recovery opened no share"
        );
    }
    // Only the leader has followers; each is named with the entries it has not acknowledged.
    let leader = cluster.leader(Duration::from_secs(20)).await?;
    for id in &ids {
        let m = cluster.node(*id)?.metrics().await?;
        let lags: Vec<(String, f64)> = m
            .samples()
            .iter()
            .filter(|s| s.name == "bkv_raft_follower_lag")
            .map(|s| {
                (
                    s.labels.get("follower").cloned().unwrap_or_default(),
                    s.value,
                )
            })
            .collect();
        if *id == leader {
            let mut followers: Vec<String> = lags.iter().map(|(f, _)| f.clone()).collect();
            followers.sort();
            let want: Vec<String> = ids
                .iter()
                .filter(|i| **i != leader)
                .map(u64::to_string)
                .collect();
            assert_eq!(followers, want, "the leader names its followers: {lags:?}");
            println!("leader {leader}: follower lags {lags:?}");
        } else {
            assert!(lags.is_empty(), "follower {id} reports lags: {lags:?}");
        }
    }
    Ok(())
}
