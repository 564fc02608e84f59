//! kill -9 the leader of a 3-node cluster: recovery through the survivors works again after
//! an election (the time from the kill to the first recovered key is printed), existing keys
//! are still recoverable, new registrations succeed, and the guess counter carries on: a
//! wrong guess made before the kill still counts after it. A client that routes to the
//! leader (`Routing::Leader`) finds it from a follower's answer and the new one after the
//! kill.

use std::time::{Duration, Instant};

use bkv_client::{Routing, VaultClient, VaultError};
use bkv_tests::{Cluster, account, password, wait_for};

const RIGHT: &str = "correct horse battery staple";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_killed_survivors_recover_register_and_keep_counting() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(3).await?;
    let all = cluster.ids();

    // Phase 1: keys registered before the kill, and one wrong guess on carol.
    let mut keys = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let client = cluster.vault(&all, name).await?;
        let registered = client
            .register(&account(name), password(RIGHT), Some(5))
            .await?;
        keys.push((name, registered));
    }
    let carol = cluster.vault(&all, "carol").await?;
    assert_eq!(
        carol
            .recover(&account("carol"), password("wrong"))
            .await
            .err(),
        Some(VaultError::WrongPassword {
            guesses_remaining: 4
        })
    );

    // Phase 2: kill the leader; a client pinned to the survivors recovers at once (the SDK
    // retries UNAVAILABLE and follows leader hints until its deadline).
    let old_leader = cluster.leader(Duration::from_secs(10)).await?;
    let survivors: Vec<u64> = all.iter().copied().filter(|i| *i != old_leader).collect();
    let alice = cluster.vault(&survivors, "alice").await?;
    // A client that follows the leader, starting at a follower: the follower's answer names
    // the leader, and the next call goes there.
    let mut routed = survivors.clone();
    routed.push(old_leader);
    let mut config = cluster.client_config(&routed, cluster.token_source("bob"))?;
    config.routing = Routing::Leader;
    let bob = VaultClient::connect(config).await?;
    assert_eq!(
        bob.current_endpoint(),
        cluster.node(survivors[0])?.client_url()
    );
    assert_eq!(
        bob.recover(&account("bob"), password(RIGHT)).await?.key,
        keys[1].1.key
    );
    assert_eq!(
        bob.current_endpoint(),
        cluster.node(old_leader)?.client_url(),
        "a follower's answer names the leader"
    );
    cluster.kill9(old_leader)?;
    let killed_at = Instant::now();
    let recovered = alice.recover(&account("alice"), password(RIGHT)).await?;
    let first_recovery = killed_at.elapsed();
    assert_eq!(recovered.key, keys[0].1.key);
    println!(
        "FIGURE leader failover: {} ms from kill -9 of leader {old_leader} to the first \
         recovered key through survivors {survivors:?}",
        first_recovery.as_millis()
    );
    let new_leader = cluster.leader(Duration::from_secs(10)).await?;
    assert_ne!(new_leader, old_leader);
    assert!(survivors.contains(&new_leader));
    println!("new leader: node {new_leader}");
    // The routed client fails over from the dead leader and moves to the new one.
    let new_leader_url = cluster.node(new_leader)?.client_url();
    wait_for(
        "the routed client at the new leader",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            bob.status().await?;
            Ok((bob.current_endpoint() == new_leader_url).then_some(()))
        },
    )
    .await?;

    // Phase 3: every existing key, through each survivor alone.
    for node in &survivors {
        for (name, registered) in &keys[..2] {
            let client = cluster.vault(&[*node], name).await?;
            let got = client.recover(&account(name), password(RIGHT)).await?;
            assert_eq!(got.key, registered.key, "{name} via node {node}");
        }
    }

    // Phase 4: a new registration, recovered through the other survivor.
    let dave_a = cluster.vault(&survivors[..1], "dave").await?;
    let dave = dave_a
        .register(&account("dave"), password(RIGHT), None)
        .await?;
    let dave_b = cluster.vault(&survivors[1..], "dave").await?;
    assert_eq!(
        dave_b.recover(&account("dave"), password(RIGHT)).await?.key,
        dave.key
    );

    // Phase 5: carol's wrong guess from before the kill still counts.
    let carol = cluster.vault(&survivors, "carol").await?;
    assert_eq!(
        carol
            .recover(&account("carol"), password("wrong again"))
            .await
            .err(),
        Some(VaultError::WrongPassword {
            guesses_remaining: 3
        }),
        "the guess made before the kill is still charged"
    );
    guesses_used_becomes(&carol, 2).await?;
    let ok = carol.recover(&account("carol"), password(RIGHT)).await?;
    assert_eq!(ok.key, keys[2].1.key);
    assert_eq!(ok.guesses_remaining_before, 2);
    guesses_used_becomes(&carol, 0).await?;
    Ok(())
}

/// Status is read from the node asked, which may apply a commit a moment after the leader.
async fn guesses_used_becomes(client: &VaultClient, used: u32) -> anyhow::Result<()> {
    wait_for(
        &format!("guesses_used {used}"),
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            let s = client.status().await?;
            Ok((s.guesses_used == used).then_some(()))
        },
    )
    .await
}
