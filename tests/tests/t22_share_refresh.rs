//! Share refresh under load: twelve accounts registered on nodes 1 to 3 (t = 2, guess
//! limit 5); account 11 takes two wrong guesses; then `Admin.RefreshShares` on node 1
//! refreshes every record while a client recovers account 0 through all three nodes
//! without a pause (no recovery fails). Afterwards every account recovers with the same
//! key, account 11 has the guesses it had left (a third wrong guess leaves 2), and every
//! node's own ledger store shows each account's old share erased (a tombstone) beside its
//! live new one, with account 11's evaluations carried over (at least six on the new
//! shares: two or more per wrong guess, three wrong guesses, none forgotten by the refresh).

use std::time::{Duration, Instant};

use bkv_client::VaultError;
use bkv_node::shares::SledLedgers;
use bkv_tests::{Cluster, ClusterOptions, RecoveryLoad, account, password, refresh_pass};
use bkv_vault::holder::LedgerStore as _;

const ACCOUNTS: usize = 12;

/// The account that takes wrong guesses around the refresh.
const WATCHED: usize = 11;

fn name(i: usize) -> String {
    format!("refresh-{i}")
}

fn pw(i: usize) -> bkv_client::SecretString {
    password(&format!("refresh password {i}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refresh_under_load_keeps_every_key_and_count_and_erases_the_old_shares()
-> anyhow::Result<()> {
    let started = Instant::now();
    let mut cluster = Cluster::start_with(ClusterOptions {
        client_call_timeout: Duration::from_secs(15),
        ..ClusterOptions::new(3)
    })
    .await?;
    let result = run(&mut cluster).await;
    let result = cluster.settle(result);
    println!("t22 took {:.1} s", started.elapsed().as_secs_f64());
    result
}

async fn run(cluster: &mut Cluster) -> anyhow::Result<()> {
    let mut keys = Vec::new();
    let mut versions = Vec::new();
    for i in 0..ACCOUNTS {
        let registered = cluster
            .vault(&[1, 2, 3], &name(i))
            .await?
            .register(&account(&name(i)), pw(i), None)
            .await?;
        keys.push(registered.key.expose().to_vec());
        versions.push(registered.version);
    }
    let watched = cluster.vault(&[1, 2, 3], &name(WATCHED)).await?;
    for left in [4u32, 3] {
        let err = watched
            .recover(&account(&name(WATCHED)), password("wrong"))
            .await
            .err();
        anyhow::ensure!(
            err == Some(VaultError::WrongPassword {
                guesses_remaining: left
            }),
            "a wrong guess before the refresh: {err:?}"
        );
    }

    // A client recovering account 0 through every node while the refresh runs.
    let load = RecoveryLoad::start(
        cluster.vault(&[1, 2, 3], &name(0)).await?,
        account(&name(0)),
        pw(0),
        keys[0].clone(),
    );
    // Let the load run a little before the refresh starts.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let pass_began = Instant::now();
    let admin = cluster.admin_at(1).await?;
    let last = refresh_pass(&admin, Duration::from_secs(150), |p| {
        println!(
            "refresh progress: {} of {} records",
            p.refreshed, p.records_seen
        )
    })
    .await?;
    println!(
        "refreshed {} of {} records in {:.2} s (node: {} ms), skipped {:?}",
        last.refreshed,
        last.records_seen,
        pass_began.elapsed().as_secs_f64(),
        last.elapsed_ms,
        last.skipped
    );
    anyhow::ensure!(
        last.refreshed == ACCOUNTS as u64 && last.skipped.is_empty(),
        "the pass refreshed {} records, skipped {:?}",
        last.refreshed,
        last.skipped
    );
    // The load goes on a moment past the pass, over the nodes taking up their new shares.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (ok, failed) = load.finish().await?;
    println!("under load meanwhile: {ok} recoveries, {failed} failed");
    anyhow::ensure!(failed == 0, "{failed} recoveries failed during the refresh");
    anyhow::ensure!(ok > 0, "the load made no recovery");

    let metrics = cluster.node(1)?.metrics().await?;
    let refreshed = metrics.count("bkv_shares_refreshed_total", &[]);
    anyhow::ensure!(
        refreshed == ACCOUNTS as f64,
        "node 1 counts {refreshed} records refreshed"
    );
    let audit = std::fs::read_to_string(cluster.node(2)?.data_dir().join("audit.jsonl"))?;
    let events = audit.matches("\"shares_refreshed\"").count();
    anyhow::ensure!(
        events == ACCOUNTS,
        "node 2's audit file has {events} shares_refreshed events"
    );

    // Every account but the watched one recovers with the same key, through each pair.
    for (i, key) in keys.iter().enumerate().take(WATCHED) {
        let up = [[1u64, 2], [2, 3], [1, 3]][i % 3];
        let recovered = cluster
            .vault(&up, &name(i))
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
    // The watched account kept its count: a third wrong guess leaves 2 of 5.
    let err = watched
        .recover(&account(&name(WATCHED)), password("wrong"))
        .await
        .err();
    anyhow::ensure!(
        err == Some(VaultError::WrongPassword {
            guesses_remaining: 2
        }),
        "the third wrong guess, after the refresh: {err:?}"
    );

    // Each node's sweep (every 5 s) takes up the new shares no recovery asked for.
    tokio::time::sleep(Duration::from_secs(7)).await;
    for id in [1u64, 2, 3] {
        cluster.sigterm(id).await?;
    }
    let watched_version = versions[WATCHED];
    let mut watched_evaluations = 0;
    for id in [1u64, 2, 3] {
        let store = SledLedgers::open(&cluster.node(id)?.data_dir().join("shares"))?;
        let all = store.scan(None, 10_000)?;
        let erased = all.iter().filter(|(_, l)| l.is_erased()).count();
        let live = all.len() - erased;
        println!("node {id}: {live} live share ledgers, {erased} erased");
        anyhow::ensure!(
            erased == ACCOUNTS && live == ACCOUNTS,
            "node {id} holds {live} live ledgers and {erased} tombstones"
        );
        for (i, version) in versions.iter().enumerate() {
            let latest = store
                .latest(&account(&name(i)), *version)?
                .ok_or_else(|| anyhow::anyhow!("node {id}: no ledger of {}", name(i)))?;
            let ledger = store
                .load(&latest)?
                .ok_or_else(|| anyhow::anyhow!("node {id}: the latest ledger is missing"))?;
            anyhow::ensure!(
                !ledger.is_erased(),
                "node {id}: the latest ledger of {} is erased",
                name(i)
            );
        }
        let latest = store
            .latest(&account(&name(WATCHED)), watched_version)?
            .ok_or_else(|| anyhow::anyhow!("node {id}: no ledger of the watched account"))?;
        let ledger = store
            .load(&latest)?
            .ok_or_else(|| anyhow::anyhow!("node {id}: the watched ledger is missing"))?;
        anyhow::ensure!(ledger.evaluated.len() <= 5, "node {id}: over the limit");
        watched_evaluations += ledger.evaluated.len();
    }
    println!("the watched account's new shares count {watched_evaluations} evaluations");
    // Two holders evaluate each guess (three when a slow one makes the node ask another):
    // the new shares count the two guesses made before the refresh as well.
    anyhow::ensure!(
        (6..=9).contains(&watched_evaluations),
        "the new shares count {watched_evaluations} evaluations of the three wrong guesses, \
         not 6 to 9 (2 or 3 per guess)"
    );
    Ok(())
}
