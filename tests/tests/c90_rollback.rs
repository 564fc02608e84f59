//! A node restarted on a rolled-back or wiped data dir, under load and attack: a follower is
//! crashed (kill -9) for a crash-consistent copy of its data dir, runs on while the cluster
//! commits more (charges included), is crashed again and restarted on the old copy, then on
//! an empty dir. Both times it must refuse to start (it neither votes nor serves) while the
//! majority serves; the documented repair (remove, wipe, reset the watermark, add again)
//! brings it back; the guess counters and every acknowledged write are as the majority had
//! them.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bkv_tests::chaos::{ChaosCluster, Load, LoadSpec, VerifyOptions, chaos_options};
use bkv_tests::process::workspace_binary;

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    let ok = Command::new("cp").arg("-a").arg(from).arg(to).status()?;
    anyhow::ensure!(ok.success(), "cp -a {} {}", from.display(), to.display());
    Ok(())
}

/// Starts node `id` and expects it to exit on its own, saying why.
async fn expect_refusal(cc: &mut ChaosCluster, id: u64) -> anyhow::Result<()> {
    let before = cc.cluster.node(id)?.log_text().len();
    cc.cluster.node_mut(id)?.spawn()?;
    let until = Instant::now() + Duration::from_secs(30);
    while cc.cluster.node_mut(id)?.is_up() {
        anyhow::ensure!(Instant::now() < until, "node {id} did not refuse to start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let full = cc.cluster.node(id)?.log_text();
    let log = full.get(before..).unwrap_or_default();
    anyhow::ensure!(
        log.contains("rolled back or wiped") && log.contains("will not vote or serve"),
        "node {id} exited without saying it was rolled back; log:\n{log}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolled_back_or_wiped_node_is_refused_and_counters_hold() -> anyhow::Result<()> {
    let mut cc = ChaosCluster::start("c90_rollback", chaos_options(3)).await?;
    let load = Load::start(
        &cc,
        &LoadSpec {
            attackers: 3,
            victims: 2,
            honest: 2,
            ..LoadSpec::default()
        },
    )
    .await?;
    let ids = cc.cluster.ids();
    let leader = cc.observe_leader(Duration::from_secs(20)).await?;
    let f = ids
        .iter()
        .rev()
        .copied()
        .find(|i| *i != leader)
        .unwrap_or(3);
    let others: Vec<u64> = ids.iter().copied().filter(|i| *i != f).collect();
    let data = cc.cluster.node(f)?.data_dir().to_path_buf();
    let backup = cc.cluster.dir().join(format!("node{f}-backup"));

    // Phase 1: a crash-consistent copy, then the node runs on while more is committed.
    cc.nemesis.kill9(&mut cc.cluster, f)?;
    copy_dir(&data, &backup)?;
    cc.nemesis.restart(&mut cc.cluster, f).await?;
    cc.cluster.wait_serving(f, Duration::from_secs(30)).await?;
    cc.cluster.write_entries(&others, 40).await?;
    cc.cluster
        .wait_digests_equal(&ids, Duration::from_secs(30))
        .await?;
    cc.sample_digests().await;
    // The watermark follows the disk about once a second.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // Phase 2: crash it and restart it on the old copy: refused.
    cc.nemesis.kill9(&mut cc.cluster, f)?;
    std::fs::remove_dir_all(&data)?;
    copy_dir(&backup, &data)?;
    cc.nemesis
        .begin_fail_closed(f, "restarted on a rolled-back data dir");
    expect_refusal(&mut cc, f).await?;
    let refused = Instant::now();
    let took = cc
        .time_to_first_write(refused, Duration::from_secs(30))
        .await?;
    println!(
        "node {f} refused the rolled-back dir; the majority took a write {} ms later",
        took.as_millis()
    );

    // Phase 3: restart it on a wiped data dir: refused.
    std::fs::remove_dir_all(&data)?;
    expect_refusal(&mut cc, f).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    cc.sample_digests().await;

    // Phase 4: the documented repair: remove, wipe, reset the watermark, add again.
    cc.cluster.remove_node(f).await?;
    let _ = std::fs::remove_dir_all(&data);
    let token_dir = cc.cluster.dir().join(format!("tokens/node{f}"));
    let reset = Command::new(workspace_binary(&cc.cluster.options().node_binary)?)
        .arg("--config")
        .arg(cc.cluster.dir().join(format!("node{f}.toml")))
        .arg("--reset-watermark")
        .env("SOFTHSM2_CONF", token_dir.join("softhsm2.conf"))
        .output()?;
    anyhow::ensure!(
        reset.status.success(),
        "reset failed ({}): {}",
        reset.status,
        String::from_utf8_lossy(&reset.stderr)
    );
    let back = cc.cluster.add_node().await?;
    cc.kit.refresh(&cc.cluster);
    cc.nemesis.end_fail_closed(f);
    println!("node {f} repaired and added back as node {back}");
    let now = cc.cluster.ids();
    cc.cluster
        .wait_digests_equal(&now, Duration::from_secs(60))
        .await?;
    cc.sample_digests().await;

    let (_, accounts) = load.stop().await?;
    let summary = cc.verify(&accounts, &VerifyOptions::default()).await?;
    assert_eq!(summary.figures["guess_bound.beyond_limit"], 0);
    assert_eq!(summary.figures["no_lost_writes.lost"], 0);
    Ok(())
}
