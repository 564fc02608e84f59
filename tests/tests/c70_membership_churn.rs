//! Membership churn under load: a fourth node joins through the key ceremony, the leader is
//! removed, a fifth node joins, another original node is removed, while honest clients and
//! attackers keep going and peer links are reset. Every checker holds over the whole run,
//! removed nodes' audit files included.

use std::time::Duration;

use bkv_tests::chaos::{ChaosCluster, Load, LoadSpec, VerifyOptions, chaos_options};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn adding_and_removing_nodes_under_load_keeps_every_invariant() -> anyhow::Result<()> {
    let mut cc = ChaosCluster::start("c70_membership_churn", chaos_options(3)).await?;
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

    // Phase 1: node 4 joins.
    let n4 = cc.cluster.add_node().await?;
    cc.kit.refresh(&cc.cluster);
    cc.sample_digests().await;
    // Phase 2: the leader leaves.
    let leader = cc.observe_leader(Duration::from_secs(20)).await?;
    cc.cluster.remove_node(leader).await?;
    cc.kit.refresh(&cc.cluster);
    cc.history.info(
        bkv_tests::chaos::Entry::new(bkv_tests::chaos::Role::Nemesis, "nemesis", "fault")
            .node(leader)
            .detail("removed from the membership"),
    );
    cc.nemesis.reset_connections(&cc.cluster)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    cc.sample_digests().await;
    // Phase 3: node 5 joins, another original node leaves.
    let n5 = cc.cluster.add_node().await?;
    cc.kit.refresh(&cc.cluster);
    let original = cc
        .cluster
        .ids()
        .into_iter()
        .find(|i| *i != n4 && *i != n5)
        .ok_or_else(|| anyhow::anyhow!("no original node left"))?;
    cc.cluster.remove_node(original).await?;
    cc.kit.refresh(&cc.cluster);
    let now: Vec<u64> = cc.cluster.ids();
    cc.cluster
        .wait_voters(&now, Duration::from_secs(30))
        .await?;
    println!("voters now {now:?} (removed {leader} and {original})");
    tokio::time::sleep(Duration::from_secs(2)).await;
    cc.sample_digests().await;

    let (_, accounts) = load.stop().await?;
    cc.verify(&accounts, &VerifyOptions::default()).await?;
    Ok(())
}
