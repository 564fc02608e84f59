//! What the node given its shares by repair and one of its helpers hold together is not
//! enough: on five voters (t = 3) an account is registered; node 6 joins and node 5 leaves,
//! and node 6's repair job gets its share from three of the old holders. The attacker then
//! takes, at rest, everything of node 6 and of node 1 (a helper of that repair): data
//! directories, tokens, PINs, and opens with bkv's own code the record, the server setup and
//! both shares. Two shares of a degree-2 polynomial: the line through them is not any other
//! node's share (each compared with the share opened from that node's own token), and no
//! guess of a small dictionary, the right one included, logs in offline. With node 2's
//! material as well (three: the threshold) the attacker finds exactly the right password
//! and node 3's share, so the test is not vacuous.

use std::time::Duration;

use bkv_core::AccountId;
use bkv_core::oprf::{self, Commitment};
use bkv_tests::loot::{Stolen, attack, steal};
use bkv_tests::{Cluster, password, wait_for};

const ACCOUNT: &str = "coalition@example.com";
const PASSWORD: &str = "a password two nodes cannot test";

/// The commitment `k_j·G` the shares of `nodes` give at `j` by interpolation (for fewer
/// than the threshold: a point of another polynomial).
async fn extrapolated(nodes: &[&Stolen], j: u64) -> anyhow::Result<Commitment> {
    let mut points = Vec::new();
    for node in nodes {
        points.push((node.node_id, node.share().await?.commitment()));
    }
    Ok(oprf::repaired_commitment(&points, j)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_repaired_node_and_one_helper_cannot_test_a_password_or_find_a_share()
-> anyhow::Result<()> {
    let mut cluster = Cluster::start(5).await?;
    let result = run(&mut cluster).await;
    cluster.settle(result)
}

async fn run(cluster: &mut Cluster) -> anyhow::Result<()> {
    let account = AccountId::parse(ACCOUNT)?;
    let vault = cluster.vault(&[1, 2, 3, 4, 5], ACCOUNT).await?;
    let registered = vault
        .register(&account, password(PASSWORD), Some(10))
        .await?;
    let added = cluster.add_node().await?;
    anyhow::ensure!(added == 6, "the new node is node {added}");
    cluster.remove_node(5).await?;
    cluster
        .wait_voters(&[1, 2, 3, 4, 6], Duration::from_secs(60))
        .await?;
    let this = &*cluster;
    wait_for(
        "node 6 to be repaired",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || async move {
            let view = this.node_view(6).await?;
            Ok(
                (view.in_share_map && view.shares_missing == 0 && view.accounts_with_shares == 1)
                    .then_some(()),
            )
        },
    )
    .await?;
    let recovered = cluster
        .vault(&[1, 2, 6], ACCOUNT)
        .await?
        .recover(&account, password(PASSWORD))
        .await?;
    anyhow::ensure!(recovered.key.expose() == registered.key.expose());
    for id in [1, 2, 3, 4, 6] {
        cluster.admin_at(id).await?.snapshot().await?;
    }
    for id in [1, 2, 3, 4, 6] {
        cluster.sigterm(id).await?;
    }

    let loot = tempfile::Builder::new().prefix("bkv-loot-").tempdir()?;
    let stolen = steal(cluster, &[6, 1, 2, 3, 4], loot.path(), &account).await?;
    let [n6, n1, n2, n3, n4] = &stolen[..] else {
        anyhow::bail!("five nodes' material");
    };
    let holders: Vec<u64> = n6.record.oprf.holders().collect();
    println!(
        "the record's holders: {holders:?}, threshold {}",
        n6.record.oprf.threshold
    );
    anyhow::ensure!(holders.contains(&6), "node 6 holds a share of the record");

    // The new node and one helper: no other share, no password.
    for other in [n2, n3, n4] {
        let line = extrapolated(&[n6, n1], other.node_id).await?;
        let real = other.share().await?.commitment();
        anyhow::ensure!(
            line != real,
            "nodes 6 and 1 found node {}'s share",
            other.node_id
        );
    }
    let dictionary = ["123456", "password", PASSWORD, "letmein", "a password"];
    let right: Vec<bool> = dictionary.iter().map(|g| *g == PASSWORD).collect();
    let found = attack(&[n6, n1], &dictionary).await?;
    println!("nodes 6 and 1: {found:?}");
    anyhow::ensure!(
        found.iter().all(|f| !f),
        "nodes 6 and 1 told guesses apart: {found:?}"
    );

    // Three (the threshold), the new node among them: node 3's share and the password.
    let line = extrapolated(&[n6, n1, n2], 3).await?;
    anyhow::ensure!(
        line == n3.share().await?.commitment(),
        "three shares give node 3's"
    );
    let found = attack(&[n6, n1, n2], &dictionary).await?;
    println!("nodes 6, 1 and 2: {found:?}");
    anyhow::ensure!(found == right, "three shares find exactly the password");
    Ok(())
}
