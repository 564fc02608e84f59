//! A follower's storage fails while attackers aim at it: `log_append=error` is set on a
//! follower under a burst of recovery starts sent to it. The follower learns that its log
//! fails only when the leader next sends it an entry; until then it may forward a start that
//! the other two commit, and answer it. That answer maps to a committed charge (the guess
//! bound holds); from the moment its Raft has stopped it releases nothing (its fail-closed
//! window opens then, see `Nemesis::begin_when_stopped`). The releases made in between are
//! counted and printed: they are why a window opened at the moment the failpoint was set
//! failed c99 (seed 6) once, a false alarm of the checker, not a fault of the node.

use std::time::{Duration, Instant};

use bkv_tests::chaos::check;
use bkv_tests::chaos::history::now_ms;
use bkv_tests::chaos::{
    Attacker, ChaosCluster, Entry, History, Load, LoadSpec, Phase, Role, VerifyOptions,
    chaos_options,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_answers_only_committed_charges_until_it_notices_its_storage_failed()
-> anyhow::Result<()> {
    let mut cc = ChaosCluster::start("c56_unnoticed_storage_failure", chaos_options(3)).await?;
    let load = Load::start(
        &cc,
        &LoadSpec {
            honest: 2,
            victims: 2,
            attackers: 1,
            guess_limit: 10,
            seed: 56,
            ..LoadSpec::default()
        },
    )
    .await?;
    let victims: Vec<String> = load
        .accounts
        .iter()
        .filter(|h| h.account.starts_with("victim"))
        .map(|h| h.account.clone())
        .collect();
    let mut gaps = Vec::new();
    for round in 0..3u64 {
        let leader = cc.observe_leader(Duration::from_secs(20)).await?;
        let f = cc
            .cluster
            .ids()
            .into_iter()
            .find(|i| *i != leader)
            .unwrap_or(1);
        // Phase 1: a burst of recovery starts aimed at the follower, and its log fails
        // while they run.
        let stop = now_ms() + 2_500;
        let mut burst = tokio::task::JoinSet::new();
        for i in 0..6 {
            let (kit, h) = (cc.kit.clone(), cc.history.clone());
            let victim = victims[i % victims.len()].clone();
            burst.spawn(async move {
                let a = Attacker::new(format!("burst-{round}-{i}"));
                for _ in 0..200 {
                    if now_ms() > stop {
                        break;
                    }
                    a.guess(&kit, &h, &victim, f).await?;
                }
                anyhow::Ok(())
            });
        }
        tokio::time::sleep(Duration::from_millis(300 + 150 * round)).await;
        let set_at = now_ms();
        cc.nemesis
            .failpoint(&cc.cluster, f, "log_append=error", false)
            .await?;
        let set = Instant::now();
        cc.nemesis
            .begin_when_stopped(&cc.cluster, f, "log_append=error")
            .await;
        let noticed = set.elapsed();
        while let Some(r) = burst.join_next().await {
            r??;
        }
        // Answers the follower released once its log had begun to fail: to starts sent
        // before (relayed charges the majority committed), and to starts sent in between.
        let entries = cc.history.entries();
        let window = entries
            .iter()
            .rev()
            .find(|e| e.op == "fail_closed_begin" && e.node == Some(f))
            .map_or(u64::MAX, |e| e.t_ms);
        let invoked: std::collections::BTreeMap<u64, u64> = entries
            .iter()
            .filter(|e| e.phase == Some(Phase::Invoke))
            .map(|e| (e.op_id, e.t_ms))
            .collect();
        let released_by_f = |e: &&Entry| {
            e.phase == Some(Phase::Complete) && e.released && e.node == Some(f) && e.t_ms >= set_at
        };
        let relayed = entries.iter().filter(released_by_f).count();
        let in_gap = entries
            .iter()
            .filter(released_by_f)
            .filter(|e| {
                invoked
                    .get(&e.op_id)
                    .is_some_and(|t| *t >= set_at && *t < window)
            })
            .count();
        println!(
            "round {round}: node {f} noticed its failing log after {} ms; it released {relayed} \
             answers after the failpoint was set, {in_gap} of them to starts sent after it",
            noticed.as_millis()
        );
        gaps.push((set_at, f, in_gap));
        cc.sample_digests().await;
        cc.nemesis.heal(&mut cc.cluster).await?;
    }
    let (_, accounts) = load.stop().await?;
    let summary = cc.verify(&accounts, &VerifyOptions::default()).await?;
    anyhow::ensure!(summary.figures["guess_bound.beyond_limit"] == 0);

    // The same history judged with windows opened when the failpoints were set: the
    // releases in the gaps show up as failures to fail closed (which they are not).
    let mut early = cc.history.entries();
    for (t, f, _) in &gaps {
        let mut begin = Entry::new(Role::Nemesis, "nemesis", "fail_closed_begin")
            .node(*f)
            .detail("set time");
        begin.t_ms = *t;
        begin.phase = Some(Phase::Info);
        early.push(begin);
    }
    early.sort_by_key(|e| (e.t_ms, e.seq));
    let judged = check::fail_closed(&History::from_entries(early));
    let released: usize = gaps.iter().map(|g| g.2).sum();
    println!(
        "released between failure and notice: {released} in {} rounds; windows from the \
         set time: {}",
        gaps.len(),
        judged.summary()
    );
    Ok(())
}
