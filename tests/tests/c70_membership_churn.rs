//! Membership churn under load: a fourth node joins through the key ceremony, the leader is
//! removed, a fifth node joins, another original node is removed, while honest clients and
//! attackers keep going and peer links are reset. Every checker holds over the whole run,
//! removed nodes' audit files included.
//!
//! Protocol v2, with share repair off (an operator who turned it off, or removed nodes
//! faster than repair gave the new ones their shares; c72 runs the churn with repair on):
//! a record keeps the share-holders it was registered with, and a node that joins holds no
//! share of older records. A
//! record registered on the three original nodes (threshold 2) survives the first removal
//! (two of its holders left) but not the second (one left): from then on its recoveries fail
//! closed with UNAVAILABLE before any charge (no guess lost, none gained: the record stays
//! active with its count), through every node and for any password, and nothing is
//! released. A record registered between the removals (holders: two originals and node 4,
//! threshold 2) keeps two holders and recovers; so does one registered after the churn. Each
//! of these is checked on accounts of their own. The load's final recoveries are left out of
//! the verification for the same reason: some load records are stranded that way.

use std::time::Duration;

use bkv_tests::chaos::{
    Attacker, ChaosCluster, Entry, Honest, Load, LoadSpec, Outcome, Role, VerifyOptions,
    chaos_options,
};
use bkv_tests::{ClusterOptions, raw};

/// Guess limit of the checked accounts.
const LIMIT: u32 = 3;

/// `(active, version, guesses used)` of `account` as node `node` has it.
async fn status(cc: &ChaosCluster, account: &str, node: u64) -> anyhow::Result<(bool, u64, u32)> {
    let token = cc.kit.token(account);
    let s = raw::status(cc.kit.channel(node)?, Some(&token))
        .await?
        .map_err(|s| anyhow::anyhow!("status of {account} on node {node}: {s:?}"))?;
    let active = s.state == bkv_client::proto::RecordState::Active as i32;
    Ok((active, s.version, s.guesses_used))
}

/// Registers each of `accounts`; fails if one is not acknowledged.
async fn register(cc: &ChaosCluster, accounts: &[Honest]) -> anyhow::Result<()> {
    for (i, h) in accounts.iter().enumerate() {
        h.register(&cc.kit, &cc.history, &cc.canaries, Some(LIMIT), i)
            .await?
            .ok_or_else(|| anyhow::anyhow!("{} not registered", h.account))?;
    }
    Ok(())
}

/// Recovers each of `accounts` with the right password; fails unless each succeeds.
async fn recover_all(cc: &ChaosCluster, accounts: &[Honest], when: &str) -> anyhow::Result<()> {
    for (i, h) in accounts.iter().enumerate() {
        let outcome = h.recover(&cc.kit, &cc.history, i).await?;
        anyhow::ensure!(outcome == Outcome::Ok, "{} {when}: {outcome:?}", h.account);
    }
    Ok(())
}

fn cohort(cc: &ChaosCluster, tag: &str) -> Vec<Honest> {
    (0..2)
        .map(|i| {
            Honest::new(
                format!("{tag}-{i}"),
                format!("{tag}-{}-{i}", std::process::id()),
                &cc.canaries,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn adding_and_removing_nodes_under_load_keeps_every_invariant() -> anyhow::Result<()> {
    let options = ClusterOptions {
        share_repair_period_ms: 0,
        ..chaos_options(3)
    };
    let mut cc = ChaosCluster::start("c70_membership_churn", options).await?;
    // Records on the three original nodes, before any change.
    let old = cohort(&cc, "old");
    register(&cc, &old).await?;
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
    // Phase 2: the leader leaves. The old records keep two of their three holders.
    let leader = cc.observe_leader(Duration::from_secs(20)).await?;
    cc.cluster.remove_node(leader).await?;
    cc.kit.refresh(&cc.cluster);
    cc.history.info(
        Entry::new(Role::Nemesis, "nemesis", "fault")
            .node(leader)
            .detail("removed from the membership"),
    );
    cc.nemesis.reset_connections(&cc.cluster)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    cc.sample_digests().await;
    recover_all(&cc, &old, "after the first removal").await?;
    // Records on the two originals left and node 4.
    let between = cohort(&cc, "between");
    register(&cc, &between).await?;

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
    cc.history.info(
        Entry::new(Role::Nemesis, "nemesis", "fault")
            .node(original)
            .detail("removed from the membership"),
    );
    let now: Vec<u64> = cc.cluster.ids();
    cc.cluster
        .wait_voters(&now, Duration::from_secs(30))
        .await?;
    println!("voters now {now:?} (removed {leader} and {original})");
    tokio::time::sleep(Duration::from_secs(2)).await;
    cc.sample_digests().await;

    // Phase 4: the old records have one holder left of three, threshold 2. More attempts
    // than their guess limit, with wrong passwords through every node and with the right
    // one through the SDK: every one fails closed, nothing is charged, nothing released.
    let attacker = Attacker::new("attacker-stranded");
    let mut before = Vec::new();
    for h in &old {
        before.push(status(&cc, &h.account, now[0]).await?);
    }
    let mut refused = 0;
    for round in 0..=LIMIT {
        for h in &old {
            for node in &now {
                let a = attacker
                    .guess(&cc.kit, &cc.history, &h.account, *node)
                    .await?;
                anyhow::ensure!(
                    !a.answered(),
                    "round {round}: node {node} answered a recovery start of {}, whose \
                     share-holders are gone",
                    h.account
                );
                refused += 1;
            }
        }
    }
    let outcome = old[0].recover(&cc.kit, &cc.history, 0).await?;
    assert_eq!(
        outcome,
        Outcome::Unavailable,
        "the owner's recovery of a record whose share-holders are gone"
    );
    let last = cc
        .history
        .entries()
        .into_iter()
        .rev()
        .find(|e| e.client == "attacker-stranded")
        .and_then(|e| e.detail)
        .unwrap_or_default();
    println!("{refused} starts on records whose holders are gone refused; the last: {last}");
    for (h, was) in old.iter().zip(&before) {
        for node in &now {
            let is = status(&cc, &h.account, *node).await?;
            assert_eq!(
                &is, was,
                "{} on node {node}: (active, version, guesses used) changed by refused \
                 recoveries",
                h.account
            );
        }
        assert!(was.0, "{} is still active", h.account);
    }

    // Records registered between the removals keep two holders; records registered now
    // have three.
    recover_all(&cc, &between, "after the second removal").await?;
    let late = cohort(&cc, "late");
    register(&cc, &late).await?;
    recover_all(&cc, &late, "registered after the churn").await?;

    let (_, accounts) = load.stop().await?;
    cc.verify(
        &accounts,
        &VerifyOptions {
            final_recoveries: false,
            ..VerifyOptions::default()
        },
    )
    .await?;
    Ok(())
}
