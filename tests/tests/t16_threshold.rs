//! Any `t` share-holders of `n` serve a recovery; with fewer it fails closed with
//! UNAVAILABLE, and the guess it charged is neither lost nor doubled: a retry of the same
//! attempt, once enough holders are back, gets the same charge and completes.
//!
//! Account "five" is registered on five voters (share map of five, t = 3): for each of the
//! ten sets of three nodes, the other two are stopped (SIGSTOP) and the right password
//! recovers the key through the three. With two nodes up nothing is charged (no Raft
//! quorum) and nothing is answered.
//!
//! Account "three" was registered while the cluster had three voters (its shares on nodes
//! 1 to 3, t = 2) and keeps them after nodes 4 and 5 join. With nodes 2 and 3 stopped the
//! cluster still has a quorum (1, 4, 5), so a recovery start is charged, but only one
//! holder can evaluate: UNAVAILABLE, no evaluation. With 2 and 3 back, the same attempt is
//! charged once (same charge number, one guess used) and is answered by two holders.
//! Share repair is off here, so that "three" keeps its three holders (t21 tests repair).

use std::time::{Duration, Instant};

use bkv_client::{RetryPolicy, SecretString, VaultClient, VaultError};
use bkv_core::AccountId;
use bkv_core::oprf::{Blind, oprf_input};
use bkv_proto::contract::{AUTHORIZATION, BEARER_PREFIX};
use bkv_proto::v1::vault_client::VaultClient as RawVault;
use bkv_proto::v1::{RecoverStartRequest, RecoverStartResponse};
use bkv_tests::{Cluster, ClusterOptions};
use rand::RngCore;
use rand::rngs::OsRng;

const PASSWORD: &str = "a password for the threshold test";

/// A raw `RecoverStart` through node `id` (no retry).
async fn recover_start(
    cluster: &Cluster,
    id: u64,
    account: &str,
    attempt_id: &[u8],
    blinded_element: &[u8],
) -> Result<RecoverStartResponse, tonic::Status> {
    let channel = cluster
        .client_channel(id)
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    let mut request = tonic::Request::new(RecoverStartRequest {
        attempt_id: attempt_id.to_vec(),
        blinded_element: blinded_element.to_vec(),
    });
    request.set_timeout(Duration::from_secs(15));
    let bearer = format!("{BEARER_PREFIX}{}", cluster.token(account));
    request.metadata_mut().insert(
        AUTHORIZATION,
        bearer
            .parse()
            .map_err(|_| tonic::Status::internal("token"))?,
    );
    RawVault::new(channel)
        .recover_start(request)
        .await
        .map(tonic::Response::into_inner)
}

async fn guesses_used(cluster: &Cluster, account: &str) -> anyhow::Result<u32> {
    Ok(cluster
        .vault(&[1], account)
        .await?
        .status()
        .await?
        .guesses_used)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn any_threshold_of_holders_serves_and_fewer_fail_closed() -> anyhow::Result<()> {
    let started = Instant::now();
    // A start whose holders are stopped is answered UNAVAILABLE only once the calls to them
    // time out (3 s each, the second asked 0.4 s after the first): the raw calls wait longer.
    let mut cluster = Cluster::start_with(ClusterOptions {
        client_call_timeout: Duration::from_secs(15),
        share_repair_period_ms: 0,
        ..ClusterOptions::new(3)
    })
    .await?;
    let result = run(&mut cluster).await;
    let result = cluster.settle(result);
    println!("t16 took {:.1} s", started.elapsed().as_secs_f64());
    result
}

async fn run(cluster: &mut Cluster) -> anyhow::Result<()> {
    let three = AccountId::parse("three")?;
    let registered_three = cluster
        .vault(&[1, 2, 3], "three")
        .await?
        .register(&three, SecretString::from(PASSWORD), None)
        .await?;
    cluster.add_node().await?;
    cluster.add_node().await?;
    cluster
        .wait_voters(&[1, 2, 3, 4, 5], Duration::from_secs(60))
        .await?;
    let five = AccountId::parse("five")?;
    let registered_five = cluster
        .vault(&[1, 2, 3, 4, 5], "five")
        .await?
        .register(&five, SecretString::from(PASSWORD), None)
        .await?;

    // Any three of five.
    let all = [1u64, 2, 3, 4, 5];
    let mut served = 0;
    for a in 0..all.len() {
        for b in a + 1..all.len() {
            for c in b + 1..all.len() {
                let up = [all[a], all[b], all[c]];
                let down: Vec<u64> = all.iter().copied().filter(|i| !up.contains(i)).collect();
                for id in &down {
                    cluster.sigstop(*id)?;
                }
                let vault = cluster.vault(&up, "five").await?;
                let result = vault.recover(&five, SecretString::from(PASSWORD)).await;
                for id in &down {
                    cluster.sigcont(*id)?;
                }
                let recovered = result.map_err(|e| anyhow::anyhow!("nodes {up:?}: {e}"))?;
                assert_eq!(recovered.key, registered_five.key, "nodes {up:?}");
                served += 1;
            }
        }
    }
    assert_eq!(served, 10);
    println!("every 3 of 5 nodes recovered the key (10 sets)");
    // The last reset is committed; node 1, which answers the status, may apply it a moment
    // later.
    let mut used = guesses_used(cluster, "five").await?;
    for _ in 0..50 {
        if used == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        used = guesses_used(cluster, "five").await?;
    }
    assert_eq!(used, 0, "guesses left charged after ten recoveries");

    // Two of five: no quorum, no charge, no answer.
    for id in [3u64, 4, 5] {
        cluster.sigstop(id)?;
    }
    let mut config = cluster.client_config(&[1, 2], cluster.token_source("five"))?;
    config.deadline = Duration::from_secs(8);
    config.retry = RetryPolicy {
        max_attempts: 3,
        ..RetryPolicy::default()
    };
    let result = VaultClient::connect(config)
        .await?
        .recover(&five, SecretString::from(PASSWORD))
        .await;
    for id in [3u64, 4, 5] {
        cluster.sigcont(id)?;
    }
    assert!(
        matches!(result, Err(VaultError::Unavailable { .. })),
        "two of five: {:?}",
        result.map(|r| r.version)
    );
    cluster.leader(Duration::from_secs(30)).await?;
    let used = guesses_used(cluster, "five").await?;
    assert!(used <= 1, "one attempt charged {used} guesses");
    println!("two of five: UNAVAILABLE, {used} guess charged (a write may commit after the heal)");

    // A quorum but one holder of three: charged, not answered; the retry is the same charge.
    let input = oprf_input(&three, PASSWORD.as_bytes())?;
    let (_, blinded) = Blind::start(&input, &mut OsRng)?;
    let mut attempt_id = vec![0u8; 16];
    OsRng.fill_bytes(&mut attempt_id);
    // Nodes 2 and 3 stop, and the Raft quorum (1, 4, 5) must still commit the charge: a
    // leader among them moves to node 4 first.
    for _ in 0..5 {
        let leader = cluster.leader(Duration::from_secs(30)).await?;
        if ![2, 3].contains(&leader) {
            break;
        }
        if let Err(e) = cluster.admin().await?.transfer_leader(4).await {
            println!("transfer-leader to 4: {e} (tried again)");
        }
    }
    let leader = cluster.leader(Duration::from_secs(30)).await?;
    anyhow::ensure!(![2, 3].contains(&leader), "node {leader} still leads");
    cluster.sigstop(2)?;
    cluster.sigstop(3)?;
    let lonely = recover_start(cluster, 1, "three", &attempt_id, blinded.as_bytes()).await;
    let used_while_down = guesses_used(cluster, "three").await;
    cluster.sigcont(2)?;
    cluster.sigcont(3)?;
    let refused = lonely.expect_err("one holder of three answered a recovery start");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert_eq!(used_while_down?, 1, "the start was charged once");
    let mut retried = None;
    for _ in 0..10 {
        match recover_start(cluster, 1, "three", &attempt_id, blinded.as_bytes()).await {
            Ok(r) => {
                retried = Some(r);
                break;
            }
            Err(s) if s.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(s) => return Err(s.into()),
        }
    }
    let retried = retried.ok_or_else(|| anyhow::anyhow!("the retry was never answered"))?;
    assert_eq!(retried.evaluations.len(), 2);
    assert_eq!(
        retried.charge, 1,
        "the retry is the first charge, not a new one"
    );
    assert_eq!(guesses_used(cluster, "three").await?, 1);
    // The right password still recovers (a new attempt: the second guess) and resets.
    let recovered = cluster
        .vault(&[1, 2, 3], "three")
        .await?
        .recover(&three, SecretString::from(PASSWORD))
        .await?;
    assert_eq!(recovered.key, registered_three.key);
    assert_eq!(guesses_used(cluster, "three").await?, 0);
    Ok(())
}
