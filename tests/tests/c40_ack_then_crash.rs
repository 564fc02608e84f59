//! Acknowledged, then crashed: registrations run against the cluster and, right after a
//! batch is acknowledged (with more in flight), two of the three nodes (the leader among
//! them) are killed with kill -9 and restarted. Three rounds. Every acknowledged
//! registration must survive, on every node, with its key; the writes in flight may or may
//! not have happened, but never half.

use std::time::Duration;

use bkv_tests::chaos::{ChaosCluster, Honest, VerifyOptions, chaos_options};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_registrations_survive_the_crash_of_two_of_three_nodes() -> anyhow::Result<()>
{
    let mut cc = ChaosCluster::start("c40_ack_then_crash", chaos_options(3)).await?;
    let ids = cc.cluster.ids();
    let mut owners = Vec::new();
    for round in 0..3u32 {
        // Phase 1: a batch acknowledged, then a second batch left in flight.
        let batch: Vec<Honest> = (0..4)
            .map(|i| {
                Honest::new(
                    format!("honest-{round}-{i}"),
                    format!("ack-{round}-{i}"),
                    &cc.canaries,
                )
            })
            .collect();
        let mut acked = 0;
        for (i, h) in batch.iter().enumerate() {
            if h.register(&cc.kit, &cc.history, &cc.canaries, Some(5), i)
                .await?
                .is_some()
            {
                acked += 1;
            }
        }
        assert_eq!(
            acked,
            batch.len(),
            "round {round}: registrations refused before any fault"
        );
        let in_flight: Vec<Honest> = (0..4)
            .map(|i| {
                Honest::new(
                    format!("flight-{round}-{i}"),
                    format!("flight-{round}-{i}"),
                    &cc.canaries,
                )
            })
            .collect();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, h) in in_flight.iter().enumerate() {
            let (h, kit, hist, can) = (
                h.clone(),
                cc.kit.clone(),
                cc.history.clone(),
                cc.canaries.clone(),
            );
            tasks.spawn(async move { h.register(&kit, &hist, &can, Some(5), i).await });
        }
        tokio::time::sleep(Duration::from_millis(30 * u64::from(round))).await;

        // Phase 2: kill -9 the leader and one follower at once.
        let leader = cc.observe_leader(Duration::from_secs(20)).await?;
        let follower = *ids.iter().find(|i| **i != leader).unwrap_or(&1);
        cc.nemesis.kill9(&mut cc.cluster, leader)?;
        cc.nemesis.kill9(&mut cc.cluster, follower)?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        cc.nemesis.restart(&mut cc.cluster, leader).await?;
        cc.nemesis.restart(&mut cc.cluster, follower).await?;
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        cc.observe_leader(Duration::from_secs(30)).await?;
        cc.sample_digests().await;
        owners.extend(batch);
        owners.extend(in_flight);
    }
    let summary = cc.verify(&owners, &VerifyOptions::default()).await?;
    let lost = summary
        .verdict("no_lost_writes")
        .map(|v| v.figures.clone())
        .unwrap_or_default();
    assert!(lost["acked_writes"] >= 12, "{lost:?}");
    Ok(())
}
