//! The leader isolated in the minority: its links to both followers blackholed both ways.
//! While it is cut off it releases nothing (every recovery start sent to it fails), the
//! majority elects a new leader and serves (the time to the first accepted write is
//! printed), and after healing the old leader steps down, catches up and agrees.

use std::time::{Duration, Instant};

use bkv_tests::chaos::{
    Attacker, ChaosCluster, Fault, Load, LoadSpec, Outcome, VerifyOptions, chaos_options,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_isolated_leader_releases_nothing_and_the_majority_serves() -> anyhow::Result<()> {
    let mut cc = ChaosCluster::start("c20_leader_minority", chaos_options(3)).await?;
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
    let ids = cc.cluster.ids();
    let old = cc.observe_leader(Duration::from_secs(20)).await?;
    let majority: Vec<u64> = ids.iter().copied().filter(|i| *i != old).collect();

    // Phase 1: cut the leader off.
    cc.nemesis
        .isolate(&cc.cluster, old, &majority, Fault::Blackhole)?;
    let cut = Instant::now();
    let took = cc.time_to_first_write(cut, Duration::from_secs(30)).await?;
    cc.record_unavailability(
        "first write after the leader was isolated",
        took.as_millis() as u64,
    );
    let new = cc.observe_leader(Duration::from_secs(20)).await?;
    assert_ne!(new, old, "the isolated node still leads the majority");

    // Phase 2: guesses aimed at the old leader get nothing; the same through the majority do.
    let attacker = Attacker::new("attacker-direct");
    let victim = load
        .accounts
        .iter()
        .find(|h| h.account.starts_with("victim"))
        .map(|h| h.account.clone())
        .unwrap_or_default();
    let mut refused = 0;
    for _ in 0..3 {
        let a = attacker.guess(&cc.kit, &cc.history, &victim, old).await?;
        refused += usize::from(!a.answered());
    }
    assert_eq!(
        refused, 3,
        "the isolated old leader answered a recovery start"
    );
    attacker.guess(&cc.kit, &cc.history, &victim, new).await?;
    let answer = cc
        .history
        .entries()
        .into_iter()
        .rev()
        .find(|e| e.client == "attacker-direct")
        .and_then(|e| e.outcome);
    assert!(
        matches!(answer, Some(Outcome::Ok | Outcome::Destroyed)),
        "the majority's leader did not answer: {answer:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    cc.sample_digests().await;

    // Phase 3: heal; the old leader follows the new term.
    cc.nemesis.heal(&mut cc.cluster).await?;
    let after = cc.observe_leader(Duration::from_secs(20)).await?;
    println!("leader before {old}, while isolated {new}, after healing {after}");
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (_, accounts) = load.stop().await?;
    let summary = cc.verify(&accounts, &VerifyOptions::default()).await?;
    let fc = &summary
        .verdict("fail_closed")
        .map(|v| v.figures.clone())
        .unwrap_or_default();
    assert!(fc["refused_in_windows"] >= 3, "{fc:?}");
    Ok(())
}
