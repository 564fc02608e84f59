//! Guess storm under random faults: attackers send blinded elements of wrong passwords to
//! random nodes (with retries, reused attempt ids, logins on their own attempts, forged
//! finalizations and reset signatures, replayed finishes) while owners recover and
//! re-register; meanwhile a follower is cut off, links are slowed and reset, the leader is
//! killed (the time to the next accepted write is printed) and the next one frozen.
//! Afterwards every checker runs: attackers never got more password tests (share evaluations)
//! than the guess limit between recoveries, every password test maps to a committed charge, nothing
//! acknowledged was lost, replicas agree, the isolated node released nothing, no canary is
//! on disk, and the healed cluster serves. Then, on the run's real data, a planted extra
//! release and a planted key on disk are caught.

use std::time::Duration;

use bkv_tests::chaos::audit::Audit;
use bkv_tests::chaos::check;
use bkv_tests::chaos::{
    ChaosCluster, Fault, History, Load, LoadSpec, Phase, Role, VerifyOptions, chaos_options,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guesses_stay_within_the_limit_under_random_faults() -> anyhow::Result<()> {
    let mut cc = ChaosCluster::start("c10_guess_storm", chaos_options(3)).await?;
    let load = Load::start(
        &cc,
        &LoadSpec {
            honest: 2,
            victims: 3,
            attackers: 6,
            guess_limit: 3,
            pause: Duration::from_millis(20),
            replays: true,
            seed: 10,
        },
    )
    .await?;
    let ids = cc.cluster.ids();
    let hold = Duration::from_millis(3000);

    // Phase 1: a follower cut off (blackhole both ways): it must fail closed.
    let leader = cc.observe_leader(Duration::from_secs(20)).await?;
    let follower = *ids.iter().find(|i| **i != leader).unwrap_or(&1);
    let others: Vec<u64> = ids.iter().copied().filter(|i| *i != follower).collect();
    cc.nemesis
        .isolate(&cc.cluster, follower, &others, Fault::Blackhole)?;
    tokio::time::sleep(hold).await;
    cc.sample_digests().await;
    cc.nemesis.heal(&mut cc.cluster).await?;

    // Phase 2: slow, jittery links from the leader and a reset of every connection.
    let leader = cc.observe_leader(Duration::from_secs(20)).await?;
    for o in ids.iter().filter(|i| **i != leader) {
        cc.nemesis.link(
            &cc.cluster,
            leader,
            *o,
            Fault::Delay {
                base: Duration::from_millis(60),
                jitter: Duration::from_millis(60),
            },
        )?;
    }
    tokio::time::sleep(hold).await;
    cc.nemesis.reset_connections(&cc.cluster)?;
    tokio::time::sleep(hold).await;
    cc.sample_digests().await;
    cc.nemesis.heal(&mut cc.cluster).await?;

    // Phase 3: kill -9 the leader (the time to the next accepted write is a figure), then
    // freeze the new leader past the election timeout.
    let leader = cc.observe_leader(Duration::from_secs(20)).await?;
    cc.nemesis.kill9(&mut cc.cluster, leader)?;
    let killed = std::time::Instant::now();
    let took = cc
        .time_to_first_write(killed, Duration::from_secs(30))
        .await?;
    cc.record_unavailability(
        "first write after kill -9 of the leader",
        took.as_millis() as u64,
    );
    tokio::time::sleep(hold).await;
    cc.nemesis.restart(&mut cc.cluster, leader).await?;
    let leader = cc.observe_leader(Duration::from_secs(20)).await?;
    cc.nemesis.sigstop(&mut cc.cluster, leader)?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cc.nemesis.sigcont(&mut cc.cluster, leader)?;
    tokio::time::sleep(hold).await;
    cc.sample_digests().await;

    let (ops, accounts) = load.stop().await?;
    let summary = cc.verify(&accounts, &VerifyOptions::default()).await?;
    println!("{ops} client operations");
    let gb = summary
        .verdict("guess_bound")
        .map(|v| v.figures.clone())
        .unwrap_or_default();
    assert!(
        gb["attacker_releases"] > 10,
        "too few guesses to judge: {gb:?}"
    );
    assert_eq!(gb["beyond_limit"], 0);
    let fc = summary
        .verdict("fail_closed")
        .map(|v| v.figures.clone())
        .unwrap_or_default();
    assert!(fc["windows"] >= 1);

    // Planted on this run's real data: a password test released without a charge (a copy of
    // a real release under a new attempt id, all guesses left) breaks the guess bound, and a
    // backup key written into a node's data dir breaks the plaintext rule.
    let audit = Audit::read(cc.cluster.dir())?;
    let mut entries = cc.history.entries();
    let release = entries
        .iter()
        .rev()
        .find(|e| e.released && e.op == "recover_start" && e.role == Some(Role::Attacker))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no attacker release"))?;
    let invoke = entries
        .iter()
        .find(|e| e.op_id == release.op_id && e.phase == Some(Phase::Invoke))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no invoke"))?;
    for mut e in [invoke, release] {
        e.op_id += 1_000_000;
        e.attempt = Some("00".repeat(16));
        // As if nothing had been counted: all guesses left.
        if e.guesses_remaining.is_some() {
            e.guesses_remaining = e.guess_limit;
        }
        entries.push(e);
    }
    let planted = check::guess_bound(&History::from_entries(entries), &audit);
    assert!(
        !planted.passed(),
        "a release without a charge went unnoticed"
    );
    println!("planted release: {}", planted.summary());
    let key = cc
        .canaries
        .all()
        .into_iter()
        .find(|c| c.len() == 32)
        .ok_or_else(|| anyhow::anyhow!("no key"))?;
    let leak = cc.cluster.node(1)?.data_dir().join("planted-leak.bin");
    std::fs::write(&leak, [b"prefix".as_slice(), &key].concat())?;
    let planted = check::no_plaintext(&[cc.cluster.dir().to_path_buf()], &cc.canaries.all());
    assert!(!planted.passed(), "a key on disk went unnoticed");
    println!("planted key: {}", planted.summary());
    Ok(())
}
