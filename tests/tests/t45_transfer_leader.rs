//! `bkv admin transfer-leader`: leadership moves to the voter asked for, twice in a row, and
//! the cluster keeps serving writes and recoveries through it.

use std::time::{Duration, Instant};

use bkv_client::SecretString;
use bkv_tests::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_where_the_operator_asks() {
    let mut cluster = Cluster::start(3).await.expect("cluster");
    let account = bkv_core::AccountId::parse("dave").expect("account");
    let client = cluster.vault(&[1, 2, 3], "dave").await.expect("client");
    let registered = client
        .register(&account, SecretString::from("pw"), None)
        .await
        .expect("register");

    for _ in 0..2 {
        let from = cluster
            .leader(Duration::from_secs(10))
            .await
            .expect("leader");
        let to = cluster
            .ids()
            .into_iter()
            .find(|id| *id != from)
            .expect("another voter");
        let started = Instant::now();
        let answer = cluster
            .admin()
            .await
            .expect("admin")
            .transfer_leader(to)
            .await
            .expect("transfer");
        assert_eq!(answer.leader_id, to, "the answer names the new leader");
        let now = cluster
            .leader(Duration::from_secs(10))
            .await
            .expect("leader after");
        assert_eq!(now, to, "node {to} leads after the transfer from {from}");
        println!(
            "FIGURE transfer-leader {from} -> {to}: {} ms",
            started.elapsed().as_millis()
        );

        // The cluster serves through the new leader.
        let recovered = cluster
            .vault(&[to], "dave")
            .await
            .expect("client")
            .recover(&account, SecretString::from("pw"))
            .await
            .expect("recover after the transfer");
        assert_eq!(recovered.key, registered.key);
    }

    // Transferring to the node that already leads is a no-op that names it.
    let leader = cluster
        .leader(Duration::from_secs(10))
        .await
        .expect("leader");
    let answer = cluster
        .admin()
        .await
        .expect("admin")
        .transfer_leader(leader)
        .await
        .expect("no-op");
    assert_eq!(answer.leader_id, leader);
}
