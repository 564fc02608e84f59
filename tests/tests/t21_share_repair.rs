//! Share repair after a node is replaced, under load: twelve accounts registered on nodes 1
//! to 3 (t = 2); node 4 joins and node 3 is removed while a client recovers accounts
//! through nodes 1 and 2 without a pause. Node 4's repair job gets its share of every
//! record from two of the old holders (`bkv admin status` shows none missing, the metrics
//! count twelve repaired, the audit file a `share_repaired` event per record); the repaired
//! records go through snapshots (node 4 restarts on its own, digests agree); then any two
//! nodes of the new three serve every account: nodes 2 and 4 with node 1 stopped, and nodes
//! 1 and 4 with node 2 stopped. No recovery under load failed.

use std::time::{Duration, Instant};

use bkv_tests::{Cluster, ClusterOptions, RecoveryLoad, account, password, wait_for};

const ACCOUNTS: usize = 12;

fn name(i: usize) -> String {
    format!("repair-{i}")
}

fn pw(i: usize) -> bkv_client::SecretString {
    password(&format!("repair password {i}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replaced_node_gets_its_shares_and_any_two_serve_every_account() -> anyhow::Result<()> {
    let started = Instant::now();
    let mut cluster = Cluster::start_with(ClusterOptions {
        client_call_timeout: Duration::from_secs(15),
        ..ClusterOptions::new(3)
    })
    .await?;
    let result = run(&mut cluster).await;
    let result = cluster.settle(result);
    println!("t21 took {:.1} s", started.elapsed().as_secs_f64());
    result
}

async fn run(cluster: &mut Cluster) -> anyhow::Result<()> {
    let mut keys = Vec::new();
    for i in 0..ACCOUNTS {
        let registered = cluster
            .vault(&[1, 2, 3], &name(i))
            .await?
            .register(&account(&name(i)), pw(i), None)
            .await?;
        keys.push(registered.key.expose().to_vec());
    }

    // A client recovering account 0 through nodes 1 and 2 while the membership changes.
    let load = RecoveryLoad::start(
        cluster.vault(&[1, 2], &name(0)).await?,
        account(&name(0)),
        pw(0),
        keys[0].clone(),
    );

    let repair_began = Instant::now();
    let added = cluster.add_node().await?;
    anyhow::ensure!(added == 4, "the new node is node {added}");
    cluster
        .wait_voters(&[1, 2, 3, 4], Duration::from_secs(60))
        .await?;
    cluster.remove_node(3).await?;
    cluster
        .wait_voters(&[1, 2, 4], Duration::from_secs(60))
        .await?;
    let this = &*cluster;
    wait_for(
        "node 4 to hold a share of every account",
        Duration::from_secs(120),
        Duration::from_millis(250),
        || async move {
            let view = this.node_view(4).await?;
            Ok((view.in_share_map
                && view.shares_missing == 0
                && view.accounts_with_shares == ACCOUNTS as u64)
                .then_some(()))
        },
    )
    .await?;
    println!(
        "node 4 repaired {ACCOUNTS} accounts' shares {:.1} s after it was added",
        repair_began.elapsed().as_secs_f64()
    );
    let (ok, failed) = load.finish().await?;
    println!("under load meanwhile: {ok} recoveries, {failed} failed");
    anyhow::ensure!(failed == 0, "{failed} recoveries failed during the repair");
    anyhow::ensure!(ok > 0, "the load made no recovery");

    let metrics = cluster.node(4)?.metrics().await?;
    let repaired = metrics.count("bkv_shares_repaired_total", &[]);
    anyhow::ensure!(
        repaired == ACCOUNTS as f64,
        "node 4 counts {repaired} shares repaired"
    );
    let took = metrics.count(
        "bkv_share_repair_steps_total",
        &[("step", "take"), ("result", "ok")],
    );
    anyhow::ensure!(took == ACCOUNTS as f64, "node 4 took {took} shares");
    for helper in [1, 2] {
        let m = cluster.node(helper)?.metrics().await?;
        let dealt = m.count(
            "bkv_share_repair_steps_total",
            &[("step", "deal"), ("result", "ok")],
        );
        println!("node {helper} dealt for {dealt} records");
    }
    let audit = std::fs::read_to_string(cluster.node(4)?.data_dir().join("audit.jsonl"))?;
    let events = audit.matches("\"share_repaired\"").count();
    anyhow::ensure!(
        events == ACCOUNTS,
        "node 4's audit file has {events} share_repaired events"
    );

    // Repaired records go through snapshots: every node writes one, node 4 restarts on its
    // own (kill -9: it reads the snapshot back), and the three agree.
    for id in [1, 2, 4] {
        cluster.admin_at(id).await?.snapshot().await?;
    }
    cluster.kill9(4)?;
    cluster.restart(4).await?;
    cluster.wait_serving(4, Duration::from_secs(30)).await?;
    cluster
        .wait_digests_equal(&[1, 2, 4], Duration::from_secs(30))
        .await?;

    // Any two of the new three: 2 and 4, then 1 and 4.
    for (stopped, up) in [(1u64, [2u64, 4]), (2, [1, 4])] {
        cluster.sigstop(stopped)?;
        let result = recover_all(cluster, &up, &keys).await;
        cluster.sigcont(stopped)?;
        result?;
        println!("nodes {up:?} recovered all {ACCOUNTS} accounts with node {stopped} stopped");
        cluster.leader(Duration::from_secs(30)).await?;
    }
    Ok(())
}

async fn recover_all(cluster: &Cluster, up: &[u64], keys: &[Vec<u8>]) -> anyhow::Result<()> {
    for (i, key) in keys.iter().enumerate() {
        let recovered = cluster
            .vault(up, &name(i))
            .await?
            .recover(&account(&name(i)), pw(i))
            .await
            .map_err(|e| anyhow::anyhow!("{} through {up:?}: {e}", name(i)))?;
        anyhow::ensure!(
            recovered.key.expose()[..] == key[..],
            "{}: another key",
            name(i)
        );
    }
    Ok(())
}
