//! Register on one node, recover through each of the others; the guess counter counts down
//! on wrong passwords, resets on the right one, and after `guess_limit` wrong guesses the
//! record is destroyed on every node, so that even the right password gets `Destroyed`
//! (FAILED_PRECONDITION). Delete, and the status each step leaves behind on every node.

use std::time::Duration;

use bkv_client::{AccountStatus, RecordState, VaultClient, VaultError, error_details};
use bkv_tests::{Cluster, account, password, raw, wait_for};

const RIGHT: &str = "correct horse battery staple";
const WRONG: &str = "incorrect horse";

/// Waits (bounded) until `client`'s node reports `expected`: a follower applies a committed
/// write a moment after the leader answered.
async fn expect_status(
    client: &VaultClient,
    node: u64,
    expected: AccountStatus,
) -> anyhow::Result<()> {
    wait_for(
        &format!("status {expected:?} on node {node}"),
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            let got = client.status().await?;
            if got == expected {
                Ok(Some(()))
            } else {
                anyhow::bail!("node {node} says {got:?}")
            }
        },
    )
    .await
}

async fn expect_status_everywhere(
    clients: &[(u64, VaultClient)],
    expected: AccountStatus,
) -> anyhow::Result<()> {
    for (node, client) in clients {
        expect_status(client, *node, expected).await?;
    }
    Ok(())
}

fn active(version: bkv_core::ids::RecordVersion, used: u32, limit: u32) -> AccountStatus {
    AccountStatus {
        state: RecordState::Active,
        version: Some(version),
        guesses_used: used,
        guess_limit: limit,
        staged_version: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn register_recover_guess_limit_and_delete_on_every_node() -> anyhow::Result<()> {
    let cluster = Cluster::start(3).await?;
    let alice = account("alice");
    let mut pinned = Vec::new();
    for id in cluster.ids() {
        pinned.push((id, cluster.vault(&[id], "alice").await?));
    }

    // Phase 1: register through node 1 only; every node knows the record.
    let registered = pinned[0]
        .1
        .register(&alice, password(RIGHT), Some(3))
        .await?;
    let v = registered.version;
    expect_status_everywhere(&pinned, active(v, 0, 3)).await?;

    // Phase 2: recover through each other node, each pinned to that node alone.
    for (node, client) in &pinned[1..] {
        let recovered = client.recover(&alice, password(RIGHT)).await?;
        assert_eq!(
            recovered.key, registered.key,
            "key recovered via node {node}"
        );
        assert_eq!(recovered.version, v);
        assert_eq!(recovered.guess_limit, 3);
        assert_eq!(recovered.guesses_remaining_before, 2, "via node {node}");
    }
    expect_status_everywhere(&pinned, active(v, 0, 3)).await?;

    // Phase 3: wrong passwords count down, whichever node takes them.
    for (i, (node, client)) in pinned[1..].iter().enumerate() {
        let err = client.recover(&alice, password(WRONG)).await.err();
        let remaining = 2 - i as u32;
        assert_eq!(
            err,
            Some(VaultError::WrongPassword {
                guesses_remaining: remaining
            }),
            "wrong guess {} via node {node}",
            i + 1
        );
    }
    expect_status_everywhere(&pinned, active(v, 2, 3)).await?;

    // Phase 4: the right password (the third guess) still works and resets the counter.
    let recovered = pinned[0].1.recover(&alice, password(RIGHT)).await?;
    assert_eq!(recovered.key, registered.key);
    assert_eq!(recovered.guesses_remaining_before, 0);
    expect_status_everywhere(&pinned, active(v, 0, 3)).await?;

    // Phase 5: three wrong guesses in a row, one per node, exhaust the record ...
    for (i, (node, client)) in pinned.iter().enumerate() {
        let err = client.recover(&alice, password(WRONG)).await.err();
        assert_eq!(
            err,
            Some(VaultError::WrongPassword {
                guesses_remaining: 2 - i as u32
            }),
            "wrong guess {} via node {node}",
            i + 1
        );
    }
    expect_status_everywhere(&pinned, active(v, 3, 3)).await?;
    // ... and the next start, even with the right password, destroys it.
    assert_eq!(
        pinned[0].1.recover(&alice, password(RIGHT)).await.err(),
        Some(VaultError::Destroyed)
    );
    let destroyed = AccountStatus {
        state: RecordState::Destroyed,
        version: Some(v),
        guesses_used: 0,
        guess_limit: 0,
        staged_version: None,
    };
    expect_status_everywhere(&pinned, destroyed).await?;
    for (node, client) in &pinned {
        assert_eq!(
            client.recover(&alice, password(RIGHT)).await.err(),
            Some(VaultError::Destroyed),
            "right password via node {node} after destruction"
        );
        // Below the SDK: FAILED_PRECONDITION, reason `DESTROYED`, and no credential response.
        let token = cluster.token("alice");
        let answer =
            raw::recover_start(cluster.client_channel(*node)?, Some(&token), &alice, RIGHT).await?;
        let status = answer.err().ok_or_else(|| {
            anyhow::anyhow!("node {node} answered RecoverStart on a destroyed record")
        })?;
        assert_eq!(
            status.code(),
            tonic::Code::FailedPrecondition,
            "node {node}"
        );
        assert_eq!(
            error_details(&status).map(|d| d.reason).as_deref(),
            Some("DESTROYED")
        );
    }

    // Phase 6: delete. A second account, registered via node 3, deleted via node 2.
    let bob = account("bob");
    let bob_on: Vec<(u64, VaultClient)> = vec![
        (1, cluster.vault(&[1], "bob").await?),
        (2, cluster.vault(&[2], "bob").await?),
        (3, cluster.vault(&[3], "bob").await?),
    ];
    let bob_key = bob_on[2].1.register(&bob, password(RIGHT), None).await?;
    expect_status_everywhere(
        &bob_on,
        active(bob_key.version, 0, cluster.options().default_guess_limit),
    )
    .await?;
    let again = bob_on[0].1.recover(&bob, password(RIGHT)).await?;
    assert_eq!(again.key, bob_key.key);
    assert!(bob_on[1].1.delete().await?, "bob had a record to delete");
    let absent = AccountStatus {
        state: RecordState::Absent,
        version: None,
        guesses_used: 0,
        guess_limit: 0,
        staged_version: None,
    };
    expect_status_everywhere(&bob_on, absent).await?;
    for (node, client) in &bob_on {
        assert_eq!(
            client.recover(&bob, password(RIGHT)).await.err(),
            Some(VaultError::NotFound),
            "recovering a deleted record via node {node}"
        );
    }
    assert!(!bob_on[0].1.delete().await?, "nothing left to delete");
    // Deleting the destroyed record clears its tombstone too; alice may register anew.
    assert!(pinned[2].1.delete().await?);
    expect_status_everywhere(&pinned, absent).await?;
    let fresh = pinned[1]
        .1
        .register(&alice, password(RIGHT), Some(3))
        .await?;
    // Versions are never reused: the new record's is above the deleted one's.
    anyhow::ensure!(
        fresh.version > v,
        "a registration after a delete got version {:?} (the deleted one was {v:?})",
        fresh.version
    );
    let back = pinned[2].1.recover(&alice, password(RIGHT)).await?;
    assert_eq!(back.key, fresh.key);
    Ok(())
}
