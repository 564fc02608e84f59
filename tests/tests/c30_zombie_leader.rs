//! The zombie leader: SIGSTOP the leader past the election timeout, let the others elect a
//! new one and take writes, then SIGCONT it while clients aim recovery starts at it. It
//! still believes it leads for a moment; whatever it answers must map to a charge the new
//! majority committed, its stale term must never commit, and the replicas must agree.

use std::time::{Duration, Instant};

use bkv_tests::chaos::{Attacker, ChaosCluster, Load, LoadSpec, VerifyOptions, chaos_options};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_leader_that_wakes_up_cannot_release_uncommitted_guesses() -> anyhow::Result<()> {
    let mut cc = ChaosCluster::start("c30_zombie_leader", chaos_options(3)).await?;
    let load = Load::start(
        &cc,
        &LoadSpec {
            honest: 2,
            victims: 2,
            attackers: 3,
            guess_limit: 5,
            ..LoadSpec::default()
        },
    )
    .await?;
    let victim = load
        .accounts
        .iter()
        .find(|h| h.account.starts_with("victim"))
        .map(|h| h.account.clone())
        .unwrap_or_default();
    for round in 0..2 {
        let zombie = cc.observe_leader(Duration::from_secs(20)).await?;
        // Phase 1: freeze it well past the election timeout (600 ms at most).
        cc.nemesis.sigstop(&mut cc.cluster, zombie)?;
        let frozen = Instant::now();
        let took = cc
            .time_to_first_write(frozen, Duration::from_secs(30))
            .await?;
        cc.record_unavailability(
            "first write after the leader was frozen",
            took.as_millis() as u64,
        );
        let new = cc.observe_leader(Duration::from_secs(20)).await?;
        assert_ne!(new, zombie);
        tokio::time::sleep(Duration::from_millis(1500)).await;

        // Phase 2: wake it up and aim guesses at it at once, concurrently.
        cc.nemesis.sigcont(&mut cc.cluster, zombie)?;
        let mut burst = tokio::task::JoinSet::new();
        for i in 0..6 {
            let (kit, h, victim) = (cc.kit.clone(), cc.history.clone(), victim.clone());
            burst.spawn(async move {
                Attacker::new(format!("zombie-{round}-{i}"))
                    .guess(&kit, &h, &victim, zombie)
                    .await
            });
        }
        while let Some(r) = burst.join_next().await {
            r??;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        cc.sample_digests().await;
        let after = cc.observe_leader(Duration::from_secs(20)).await?;
        println!("round {round}: zombie {zombie}, new leader {new}, leader now {after}");
    }
    let (_, accounts) = load.stop().await?;
    cc.verify(&accounts, &VerifyOptions::default()).await?;
    Ok(())
}
