//! A node removed from the cluster erases its OPRF key shares (`Admin.EraseShares`, which
//! `bkv admin remove-node` sends): on a 3-node cluster with an account whose shares every
//! node holds, a follower is removed and asked to erase. Its token's share keys are
//! destroyed (asked for its share-receiving key afterwards, it makes a new one), its share
//! ledgers are gone, it refuses to erase for another id, a second call finds nothing left,
//! and the two remaining nodes still recover the account. The leader refuses to erase its
//! own shares.

use std::time::Duration;

use bkv_admin::AdminError;
use bkv_tests::{Cluster, ClusterOptions, account, password};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_removed_node_erases_its_shares_and_the_rest_serve_on() -> anyhow::Result<()> {
    let mut cluster = Cluster::start_with(ClusterOptions::new(3)).await?;
    let ids = cluster.ids();
    let name = "erase-me";
    cluster
        .vault(&ids, name)
        .await?
        .register(&account(name), password("erase pw"), None)
        .await?;
    // Every node installs its share (t17); then one recovery, so that ledgers are in use.
    for id in &ids {
        cluster
            .wait_shares_held(*id, 1, Duration::from_secs(30))
            .await?;
    }
    cluster
        .vault(&ids, name)
        .await?
        .recover(&account(name), password("erase pw"))
        .await?;

    let leader = cluster.leader(Duration::from_secs(20)).await?;
    let gone = *ids.iter().find(|id| **id != leader).expect("a follower");
    let before = cluster.admin_at(gone).await?.node_info().await?;

    cluster.admin().await?.remove_node(gone).await?;
    cluster.publish_share_map().await?;
    let node = cluster.admin_at(gone).await?;
    let wrong = node
        .erase_shares(leader)
        .await
        .expect_err("another node's id is refused");
    assert!(
        matches!(
            wrong,
            AdminError::Status {
                code: Code::InvalidArgument,
                ..
            }
        ),
        "{wrong}"
    );
    assert!(wrong.to_string().contains("node_id"), "{wrong}");

    let erased = node.erase_shares(gone).await?;
    println!(
        "node {gone}: {} key objects destroyed, {} ledgers erased",
        erased.keys_destroyed, erased.ledgers_erased
    );
    assert_eq!(
        erased.keys_destroyed, 3,
        "both halves of the share-receiving pair and the share-sealing key"
    );
    assert_eq!(erased.ledgers_erased, 1, "the account's ledger");
    let again = node.erase_shares(gone).await?;
    assert_eq!((again.keys_destroyed, again.ledgers_erased), (0, 0));
    assert_eq!(
        cluster
            .node(gone)?
            .metrics()
            .await?
            .count("bkv_shares_held", &[]),
        0.0
    );
    // The old share-receiving key is gone from the token: asked for it, the node makes a
    // new pair.
    let after = node.node_info().await?;
    assert_ne!(
        after.share_receiving_fingerprint, before.share_receiving_fingerprint,
        "the share-receiving key was destroyed"
    );
    assert!(
        cluster
            .node(gone)?
            .log_text()
            .contains("this node's shares were erased"),
        "node {gone} logs the erasure"
    );

    // Two holders of three are enough: the remaining nodes recover the account.
    cluster.sigterm(gone).await?;
    let rest: Vec<u64> = ids.iter().copied().filter(|id| *id != gone).collect();
    let recovered = cluster
        .vault(&rest, name)
        .await?
        .recover(&account(name), password("erase pw"))
        .await?;
    assert_eq!(recovered.key.expose().len(), 32);

    // The leader never erases its own shares.
    let leader = cluster.leader(Duration::from_secs(20)).await?;
    let refused = cluster
        .admin_at(leader)
        .await?
        .erase_shares(leader)
        .await
        .expect_err("the leader refuses");
    assert!(
        matches!(
            refused,
            AdminError::Status {
                code: Code::InvalidArgument,
                ..
            }
        ),
        "{refused}"
    );
    Ok(())
}
