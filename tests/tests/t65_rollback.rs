//! Rollback and wipe detection (issue 8): a node restarted on an old copy of its data
//! directory, or on an empty one, refuses to start (it neither votes nor serves), the
//! cluster's counters are unaffected, and the documented repair brings it back.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bkv_client::{SecretString, VaultError};
use bkv_tests::{Cluster, ClusterOptions};

fn copy_dir(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(ok.success(), "cp -a {} {}", from.display(), to.display());
}

/// Starts node `id` and expects it to exit on its own with the refusal in its log.
async fn expect_refusal(cluster: &mut Cluster, id: u64, words: &str) {
    let before = cluster.node(id).expect("node").log_text().len();
    cluster.node_mut(id).expect("node").spawn().expect("spawn");
    let until = Instant::now() + Duration::from_secs(30);
    while cluster.node_mut(id).expect("node").is_up() {
        assert!(Instant::now() < until, "node {id} did not refuse to start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let full = cluster.node(id).expect("node").log_text();
    let log = full.get(before..).unwrap_or_default();
    assert!(
        log.contains(words),
        "node {id} should say {words:?}; log:\n{log}"
    );
    assert!(log.contains("will not vote or serve"), "{log}");
}

async fn wrong_guess(cluster: &Cluster, ids: &[u64]) -> u32 {
    let client = cluster.vault(ids, "carol").await.expect("client");
    let account = bkv_core::AccountId::parse("carol").expect("account");
    match client.recover(&account, SecretString::from("not it")).await {
        Err(VaultError::WrongPassword { guesses_remaining }) => guesses_remaining,
        other => panic!(
            "expected a wrong password, got {:?}",
            other.map(|r| r.version)
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_or_wiped_node_refuses_to_start_until_repaired() {
    let mut cluster = Cluster::start_with(ClusterOptions::new(3))
        .await
        .expect("cluster");
    let account = bkv_core::AccountId::parse("carol").expect("account");
    let client = cluster.vault(&[1, 2, 3], "carol").await.expect("client");
    let registered = client
        .register(&account, SecretString::from("right"), Some(10))
        .await
        .expect("register");
    assert_eq!(wrong_guess(&cluster, &[1, 2, 3]).await, 9);

    // Phase: an old copy of node 3's data directory.
    let data = cluster.node(3).expect("node 3").data_dir().to_path_buf();
    cluster.sigterm(3).await.expect("stop node 3");
    let backup = cluster.dir().join("node3-backup");
    copy_dir(&data, &backup);
    cluster.restart(3).await.expect("restart node 3");
    cluster
        .wait_serving(3, Duration::from_secs(30))
        .await
        .expect("node 3 serves");
    cluster
        .write_entries(&[1, 2, 3], 40)
        .await
        .expect("more entries");
    assert_eq!(wrong_guess(&cluster, &[1, 2, 3]).await, 8);
    cluster
        .wait_digests_equal(&[1, 2, 3], Duration::from_secs(20))
        .await
        .expect("node 3 caught up");
    // The watermark follows the disk about once a second; SIGTERM writes a last one.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.sigterm(3).await.expect("stop node 3 again");

    // Phase: restart on the rolled-back copy: refused.
    std::fs::remove_dir_all(&data).expect("remove data");
    copy_dir(&backup, &data);
    expect_refusal(&mut cluster, 3, "rolled back or wiped").await;

    // Phase: restart on a wiped data directory under the old identity: refused.
    std::fs::remove_dir_all(&data).expect("wipe");
    expect_refusal(&mut cluster, 3, "rolled back or wiped").await;

    // The two others carry on, and the counters are what they were.
    assert_eq!(wrong_guess(&cluster, &[1, 2]).await, 7);

    // Phase: the documented repair. Remove the node, wipe, reset the watermark, add it again.
    cluster.remove_node(3).await.expect("remove node 3");
    let _ = std::fs::remove_dir_all(&data);
    let token_dir = cluster.dir().join("tokens/node3");
    let reset = Command::new(bkv_tests::process::workspace_binary("bkv-node").expect("bkv-node"))
        .arg("--config")
        .arg(cluster.dir().join("node3.toml"))
        .arg("--reset-watermark")
        .env("SOFTHSM2_CONF", token_dir.join("softhsm2.conf"))
        .output()
        .expect("reset");
    assert!(
        reset.status.success(),
        "reset failed: {}",
        String::from_utf8_lossy(&reset.stderr)
    );
    let id = cluster.add_node().await.expect("re-add node 3");
    assert_eq!(id, 3, "the node comes back under its id, with its token");
    cluster
        .wait_digests_equal(&[1, 2, 3], Duration::from_secs(30))
        .await
        .expect("digests equal");

    // Node 3 alone serves the counters as the cluster had them, and the key.
    assert_eq!(wrong_guess(&cluster, &[3]).await, 6);
    let recovered = cluster
        .vault(&[3], "carol")
        .await
        .expect("client")
        .recover(&account, SecretString::from("right"))
        .await
        .expect("recover through node 3");
    assert_eq!(recovered.key, registered.key);
}
