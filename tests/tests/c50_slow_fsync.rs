//! Slow fsync on the leader: every sled flush of its Raft log and vote sleeps 200 ms (the
//! `log_flush` failpoint), then the same on a follower (set at run time, then from the
//! node's environment at a restart), under load. Writes get slower (the
//! latencies are printed) but keep succeeding, the guess bound holds, nothing is lost.

use std::time::{Duration, Instant};

use bkv_tests::chaos::{ChaosCluster, Honest, Load, LoadSpec, VerifyOptions, chaos_options};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_disk_on_the_leader_slows_writes_but_loses_nothing() -> anyhow::Result<()> {
    let mut cc = ChaosCluster::start("c50_slow_fsync", chaos_options(3)).await?;
    let load = Load::start(
        &cc,
        &LoadSpec {
            attackers: 2,
            victims: 2,
            honest: 2,
            ..LoadSpec::default()
        },
    )
    .await?;
    let ids = cc.cluster.ids();
    let canaries = cc.canaries.clone();
    let probe = |name: String| Honest::new(name.clone(), name, &canaries);

    let p = probe("slow-baseline".into());
    let t = Instant::now();
    p.register(&cc.kit, &cc.history, &cc.canaries, None, 0)
        .await?;
    println!("register before the fault: {} ms", t.elapsed().as_millis());

    // Phase 1: the leader's flushes sleep.
    let leader = cc.observe_leader(Duration::from_secs(20)).await?;
    cc.nemesis
        .failpoint(&cc.cluster, leader, "log_flush=sleep(200)", false)
        .await?;
    let mut ok = 0;
    for i in 0..4 {
        let p = probe(format!("slow-leader-{i}"));
        let t = Instant::now();
        if p.register(&cc.kit, &cc.history, &cc.canaries, None, i)
            .await?
            .is_some()
        {
            ok += 1;
        }
        println!(
            "register with a slow leader disk: {} ms",
            t.elapsed().as_millis()
        );
    }
    assert!(
        ok >= 3,
        "only {ok} of 4 registrations went through a slow leader"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    cc.sample_digests().await;
    // The failpoint did fire, on every flush of the leader.
    let listed = cc
        .cluster
        .node(leader)?
        .http_get("/failpoints", Duration::from_secs(3))
        .await?;
    let fired: u64 = listed
        .body
        .lines()
        .find(|l| l.starts_with("log_flush "))
        .and_then(|l| l.rsplit("fired=").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    println!("log_flush fired {fired} times on the leader");
    assert!(
        fired >= 4,
        "the slow-flush failpoint fired {fired} times: {}",
        listed.body
    );
    cc.nemesis.clear_failpoints(&cc.cluster, leader).await?;

    // Phase 2: a follower's flushes sleep (the leader still has a fast majority).
    let leader = cc.observe_leader(Duration::from_secs(20)).await?;
    let follower = *ids.iter().find(|i| **i != leader).unwrap_or(&1);
    cc.nemesis
        .failpoint(&cc.cluster, follower, "log_flush=sleep(300)", false)
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    cc.sample_digests().await;

    // Phase 3: the same follower restarted with the slow disk from its environment
    // (`BKV_FAILPOINTS`, read at start) instead of the HTTP hook.
    cc.cluster
        .node_mut(follower)?
        .set_env("BKV_FAILPOINTS", "log_flush=sleep(100)");
    cc.nemesis.kill9(&mut cc.cluster, follower)?;
    cc.nemesis.restart(&mut cc.cluster, follower).await?;
    cc.cluster.node_mut(follower)?.remove_env("BKV_FAILPOINTS");
    let listed = cc
        .cluster
        .node(follower)?
        .http_get("/failpoints", Duration::from_secs(3))
        .await?;
    assert!(
        listed.body.contains("log_flush sleep(100)"),
        "BKV_FAILPOINTS not applied at start: {}",
        listed.body
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    cc.sample_digests().await;

    let (_, accounts) = load.stop().await?;
    let summary = cc.verify(&accounts, &VerifyOptions::default()).await?;
    assert_eq!(summary.figures["guess_bound.beyond_limit"], 0);
    Ok(())
}
