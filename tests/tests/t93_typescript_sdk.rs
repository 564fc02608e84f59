//! The TypeScript SDK (`sdk/typescript`) against a real cluster: three `bkv-node` processes
//! with SoftHSM tokens and TLS, driven by node scripts. The SDK's own unit tests (the
//! contract's vectors) run first; then registrations cross between the SDKs (TypeScript
//! registers and Rust recovers, Rust registers and TypeScript recovers), status and delete
//! from TypeScript, a wrong password giving TypeScript's typed error with the guesses left,
//! a recovery while a node is down, and a 1 GiB backup encrypted and restored by the
//! TypeScript SDK in under 100 MiB of resident memory.
//!
//! Needs `node` and `npm`: without them the test says so and passes, unless
//! `BKV_REQUIRE_NODE=1` (CI), where it fails. It runs `npm ci` and `npm run build` in
//! `sdk/typescript` when `node_modules` or `dist` are missing or older than their sources.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use bkv_client::{BackupKey, KsfParams, VaultClient, VaultError};
use bkv_tests::cluster_up::repo_root;
use bkv_tests::{Cluster, ISSUER_NAME, NodeProcess, account, password};

const RIGHT: &str = "correct horse battery staple";
const WRONG: &str = "incorrect horse";

/// `sdk/typescript` of this checkout.
fn sdk_dir() -> PathBuf {
    repo_root().join("sdk").join("typescript")
}

/// Whether `program --version` runs.
fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The newest modification time below `path` (a file or a directory, recursively), skipping
/// `node_modules` and `dist`.
fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_file() {
        return meta.modified().ok();
    }
    let mut best = None;
    for entry in std::fs::read_dir(path).ok()?.flatten() {
        let name = entry.file_name();
        if name == "node_modules" || name == "dist" {
            continue;
        }
        best = best.max(newest(&entry.path()));
    }
    best
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Runs `npm <args>` in the SDK directory (at most 600 s), failing the test on an error.
fn npm(args: &[&str]) {
    let out = Command::new("timeout")
        .arg("600")
        .arg("npm")
        .args(args)
        .current_dir(sdk_dir())
        .output()
        .expect("run npm");
    assert!(
        out.status.success(),
        "npm {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `npm ci` when node_modules is older than the lock file, `npm run build` when dist is
/// older than any source, the protos or the vectors' loader.
fn ensure_built() {
    let dir = sdk_dir();
    let lock = modified(&dir.join("package-lock.json"));
    if modified(&dir.join("node_modules").join(".package-lock.json")) < lock {
        npm(&["ci", "--no-audit", "--no-fund"]);
    }
    let built = modified(&dir.join("dist").join("test-live").join("live.js"));
    let sources = [newest(&dir), newest(&repo_root().join("proto"))]
        .into_iter()
        .max()
        .flatten();
    if built.is_none() || built < sources {
        npm(&["run", "build"]);
    }
}

/// Whether node and npm are here; without them, skip (or fail under `BKV_REQUIRE_NODE`).
fn node_present() -> bool {
    if runs("node") && runs("npm") {
        return true;
    }
    assert!(
        std::env::var_os("BKV_REQUIRE_NODE").is_none(),
        "BKV_REQUIRE_NODE is set but node or npm is missing (apt-get install nodejs npm)"
    );
    eprintln!(
        "SKIPPED t93_typescript_sdk: node and npm are not installed (apt-get install nodejs \
         npm); set BKV_REQUIRE_NODE=1 to make this a failure"
    );
    false
}

/// What the TypeScript side needs to reach the cluster as `account`.
struct Env {
    vars: Vec<(String, String)>,
}

impl Env {
    fn new(cluster: &Cluster, ids: &[u64], account: &str, password: &str) -> Self {
        let endpoints = ids
            .iter()
            .map(|id| cluster.node(*id).map(NodeProcess::client_url))
            .collect::<anyhow::Result<Vec<_>>>()
            .expect("endpoints")
            .join(",");
        let pki = cluster.pki_dir();
        let vars = [
            ("BKV_ENDPOINTS", endpoints),
            ("BKV_CA", pki.join("ca.pem").display().to_string()),
            ("BKV_IDENTITY", hex::encode(cluster.identity_public())),
            (
                "BKV_ISSUER_KEY",
                pki.join("issuer.key").display().to_string(),
            ),
            ("BKV_ISSUER", ISSUER_NAME.to_string()),
            ("BKV_CLUSTER", cluster.options().cluster_name.clone()),
            ("BKV_ACCOUNT", account.to_string()),
            ("BKV_PASSWORD", password.to_string()),
        ];
        Self {
            vars: vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        }
    }

    /// The same with one more variable.
    fn with(mut self, key: &str, value: &str) -> Self {
        self.vars.push((key.to_string(), value.to_string()));
        self
    }
}

/// Runs a node script (at most `limit`, `stdin` as its input), killed if the test gives up
/// first; its stdout.
async fn node_script(
    script: &str,
    args: &[&str],
    env: &[(String, String)],
    stdin: &str,
    limit: Duration,
) -> anyhow::Result<String> {
    use tokio::io::AsyncWriteExt as _;
    let mut command = tokio::process::Command::new("node");
    // --no-deprecation: @grpc/grpc-js sets the TLS server name to the endpoint's IP
    // address, which node warns about (DEP0123) and ignores.
    command
        .arg("--no-deprecation")
        .arg(sdk_dir().join("dist").join(script))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn()?;
    let mut input = child
        .stdin
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdin"))?;
    input.write_all(stdin.as_bytes()).await?;
    drop(input);
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .map_err(|_| anyhow::anyhow!("node {script} {args:?} took longer than {limit:?}"))??;
    let stderr = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(
        out.status.success(),
        "node {script} {args:?} failed ({}): {stderr}",
        out.status
    );
    if !stderr.trim().is_empty() {
        eprintln!("node {script} {args:?} stderr: {stderr}");
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// One `live.js` command; its JSON answer.
async fn ts(env: &Env, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let out = node_script(
        "test-live/live.js",
        args,
        &env.vars,
        "",
        Duration::from_secs(120),
    )
    .await?;
    let line = out.lines().last().unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(line)
        .map_err(|e| anyhow::anyhow!("live.js {args:?} printed {out:?}: {e}"))?;
    let mut shown = value.clone();
    if shown.get("key").is_some() {
        shown["key"] = "(redacted)".into();
    }
    eprintln!("ts {args:?}: {shown}");
    Ok(value)
}

/// One `backup.js` command with K (hex) on stdin; its JSON answer.
async fn backup_js(
    args: &[&str],
    key_hex: &str,
    limit: Duration,
) -> anyhow::Result<serde_json::Value> {
    let out = node_script("test-live/backup.js", args, &[], key_hex, limit).await?;
    let line = out.lines().last().unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(line)
        .map_err(|e| anyhow::anyhow!("backup.js {args:?} printed {out:?}: {e}"))?;
    eprintln!("backup.js {:?}: {value}", args[0]);
    anyhow::ensure!(value["ok"] == true, "backup.js {args:?}: {value}");
    Ok(value)
}

fn field<'a>(v: &'a serde_json::Value, name: &str) -> &'a str {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("no string {name} in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn typescript_sdk_on_a_real_cluster() -> anyhow::Result<()> {
    if !node_present() {
        return Ok(());
    }
    ensure_built();

    // Phase 0: the SDK's unit tests (the contract's vectors), no cluster needed.
    let started = std::time::Instant::now();
    let unit = Command::new("timeout")
        .arg("300")
        .arg("npm")
        .arg("test")
        .current_dir(sdk_dir())
        .output()?;
    let unit_out = String::from_utf8_lossy(&unit.stdout);
    assert!(
        unit.status.success(),
        "npm test failed: {unit_out}{}",
        String::from_utf8_lossy(&unit.stderr)
    );
    let summary: Vec<&str> = unit_out
        .lines()
        .filter(|l| l.starts_with("# pass") || l.starts_with("# fail"))
        .collect();
    eprintln!("npm test: {summary:?} in {:?}", started.elapsed());

    let mut cluster = Cluster::start(3).await?;
    let ids = cluster.ids();
    let leader = cluster.leader(Duration::from_secs(10)).await?;

    // Phase 1: TypeScript registers, TypeScript and Rust recover the same K.
    let alice = Env::new(&cluster, &ids, "ts-alice", RIGHT);
    let reg = ts(&alice, &["register", "5"]).await?;
    assert_eq!(reg["ok"], true, "{reg}");
    let rec = ts(&alice, &["recover"]).await?;
    assert_eq!(rec["ok"], true, "{rec}");
    assert_eq!(field(&rec, "key"), field(&reg, "key"));
    assert_eq!(field(&rec, "version"), field(&reg, "version"));
    // Leader routing: the client moved to the leader the nodes named.
    let leader_url = cluster.node(leader)?.client_url();
    assert_eq!(
        Some(field(&rec, "endpoint")),
        leader_url.strip_prefix("https://"),
        "the TypeScript client did not follow the leader {leader}"
    );
    let rust = cluster.vault(&ids, "ts-alice").await?;
    let got = rust.recover(&account("ts-alice"), password(RIGHT)).await?;
    assert_eq!(hex::encode(got.key.expose()), field(&reg, "key"));
    assert_eq!(got.version.0.to_string(), field(&reg, "version"));
    assert_eq!(got.guess_limit, 5);

    // Phase 2: Rust registers (a key of its choice), TypeScript recovers it.
    let key = BackupKey::generate();
    let rust_bob = cluster.vault(&ids, "rust-bob").await?;
    let version = rust_bob
        .register_key(&account("rust-bob"), password(RIGHT), None, &key)
        .await?;
    let bob = Env::new(&cluster, &ids, "rust-bob", RIGHT);
    let rec = ts(&bob, &["recover"]).await?;
    assert_eq!(rec["ok"], true, "{rec}");
    assert_eq!(field(&rec, "key"), hex::encode(key.expose()));
    assert_eq!(field(&rec, "version"), version.0.to_string());

    // Phase 2b: the Argon2id parameters travel with the record, both ways: TypeScript
    // registers with the SDKs' default (19456 KiB, 2 passes, 1 lane) and Rust recovers;
    // Rust registers with 4096 KiB, 3 passes, 2 lanes and TypeScript recovers.
    let frank = Env::new(&cluster, &ids, "ts-frank", RIGHT).with("BKV_KSF", "19456,2,1");
    let reg_frank = ts(&frank, &["register"]).await?;
    assert_eq!(reg_frank["ok"], true, "{reg_frank}");
    let got = cluster
        .vault(&ids, "ts-frank")
        .await?
        .recover(&account("ts-frank"), password(RIGHT))
        .await?;
    assert_eq!(hex::encode(got.key.expose()), field(&reg_frank, "key"));
    let mut config = cluster.client_config(&ids, cluster.token_source("rust-gina"))?;
    config.ksf = KsfParams {
        m_cost_kib: 4096,
        t_cost: 3,
        p_cost: 2,
    };
    let gina_key = VaultClient::connect(config)
        .await?
        .register(&account("rust-gina"), password(RIGHT), None)
        .await?
        .key;
    let rec = ts(&Env::new(&cluster, &ids, "rust-gina", RIGHT), &["recover"]).await?;
    assert_eq!(rec["ok"], true, "{rec}");
    assert_eq!(field(&rec, "key"), hex::encode(gina_key.expose()));

    // Phase 3: a wrong password in TypeScript: the typed error with the guesses left, and
    // Rust sees the same count; the right password in TypeScript resets it.
    let wrong = Env::new(&cluster, &ids, "ts-alice", WRONG);
    let w1 = ts(&wrong, &["recover"]).await?;
    assert_eq!(w1["ok"], false);
    assert_eq!(w1["error"], "WrongPasswordError", "{w1}");
    assert_eq!(w1["guessesRemaining"], 4, "{w1}");
    let w2 = ts(&wrong, &["recover"]).await?;
    assert_eq!(w2["guessesRemaining"], 3, "{w2}");
    match rust.recover(&account("ts-alice"), password(WRONG)).await {
        Err(VaultError::WrongPassword { guesses_remaining }) => assert_eq!(guesses_remaining, 2),
        other => panic!("expected a wrong password, got {other:?}"),
    }
    let status = ts(&alice, &["status"]).await?;
    assert_eq!(status["state"], "active", "{status}");
    assert_eq!(status["guessesUsed"], 3, "{status}");
    assert_eq!(status["guessLimit"], 5, "{status}");
    let rec = ts(&alice, &["recover"]).await?;
    assert_eq!(field(&rec, "key"), field(&reg, "key"));
    let status = ts(&alice, &["status"]).await?;
    assert_eq!(status["guessesUsed"], 0, "{status}");

    // Phase 4: TypeScript deletes; both SDKs then see no record.
    let del = ts(&bob, &["delete"]).await?;
    assert_eq!(del["existed"], true, "{del}");
    let status = ts(&bob, &["status"]).await?;
    assert_eq!(status["state"], "absent", "{status}");
    let gone = ts(&bob, &["recover"]).await?;
    assert_eq!(gone["error"], "NoRecordError", "{gone}");
    assert!(matches!(
        rust_bob
            .recover(&account("rust-bob"), password(RIGHT))
            .await,
        Err(VaultError::NotFound)
    ));
    let del = ts(&bob, &["delete"]).await?;
    assert_eq!(del["existed"], false, "{del}");

    // Phase 5: the backup journey in TypeScript with 1 GiB. K is put behind the password
    // (one device), the file encrypted into a drive folder; K recovered with the password
    // (another device), the backup restored byte for byte. The encrypting and restoring
    // processes load only the SDK's backup modules; each one's peak resident memory must
    // stay under 100 MiB.
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().display().to_string();
    let carol = Env::new(&cluster, &ids, "ts-carol", RIGHT);
    let enabled = ts(&carol, &["enable-backup"]).await?;
    assert_eq!(enabled["ok"], true, "{enabled}");
    let gib = 1u64 << 30;
    let gib_text = gib.to_string();
    let limit = Duration::from_secs(900);
    let enc = backup_js(&["encrypt", &dir, &gib_text], field(&enabled, "key"), limit).await?;
    let chunks = gib / 65536;
    assert_eq!(enc["backupBytes"], 74 + gib + 16 * chunks, "{enc}");
    let restored_key = ts(&carol, &["restore-key"]).await?;
    assert_eq!(field(&restored_key, "key"), field(&enabled, "key"));
    assert_eq!(field(&restored_key, "version"), field(&enabled, "version"));
    let dec = backup_js(&["restore", &dir], field(&restored_key, "key"), limit).await?;
    assert_eq!(dec["restoredBytes"], gib, "{dec}");
    assert_eq!(
        field(&dec, "restoredHash"),
        field(&enc, "inputHash"),
        "restored bytes differ"
    );
    for (what, v) in [("encrypt", &enc), ("restore", &dec)] {
        let peak = v["peakRssKib"].as_u64().expect("peakRssKib");
        let baseline = v["baselineKib"].as_u64().expect("baselineKib");
        eprintln!(
            "1 GiB {what}: {} ms, peak RSS {:.1} MiB (node with the backup modules loaded: {:.1} MiB)",
            v["ms"],
            peak as f64 / 1024.0,
            baseline as f64 / 1024.0
        );
        assert!(
            peak < 100 * 1024,
            "{what}: peak resident memory {peak} KiB is not under 100 MiB"
        );
    }
    // The recovery-key half (1 MiB): restored with the key as typed; another key refused at
    // the header, nothing written.
    let code = backup_js(&["code", &dir], "", limit).await?;
    assert_eq!(code["codeRoundTrip"], true, "{code}");
    assert_eq!(code["wrongCode"], "WrongKey", "{code}");
    assert_eq!(code["neverWritten"], true, "{code}");
    assert_eq!(
        std::fs::read_dir(tmp.path())?.count(),
        0,
        "the backup left files behind"
    );
    // The vault holds carol's K: the Rust SDK recovers the same key and version.
    let rust_carol = cluster.vault(&ids, "ts-carol").await?;
    let got = rust_carol
        .recover(&account("ts-carol"), password(RIGHT))
        .await?;
    assert_eq!(got.version.0.to_string(), field(&enabled, "version"));
    assert_eq!(hex::encode(got.key.expose()), field(&enabled, "key"));

    // Phase 6: the example app, configured the way cluster/local/bkv.env configures it,
    // password on stdin.
    let pki = cluster.pki_dir();
    let endpoints = ids
        .iter()
        .map(|id| cluster.node(*id).map(NodeProcess::client_url))
        .collect::<anyhow::Result<Vec<_>>>()?
        .join(",");
    let example_env: Vec<(String, String)> = [
        ("BKV_ENDPOINTS", endpoints),
        ("BKV_CA_CERT", pki.join("ca.pem").display().to_string()),
        (
            "BKV_IDENTITY_PUB",
            pki.join("identity.pub.pem").display().to_string(),
        ),
        (
            "BKV_ISSUER_KEY",
            pki.join("issuer.key").display().to_string(),
        ),
        ("BKV_ISSUER", ISSUER_NAME.to_string()),
        ("BKV_CLUSTER", cluster.options().cluster_name.clone()),
        ("TMPDIR", dir.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let out = node_script(
        "examples/backup.js",
        &["ts-erin"],
        &example_env,
        &format!("{RIGHT}\n"),
        Duration::from_secs(300),
    )
    .await?;
    eprintln!("examples/backup.js:\n{out}");
    assert!(out.contains("wrong password: "), "{out}");
    assert!(
        out.contains("the password's K does not open it: WrongKey"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("done"), "{out}");
    assert!(!out.contains(RIGHT), "the example printed the password");
    assert_eq!(
        std::fs::read_dir(tmp.path())?.count(),
        0,
        "the example left files"
    );

    // Phase 7: failover. The leader is killed; with it first in the list, TypeScript still
    // recovers through the others (and a new leader), and registers.
    cluster.kill9(leader)?;
    let mut order = vec![leader];
    order.extend(ids.iter().copied().filter(|id| *id != leader));
    let alice_failover = Env::new(&cluster, &order, "ts-alice", RIGHT);
    let rec = ts(&alice_failover, &["recover"]).await?;
    assert_eq!(rec["ok"], true, "{rec}");
    assert_eq!(field(&rec, "key"), field(&reg, "key"));
    assert_ne!(
        Some(field(&rec, "endpoint")),
        leader_url.strip_prefix("https://"),
        "answered by the killed node?"
    );
    let dave = Env::new(&cluster, &order, "ts-dave", RIGHT);
    let reg_dave = ts(&dave, &["register"]).await?;
    assert_eq!(reg_dave["ok"], true, "{reg_dave}");
    let rust_dave = cluster.vault(&order[1..], "ts-dave").await?;
    let got = rust_dave
        .recover(&account("ts-dave"), password(RIGHT))
        .await?;
    assert_eq!(hex::encode(got.key.expose()), field(&reg_dave, "key"));

    Ok(())
}
