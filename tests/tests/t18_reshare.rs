//! Resharing on recovery after a node is replaced: account "moved" is registered on nodes
//! 1 to 3 (t = 2); node 4 joins and node 3 is removed, so the record's holders still up are
//! 1 and 2 only. With node 1 stopped the cluster has a quorum (2, 4) but one holder: the
//! recovery is UNAVAILABLE. `recover_and_reshare` through the three members recovers the key
//! and registers it again over the current voters (1, 2, 4): with node 1 stopped again, the
//! same password recovers the same key, now at the new version, through nodes 2 and 4.
//! Share repair is off here (it would give node 4 its share of the old record by itself:
//! t21 tests that).

use std::time::{Duration, Instant};

use bkv_client::{RetryPolicy, SecretString, VaultClient, VaultError};
use bkv_core::AccountId;
use bkv_tests::{Cluster, ClusterOptions};

const PASSWORD: &str = "a password that moves with its shares";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recovery_reshares_the_key_over_the_current_voters() -> anyhow::Result<()> {
    let started = Instant::now();
    let mut cluster = Cluster::start_with(ClusterOptions {
        client_call_timeout: Duration::from_secs(15),
        share_repair_period_ms: 0,
        ..ClusterOptions::new(3)
    })
    .await?;
    let result = run(&mut cluster).await;
    let result = cluster.settle(result);
    println!("t18 took {:.1} s", started.elapsed().as_secs_f64());
    result
}

/// Recovers "moved" through `up` with node 1 stopped, with a bounded retry.
async fn recover_without_node_1(
    cluster: &mut Cluster,
    up: &[u64],
) -> anyhow::Result<Result<bkv_client::Recovered, VaultError>> {
    let moved = AccountId::parse("moved")?;
    let mut config = cluster.client_config(up, cluster.token_source("moved"))?;
    config.deadline = Duration::from_secs(20);
    config.retry = RetryPolicy {
        max_attempts: 3,
        ..RetryPolicy::default()
    };
    let vault = VaultClient::connect(config).await?;
    cluster.sigstop(1)?;
    let result = vault.recover(&moved, SecretString::from(PASSWORD)).await;
    cluster.sigcont(1)?;
    Ok(result)
}

async fn run(cluster: &mut Cluster) -> anyhow::Result<()> {
    let moved = AccountId::parse("moved")?;
    let registered = cluster
        .vault(&[1, 2, 3], "moved")
        .await?
        .register(&moved, SecretString::from(PASSWORD), None)
        .await?;
    cluster.add_node().await?;
    cluster
        .wait_voters(&[1, 2, 3, 4], Duration::from_secs(60))
        .await?;
    // If node 1 leads when it is stopped, nodes 2 and 4 elect another within the deadline.
    cluster.remove_node(3).await?;
    cluster
        .wait_voters(&[1, 2, 4], Duration::from_secs(60))
        .await?;

    let before = recover_without_node_1(cluster, &[2, 4]).await?;
    assert!(
        matches!(before, Err(VaultError::Unavailable { .. })),
        "one holder of the old shares up: {:?}",
        before.map(|r| r.version)
    );
    cluster.leader(Duration::from_secs(30)).await?;
    println!("before resharing, nodes 2 and 4: UNAVAILABLE (one holder of the record up)");

    let reshared = cluster
        .vault(&[1, 2, 4], "moved")
        .await?
        .recover_and_reshare(&moved, SecretString::from(PASSWORD))
        .await?;
    assert_eq!(reshared.recovered.key, registered.key);
    let new_version = reshared
        .reshared
        .map_err(|e| anyhow::anyhow!("registering again: {e}"))?;
    assert_ne!(new_version, registered.version);

    let after = recover_without_node_1(cluster, &[2, 4])
        .await?
        .map_err(|e| anyhow::anyhow!("after resharing, nodes 2 and 4: {e}"))?;
    assert_eq!(after.key, registered.key, "the same key, newly shared");
    assert_eq!(after.version, new_version);
    println!(
        "resharing moved version {} to {new_version}; nodes 2 and 4 alone recover it",
        registered.version
    );
    Ok(())
}
