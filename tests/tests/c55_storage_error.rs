//! Failing storage and a failing HSM. The leader's log append fails (`log_append=error`):
//! its Raft stops, it releases nothing from then on, the others elect a leader and serve (the
//! time to the first accepted write is printed). A follower's state-machine apply fails
//! (`sm_apply=error`): once it knows, it stops serving, the majority goes on. A node's HSM fails
//! (`hsm_seal=error`): no login and no key through it (a recovery start it serves is a password
//! test charged through Raft and evaluated by the share-holders, counted by the guess
//! bound). Repaired (restarted without the faults), every node catches up and agrees; nothing
//! was lost.

use std::time::{Duration, Instant};

use bkv_tests::chaos::{Attacker, ChaosCluster, Load, LoadSpec, VerifyOptions, chaos_options};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_with_failed_storage_or_hsm_fail_closed_and_recover_when_repaired()
-> anyhow::Result<()> {
    let mut cc = ChaosCluster::start("c55_storage_error", chaos_options(3)).await?;
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
    let victim = load
        .accounts
        .iter()
        .find(|h| h.account.starts_with("victim"))
        .map(|h| h.account.clone())
        .unwrap_or_default();
    let attacker = Attacker::new("attacker-direct");

    // Phase 1: the leader's log append fails.
    let leader = cc.observe_leader(Duration::from_secs(20)).await?;
    cc.nemesis
        .failpoint(&cc.cluster, leader, "log_append=error", true)
        .await?;
    let broke = Instant::now();
    for _ in 0..3 {
        let a = attacker
            .guess(&cc.kit, &cc.history, &victim, leader)
            .await?;
        assert!(
            !a.answered(),
            "a node whose log append fails answered a recovery start"
        );
    }
    let took = cc
        .time_to_first_write(broke, Duration::from_secs(30))
        .await?;
    cc.record_unavailability(
        "first write after the leader's storage failed",
        took.as_millis() as u64,
    );
    let view = cc.cluster.node_view(leader).await?;
    assert!(
        !view.serving,
        "node {leader} still serves after its storage failed"
    );
    println!(
        "node {leader} after the failure: {}",
        view.not_serving_reason
    );
    cc.sample_digests().await;
    cc.nemesis.heal(&mut cc.cluster).await?;

    // Phase 2: a follower's apply fails.
    let leader = cc.observe_leader(Duration::from_secs(20)).await?;
    let follower = *ids.iter().find(|i| **i != leader).unwrap_or(&1);
    cc.nemesis
        .failpoint(&cc.cluster, follower, "sm_apply=error", false)
        .await?;
    // A follower learns that its apply fails only when the next entry reaches it; until
    // then it may still forward a write the majority commits (and release that, which is
    // safe). From the moment it knows, it must release nothing. It knows when its Raft has
    // stopped: any other reason not to serve (no quorum seen yet, just after the restart of
    // phase 1) passes and the node serves again before the failpoint fires.
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let view = cc.cluster.node_view(follower).await?;
        if !view.serving && view.not_serving_reason.contains("raft stopped") {
            println!(
                "node {follower} after the failure: {}",
                view.not_serving_reason
            );
            break;
        }
        anyhow::ensure!(
            Instant::now() < until,
            "node {follower} still serves with a failing apply"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cc.nemesis
        .begin_fail_closed(follower, "state-machine apply fails");
    for _ in 0..2 {
        attacker
            .guess(&cc.kit, &cc.history, &victim, follower)
            .await?;
    }
    cc.sample_digests().await;
    cc.nemesis.heal(&mut cc.cluster).await?;

    // Phase 3: a node's HSM fails to seal and unseal under the cluster key. A recovery start
    // through it may still be answered: the charge commits through Raft and the
    // share-holders evaluate (with their own share keys; the node's own share may be
    // cached), so that is a counted password test, which the guess bound checks. What must
    // fail is everything that needs the cluster key: the login (the record cannot be opened,
    // no ticket sealed), so no key can come from the node.
    let leader = cc.observe_leader(Duration::from_secs(20)).await?;
    let node = *ids.iter().find(|i| **i != leader).unwrap_or(&1);
    cc.nemesis.hsm_failure(&cc.cluster, node).await?;
    let mut tests = 0;
    for _ in 0..3 {
        let a = attacker.guess(&cc.kit, &cc.history, &victim, node).await?;
        tests += usize::from(a.answered());
        let a = attacker.login(&cc.kit, &cc.history, a, node).await?;
        assert!(
            a.ticket.is_none(),
            "a node whose HSM fails answered a login"
        );
    }
    let owner = load
        .accounts
        .iter()
        .find(|h| h.account == victim)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no owner of {victim}"))?;
    let leak = owner.leaky_recover(&cc.kit, &cc.history, node).await?;
    assert!(
        leak.is_none(),
        "a node whose HSM fails let its owner log in"
    );
    println!("node {node} with a failing HSM: {tests} of 3 password tests answered, no login");
    tokio::time::sleep(Duration::from_secs(1)).await;
    cc.sample_digests().await;

    let (_, accounts) = load.stop().await?;
    let summary = cc.verify(&accounts, &VerifyOptions::default()).await?;
    let fc = summary
        .verdict("fail_closed")
        .map(|v| v.figures.clone())
        .unwrap_or_default();
    // Three starts refused in phase 1, two in phase 2, and in phase 3 a refused login per
    // answered start.
    assert!(
        fc["windows"] >= 3 && fc["refused_in_windows"] >= 5 + tests as u64,
        "{fc:?}"
    );
    Ok(())
}
