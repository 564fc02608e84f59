//! `bkv admin audit` over a long audit history streams in constant memory, on the node and in
//! the client, and the audit file survives a torn last line.
//!
//! A node's kept history is made long: while it is stopped, 400,000 older lines (log index 0,
//! which no entry has) go in front of its real lines in `audit.jsonl.1`, and half a line is
//! left at the end of `audit.jsonl`, as a crash in the middle of an append leaves it. At
//! restart the half line is cut off; the next events get lines of their own, with `seq`
//! carrying on. Then `bkv admin audit` (the CLI, as a child process) reads the whole history:
//! every line arrives once and in order; the node's RSS (sampled) and the `bkv` process's
//! peak RSS (VmHWM) stay within fixed bounds, where holding the history in memory would take
//! well over 100 MiB.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bkv_tests::process::{RssSampler, peak_rss_bytes, rss_bytes, workspace_binary};
use bkv_tests::{Cluster, ClusterOptions, account, password};
use tokio::io::{AsyncBufReadExt as _, BufReader};

const HISTORY: u64 = 400_000;
/// How far the node's RSS may rise over what it was before the stream.
const NODE_BOUND: u64 = 48 * 1024 * 1024;
/// The `bkv` process's peak RSS, at most.
const CLIENT_BOUND: u64 = 64 * 1024 * 1024;
const MIB: f64 = 1024.0 * 1024.0;
const RIGHT: &str = "correct horse battery staple";

fn read_lines(path: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    std::fs::read_to_string(path)?
        .lines()
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

fn seq(line: &serde_json::Value) -> u64 {
    line.get("seq")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_history_streams_in_constant_memory_and_a_torn_line_is_cut_off() -> anyhow::Result<()>
{
    let mut cluster = Cluster::start_with(ClusterOptions::new(1)).await?;
    let alice = cluster.vault(&[1], "alice").await?;
    alice
        .register(&account("alice"), password(RIGHT), Some(10))
        .await?;

    // Phase 1: a long history, and a torn last line, while the node is down.
    cluster.sigterm(1).await?;
    let data = cluster.node(1)?.data_dir().to_path_buf();
    let current = data.join("audit.jsonl");
    let real = read_lines(&current)?;
    anyhow::ensure!(!real.is_empty(), "no audit lines after a registration");
    let mut text = String::with_capacity(HISTORY as usize * 100);
    for s in 1..=HISTORY {
        text.push_str(&format!(
            "{{\"seq\":{s},\"log_index\":0,\"at_unix_ms\":0,\"kind\":\"membership_changed\",\
             \"voters\":[1],\"learners\":[]}}\n"
        ));
    }
    for line in &real {
        let mut line = line.clone();
        line["seq"] = (seq(&line) + HISTORY).into();
        text.push_str(&serde_json::to_string(&line)?);
        text.push('\n');
    }
    std::fs::write(data.join("audit.jsonl.1"), &text)?;
    let last_before = HISTORY + real.len() as u64;
    let torn = "{\"seq\":999999999,\"log_index\":12,\"at_unix_ms\":17";
    std::fs::write(&current, torn)?;
    println!(
        "history: {} lines ({:.1} MB) in audit.jsonl.1, the last real one seq {last_before}; \
         audit.jsonl holds {} bytes of a torn line",
        last_before,
        text.len() as f64 / 1e6,
        torn.len()
    );
    drop(text);

    // Phase 2: restart; the torn line is cut off and the next events get their own lines.
    cluster.restart(1).await?;
    cluster
        .wait_serving(1, cluster.options().start_timeout)
        .await?;
    let alice = cluster.vault(&[1], "alice").await?;
    alice.recover(&account("alice"), password(RIGHT)).await?;
    let after = bkv_tests::wait_for(
        "the recovery's audit lines",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            let text = std::fs::read_to_string(&current)?;
            Ok((text.lines().count() >= 2).then_some(text))
        },
    )
    .await?;
    let new: Vec<serde_json::Value> = after
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("a line of audit.jsonl does not parse: {e}\n{after}"))?;
    assert!(!after.contains("999999999"), "the torn line is still there");
    assert_eq!(
        seq(&new[0]),
        last_before + 1,
        "seq carries on after the cut"
    );
    let last = seq(new.last().unwrap_or(&new[0]));
    println!(
        "after the restart: the torn line was cut off; {} new lines, seq {}..={last}",
        new.len(),
        last_before + 1
    );

    // Phase 3: the whole history through `bkv admin audit`.
    let node = cluster.node(1)?;
    let pid = node
        .pid()
        .ok_or_else(|| anyhow::anyhow!("node 1 has no process"))?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let node_before = rss_bytes(pid)?;
    let pki = cluster.pki_dir();
    let mut child = tokio::process::Command::new(workspace_binary("bkv")?)
        .args(["admin", "audit", "--endpoint", &node.admin_addr()])
        .env("BKV_CA_CERT", pki.join("ca.pem"))
        .env("BKV_ADMIN_CERT", pki.join("admin.pem"))
        .env("BKV_ADMIN_KEY", pki.join("admin.key"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let client_pid = child
        .id()
        .ok_or_else(|| anyhow::anyhow!("bkv exited at once"))?;
    let sampler = RssSampler::start(pid);
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let started = Instant::now();
    let read = async {
        let mut lines = BufReader::new(stdout).lines();
        let mut expected = 1u64;
        let mut client_peak = 0;
        while let Some(line) = lines.next_line().await? {
            let value: serde_json::Value = serde_json::from_str(&line)?;
            anyhow::ensure!(
                seq(&value) == expected,
                "seq {} where {expected} was due",
                seq(&value)
            );
            expected += 1;
            // Near the end, while `bkv` still runs, its peak so far.
            if expected == last - 1000 {
                client_peak = peak_rss_bytes(client_pid)?;
            }
        }
        anyhow::Ok((expected - 1, client_peak))
    };
    let (received, client_peak) = tokio::time::timeout(Duration::from_secs(600), read)
        .await
        .map_err(|_| anyhow::anyhow!("the stream did not end within 600 s"))??;
    let took = started.elapsed();
    let status = child.wait().await?;
    let node_peak = sampler.peak().await?;
    println!(
        "bkv admin audit: {received} lines in {} ms ({:.0}/s); node 1 RSS {:.1} MiB before, \
         peak {:.1} MiB; bkv peak RSS {:.1} MiB",
        took.as_millis(),
        received as f64 / took.as_secs_f64(),
        node_before as f64 / MIB,
        node_peak as f64 / MIB,
        client_peak as f64 / MIB
    );
    assert!(status.success(), "bkv admin audit: {status}");
    assert_eq!(received, last, "every line once, in order");
    assert!(
        node_peak <= node_before + NODE_BOUND,
        "node RSS rose {:.1} MiB while streaming",
        (node_peak - node_before) as f64 / MIB
    );
    assert!(
        client_peak > 0 && client_peak <= CLIENT_BOUND,
        "bkv peak RSS {:.1} MiB",
        client_peak as f64 / MIB
    );
    Ok(())
}
