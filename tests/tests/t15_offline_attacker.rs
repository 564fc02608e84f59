//! The attacker who holds everything of one node of three cannot test a password offline;
//! with two nodes' material (a majority: the threshold) it can, so the test is not vacuous.
//!
//! A real three-node cluster registers an account and recovers it once (so the shares are
//! installed where they were evaluated), every node writes a snapshot, and the cluster
//! stops. The attacker then takes, of each node it holds, what is at rest: its data
//! directory (the Raft log, the snapshot, the share ledgers), its SoftHSM token and its PIN
//! file. With bkv's own library code it rebuilds the node's state, unseals what that node's
//! process can unseal (the OPAQUE server setup and the account's record with the cluster
//! key, its own OPRF key share with its share-receiving key), and for every password of a
//! small dictionary computes the best hardened password its shares allow and runs the whole
//! OPAQUE login against the stolen record, offline. With one node no guess logs in, the
//! right one included (and running OPAQUE on the raw password, protocol v1's attack, fails
//! too); with two nodes exactly the right password logs in.

use bkv_client::SecretString;
use bkv_core::AccountId;
use bkv_tests::Cluster;
use bkv_tests::loot::{attack, logs_in, steal};

const ACCOUNT: &str = "victim@example.com";
const PASSWORD: &str = "correct horse battery staple";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_cannot_test_a_password_offline_and_two_can() -> anyhow::Result<()> {
    // Phase: a real cluster registers and recovers the victim's key.
    let mut cluster = Cluster::start(3).await?;
    let account = AccountId::parse(ACCOUNT)?;
    let vault = cluster.vault(&[1, 2, 3], ACCOUNT).await?;
    let registered = vault
        .register(&account, SecretString::from(PASSWORD.to_string()), Some(10))
        .await?;
    let recovered = vault
        .recover(&account, SecretString::from(PASSWORD.to_string()))
        .await?;
    assert_eq!(recovered.key, registered.key);
    for id in 1..=3 {
        cluster.admin_at(id).await?.snapshot().await?;
    }
    for id in 1..=3 {
        cluster.sigterm(id).await?;
    }

    // Phase: the attacker copies the material of nodes 1 and 2 (data, token, PIN).
    let loot = tempfile::Builder::new().prefix("bkv-loot-").tempdir()?;
    let stolen = steal(&cluster, &[1, 2], loot.path(), &account).await?;

    let dictionary = [
        "123456",
        "password",
        "correct horse battery",
        PASSWORD,
        "Correct horse battery staple",
        "letmein",
    ];
    let right: Vec<bool> = dictionary.iter().map(|g| *g == PASSWORD).collect();

    // Phase: one node's material. Every guess fails alike, the right one too: the
    // attacker cannot tell it from the others.
    for node in &stolen {
        let found = attack(&[node], &dictionary).await?;
        println!("node {} alone: {found:?}", node.node_id);
        assert!(
            found.iter().all(|f| !f),
            "node {} alone told guesses apart: {found:?}",
            node.node_id
        );
    }
    // Nor does OPAQUE on the raw password (protocol v1's offline attack) log in.
    let (secrets, file) = stolen[0].opaque().await?;
    let ksf = stolen[0].record.oprf.ksf;
    assert!(!logs_in(
        &account,
        &secrets,
        &file,
        &ksf,
        PASSWORD.as_bytes()
    )?);

    // Phase: two nodes' material, the threshold: exactly the right password logs in.
    let found = attack(&[&stolen[0], &stolen[1]], &dictionary).await?;
    println!("nodes 1 and 2: {found:?}");
    assert_eq!(
        found, right,
        "two nodes' shares should find exactly the password"
    );
    Ok(())
}
