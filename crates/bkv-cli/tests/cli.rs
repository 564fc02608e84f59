//! The `bkv` binary as users run it: dev PKI, token issue, the account commands and their
//! exit codes against fake vault nodes, the admin commands against fake admin services,
//! and the health check. Each test has its own temp dir and loopback ports; the child
//! gets a clean environment.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bkv_core::token::TrustedIssuers;
use bkv_devkit::pki;
use bkv_devkit::testing::{
    FakeAdmin, FakeCluster, FakeMembership, FakeVault, TEST_AUDIENCE, TestServer, dead_endpoint,
    serve,
};
use tokio::io::AsyncWriteExt as _;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// Runs `bkv` with `args`, `env` and `stdin`; at most 60 s.
async fn bkv(args: &[&str], env: &[(&str, String)], stdin: &str) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_bkv"));
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn bkv");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("write stdin");
    drop(input);
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("bkv finished within 60 s")
        .expect("bkv output")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// A dev PKI made by the CLI itself, with node 1's certificate.
async fn cli_pki(dir: &Path) {
    let d = dir.to_str().expect("utf-8 temp dir");
    let o = bkv(&["dev", "pki", "init", "--dir", d], &[], "").await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = bkv(
        &[
            "dev",
            "pki",
            "node",
            "--dir",
            d,
            "--id",
            "1",
            "--san",
            "127.0.0.1",
            "--san",
            "localhost",
        ],
        &[],
        "",
    )
    .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

fn node_tls(dir: &Path) -> ServerTlsConfig {
    let read = |n: &str| std::fs::read(dir.join(n)).expect("node certificate");
    ServerTlsConfig::new().identity(Identity::from_pem(read("node1.pem"), read("node1.key")))
}

#[tokio::test]
async fn dev_pki_is_idempotent_and_issued_tokens_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let d = dir.to_str().unwrap();
    let first = bkv(
        &["dev", "pki", "init", "--dir", d, "--cluster", "c1"],
        &[],
        "",
    )
    .await;
    assert_eq!(code(&first), 0);
    assert_eq!(
        stdout(&first).matches(": created").count(),
        8,
        "{}",
        stdout(&first)
    );
    let before: Vec<Vec<u8>> = ["ca.pem", "ca.key", "admin.pem", "admin.key", "issuer.key"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    let second = bkv(&["dev", "pki", "init", "--dir", d], &[], "").await;
    assert_eq!(code(&second), 0);
    assert_eq!(stdout(&second).matches(": exists, kept").count(), 8);
    let after: Vec<Vec<u8>> = ["ca.pem", "ca.key", "admin.pem", "admin.key", "issuer.key"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    assert_eq!(before, after);
    let mode = std::fs::metadata(dir.join("ca.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // A node certificate needs a SAN (usage error); a malformed one is an error (exit 1).
    let o = bkv(&["dev", "pki", "node", "--dir", d, "--id", "2"], &[], "").await;
    assert_eq!(code(&o), 2, "clap requires --san");
    let o = bkv(
        &[
            "dev", "pki", "node", "--dir", d, "--id", "2", "--san", "a b",
        ],
        &[],
        "",
    )
    .await;
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("neither an IP address nor a DNS name"));

    // Token issue: verifies with issuer.pub.pem for the audience it names.
    let o = bkv(
        &["token", "issue", "--account", "alice", "--ttl", "600"],
        &[
            (
                "BKV_ISSUER_KEY",
                dir.join("issuer.key").display().to_string(),
            ),
            ("BKV_CLUSTER", "prod-1".into()),
        ],
        "",
    )
    .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let jwt = stdout(&o).trim().to_string();
    let mut trusted = TrustedIssuers::new(3600, 60);
    trusted.insert(
        "bkv-dev",
        pki::read_issuer_public(&dir.join("issuer.pub.pem")).unwrap(),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let verified = trusted.verify(&jwt, "prod-1", now).unwrap();
    assert_eq!(verified.account.as_str(), "alice");
    assert!(verified.expires_at <= now + 601);
    assert!(trusted.verify(&jwt, "bkv-local", now).is_err());

    // No issuer key, bad account: usage errors.
    let o = bkv(&["token", "issue", "--account", "alice"], &[], "").await;
    assert_eq!(code(&o), 2);
    let o = bkv(&["token", "issue", "--account", "a b"], &[], "").await;
    assert_eq!(code(&o), 2);
}

#[tokio::test]
async fn account_commands_and_their_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    cli_pki(dir).await;
    let issuer = pki::read_issuer_public(&dir.join("issuer.pub.pem")).unwrap();
    let cluster = FakeCluster::new(issuer).await;
    let node: FakeVault = cluster.node("a");
    let svc = node.service();
    let server: TestServer = serve(node_tls(dir), move |s| s.add_service(svc)).await;
    // The fake cluster signed its share map with an identity key of its own: pin that one.
    let identity = dir.join("fake-identity.pub.pem");
    {
        use ed25519_dalek::pkcs8::EncodePublicKey as _;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&cluster.identity_key()).unwrap();
        let pem = key
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap();
        std::fs::write(&identity, pem).unwrap();
    }
    let env = vec![
        (
            "BKV_ENDPOINTS",
            format!("{},{}", dead_endpoint().await, server.url()),
        ),
        ("BKV_CA_CERT", dir.join("ca.pem").display().to_string()),
        (
            "BKV_ISSUER_KEY",
            dir.join("issuer.key").display().to_string(),
        ),
        ("BKV_CLUSTER", TEST_AUDIENCE.to_string()),
        ("BKV_IDENTITY_PUB", identity.display().to_string()),
    ];
    let k1 = dir.join("k1.hex");
    let k2 = dir.join("k2.hex");
    let k3 = dir.join("k3.hex");
    let acct = [
        "--account",
        "alice",
        "--insecure-light-ksf",
        "--password-stdin",
    ];

    // Phase 1: register, with failover past a dead endpoint.
    let mut args = vec![
        "register",
        "--guess-limit",
        "2",
        "--key-out",
        k1.to_str().unwrap(),
    ];
    args.extend(acct);
    let o = bkv(&args, &env, "hunter2\n").await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let version: u64 = stdout(&o).trim().parse().expect("version on stdout");
    assert!(version > 0);
    assert!(stderr(&o).contains("--insecure-light-ksf"));
    let key = std::fs::read_to_string(&k1).unwrap();
    assert_eq!(key.trim().len(), 64);
    assert!(!stdout(&o).contains(key.trim()) && !stderr(&o).contains(key.trim()));
    assert_eq!(
        std::fs::metadata(&k1).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Phase 2: recover with the right password (CRLF line ending is trimmed too).
    let mut args = vec!["recover", "--key-out", k2.to_str().unwrap()];
    args.extend(acct);
    let o = bkv(&args, &env, "hunter2\r\n").await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&k2).unwrap(), key);

    // An existing key file is never overwritten, and nothing is sent (no guess spent).
    let calls = node.calls().len();
    let o = bkv(&args, &env, "hunter2\n").await;
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("refusing to overwrite"));
    assert_eq!(node.calls().len(), calls);

    // Phase 3: wrong passwords: exit 3 with the count; the key file is not left behind.
    let mut args = vec!["recover", "--key-out", k3.to_str().unwrap()];
    args.extend(acct);
    let o = bkv(&args, &env, "wrong\n").await;
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("wrong password: 1 guesses remaining"),
        "{}",
        stderr(&o)
    );
    assert!(!k3.exists());
    let mut json_args = args.clone();
    json_args.push("--json");
    let o = bkv(&json_args, &env, "wrong\n").await;
    assert_eq!(code(&o), 3);
    let j: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(j["error"], "wrong_password");
    assert_eq!(j["guesses_remaining"], 0);

    // Phase 4: no guess left: destroyed, exit 4, even with the right password.
    let o = bkv(&args, &env, "hunter2\n").await;
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(stderr(&o).contains("destroyed"));
    let o = bkv(&["status", "--account", "alice", "--json"], &env, "").await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(j["state"], "destroyed");
    // A destroyed record keeps only its version (what the node's state machine keeps).
    assert!(j["version"].as_u64().is_some_and(|v| v > 0), "{j}");

    // Phase 5: delete; then nothing to recover (exit 5).
    let o = bkv(&["delete", "--account", "alice"], &env, "").await;
    assert_eq!((code(&o), stdout(&o).trim()), (0, "deleted alice"));
    let o = bkv(&["status", "--account", "alice"], &env, "").await;
    assert!(stdout(&o).contains("absent"), "{}", stdout(&o));
    let o = bkv(&args, &env, "hunter2\n").await;
    assert_eq!(code(&o), 5, "{}", stderr(&o));

    // `--key-out -` with --json: the key is in the JSON, and only there.
    let mut args = vec!["register", "--key-out", "-", "--json"];
    args.extend(acct);
    let o = bkv(&args, &env, "pw\n").await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let registered_key = j["key"].as_str().expect("key in JSON").to_string();
    assert_eq!(registered_key.len(), 64);
    assert_eq!(j["account"], "alice");
    // Without --key-out - the JSON carries no key.
    let k4 = dir.join("k4.hex");
    let mut args = vec!["recover", "--json", "--key-out", k4.to_str().unwrap()];
    args.extend(acct);
    let o = bkv(&args, &env, "pw\n").await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(j["key"], serde_json::Value::Null);
    assert_eq!(j["key_file"], k4.display().to_string());
    assert_eq!(std::fs::read_to_string(&k4).unwrap().trim(), registered_key);

    // --reshare: the same key comes back and is registered again, at a new version, under
    // which the same password recovers it.
    let k5 = dir.join("k5.hex");
    let mut args = vec![
        "recover",
        "--reshare",
        "--json",
        "--key-out",
        k5.to_str().unwrap(),
    ];
    args.extend(acct);
    let o = bkv(&args, &env, "pw\n").await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let (old, new) = (j["version"].as_u64(), j["reshared_version"].as_u64());
    assert!(new.is_some() && new != old, "{j}");
    assert_eq!(std::fs::read_to_string(&k5).unwrap().trim(), registered_key);
    let k6 = dir.join("k6.hex");
    let mut args = vec!["recover", "--json", "--key-out", k6.to_str().unwrap()];
    args.extend(acct);
    let o = bkv(&args, &env, "pw\n").await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(j["version"].as_u64(), new);
    assert_eq!(std::fs::read_to_string(&k6).unwrap().trim(), registered_key);

    // Usage errors: no password, a token for another account, no token at all.
    let o = bkv(&["status", "--account", "alice"], &env[..2], "").await;
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("no account token"));
    let mut args = vec!["register"];
    args.extend(acct);
    let o = bkv(&args, &env, "").await;
    assert_eq!(code(&o), 2);
    let mut with_bob = env.clone();
    let bob = bkv(&["token", "issue", "--account", "bob"], &env, "").await;
    with_bob.push(("BKV_TOKEN", stdout(&bob).trim().to_string()));
    let o = bkv(&["delete", "--account", "alice"], &with_bob, "").await;
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("\"bob\""));

    // A token the cluster does not trust: exit 7.
    let mut stranger = env.clone();
    stranger[3].1 = "another-cluster".into();
    let o = bkv(&["status", "--account", "alice"], &stranger, "").await;
    assert_eq!(code(&o), 7, "{}", stderr(&o));

    // Nothing answers: exit 6 within the deadline.
    let mut dead = env.clone();
    dead[0].1 = dead_endpoint().await;
    let started = std::time::Instant::now();
    let o = bkv(
        &["status", "--account", "alice", "--deadline", "1"],
        &dead,
        "",
    )
    .await;
    assert_eq!(code(&o), 6, "{}", stderr(&o));
    assert!(started.elapsed() < Duration::from_secs(10));
    server.stop().await;
}

#[tokio::test]
async fn admin_commands_against_fake_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    cli_pki(dir).await;
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    let mutual = || {
        node_tls(dir)
            .client_ca_root(Certificate::from_pem(ca.clone()))
            .client_auth_optional(false)
    };
    let membership = Arc::new(Mutex::new(FakeMembership {
        leader_id: 2,
        term: 4,
        ..FakeMembership::default()
    }));
    let mut nodes = Vec::new();
    let mut servers = Vec::new();
    for id in 1..=3u64 {
        let node = FakeAdmin::new(id, membership.clone());
        let svc = node.service();
        servers.push(serve(mutual(), move |s| s.add_service(svc)).await);
        nodes.push(node);
    }
    {
        let mut m = membership.lock().unwrap();
        for (i, s) in servers.iter().enumerate().take(2) {
            m.members
                .push((i as u64 + 1, s.host_port(), String::new(), true));
        }
    }
    let env = vec![
        ("BKV_ADMIN_ENDPOINTS", servers[0].host_port()),
        ("BKV_CA_CERT", dir.join("ca.pem").display().to_string()),
        (
            "BKV_ADMIN_CERT",
            dir.join("admin.pem").display().to_string(),
        ),
        ("BKV_ADMIN_KEY", dir.join("admin.key").display().to_string()),
        (
            "BKV_IDENTITY_KEY",
            dir.join("identity.key").display().to_string(),
        ),
    ];

    // status: a table, and JSON.
    let o = bkv(&["admin", "status"], &env, "").await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let table = stdout(&o);
    assert!(table.starts_with("cluster bkv-test (1111"), "{table}");
    assert!(table.contains("NODE  ROLE   LEADER  TERM"), "{table}");
    assert!(
        table.contains(
            "\n1     voter  2       4     42    42      41       abcdef  yes      -    0       0        0          0123456789ab"
        ),
        "{table}"
    );
    assert!(table.contains("node 2 did not answer"), "{table}");
    let o = bkv(&["admin", "status", "--json"], &env, "").await;
    let j: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(j["leader_id"], 2);
    assert_eq!(j["members"][0]["status"]["key_check_value"], "abcdef");

    // node-info of the new node 3.
    let addr3 = servers[2].host_port();
    let o = bkv(
        &["admin", "node-info", "--endpoint", &addr3, "--json"],
        &env,
        "",
    )
    .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(j["enrollment_fingerprint"], nodes[2].fingerprint());

    // add-node: a wrong fingerprint stops before AddNode; no confirmation and no TTY is a
    // usage error; the right one goes to the leader (node 2) and shows progress.
    let base = [
        "admin",
        "add-node",
        "--node-id",
        "3",
        "--admin-addr",
        &addr3,
    ];
    let mut wrong = base.to_vec();
    wrong.extend(["--fingerprint", "00ff"]);
    let o = bkv(&wrong, &env, "").await;
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("fingerprint mismatch"));
    let o = bkv(&base, &env, "yes\n").await;
    assert_eq!(code(&o), 2, "stdin is not a terminal: {}", stderr(&o));
    let mut other_id = base.to_vec();
    other_id[3] = "4";
    other_id.push("--yes");
    let o = bkv(&other_id, &env, "").await;
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("is node 3, not node 4"));
    assert!(nodes.iter().all(|n| !n.calls().contains(&"AddNode".into())));
    let fp = nodes[2].fingerprint();
    let grouped: String = fp
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    let mut right = base.to_vec();
    right.extend(["--fingerprint", &grouped]);
    let o = bkv(&right, &env, "").await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    for line in [
        "[enrolled]",
        "[key provisioned]",
        "[catching up] matched 20 of 42",
        "[catching up] matched 42 of 42",
        "[done]",
        "node 3 added as a voter",
    ] {
        assert!(out.contains(line), "{line} missing in {out}");
    }
    assert!(nodes[1].calls().contains(&"AddNode".into()));
    assert!(!nodes[0].calls().contains(&"AddNode".into()));

    // transfer-leader, remove-node (through the leader), snapshot, refresh-shares, audit.
    let o = bkv(&["admin", "transfer-leader", "--to", "1"], &env, "").await;
    assert_eq!((code(&o), stdout(&o).trim()), (0, "leader is now node 1"));
    let o = bkv(&["admin", "remove-node", "--node-id", "3"], &env, "").await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(nodes[0].calls().contains(&"RemoveNode".into()));
    // Then the removed node itself is asked to erase its shares.
    assert!(nodes[2].calls().contains(&"EraseShares".into()));
    assert!(
        stdout(&o).contains("node 3 erased its shares: 3 key objects destroyed"),
        "{}",
        stdout(&o)
    );
    // By hand: a node that is not the one named refuses, and the command fails saying why.
    let o = bkv(
        &[
            "admin",
            "erase-shares",
            "--node-id",
            "2",
            "--node-admin",
            &servers[2].host_port(),
        ],
        &env,
        "",
    )
    .await;
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("node_id"), "{}", stderr(&o));
    let o = bkv(&["admin", "snapshot"], &env, "").await;
    assert_eq!(stdout(&o).trim(), "snapshot at log index 41 (4096 bytes)");
    // refresh-shares: progress, a summary, and exit 1 because a record was skipped.
    let o = bkv(&["admin", "refresh-shares"], &env, "").await;
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "refreshed 64 of 65 records seen in 0.6 s; skipped holder_unreachable=1\n\
         done: refreshed 100 of 101 records seen in 1.0 s; skipped holder_unreachable=1\n"
    );
    assert!(stderr(&o).contains("run it again"), "{}", stderr(&o));
    let o = bkv(&["admin", "audit", "--from-seq", "2"], &env, "").await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["seq"], 2);

    // Without the admin key: a clear error, not a panic.
    let mut no_key = env.clone();
    no_key[3].1 = dir.join("missing.key").display().to_string();
    let o = bkv(&["admin", "status"], &no_key, "").await;
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("admin key"));
    for s in servers {
        s.stop().await;
    }
}

#[tokio::test]
async fn health_exits_zero_only_when_serving() {
    use tonic_health::ServingStatus;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    cli_pki(dir).await;
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("bkv.v1.Vault", ServingStatus::Serving)
        .await;
    let server = serve(node_tls(dir), move |s| s.add_service(service)).await;
    let env = vec![
        ("BKV_ENDPOINTS", server.url()),
        ("BKV_CA_CERT", dir.join("ca.pem").display().to_string()),
    ];
    let o = bkv(&["admin", "health"], &env, "").await;
    assert_eq!(
        (code(&o), stdout(&o).trim()),
        (0, "SERVING"),
        "{}",
        stderr(&o)
    );
    reporter
        .set_service_status("bkv.v1.Vault", ServingStatus::NotServing)
        .await;
    let o = bkv(&["admin", "health"], &env, "").await;
    assert_eq!((code(&o), stdout(&o).trim()), (1, "NOT_SERVING"));
    let o = bkv(
        &["admin", "health", "--service", "no.such.Service"],
        &env,
        "",
    )
    .await;
    assert_eq!(code(&o), 1);
    let dead = dead_endpoint().await;
    let o = bkv(&["admin", "health", "--endpoint", &dead], &env, "").await;
    assert_eq!(code(&o), 1);
    server.stop().await;
}

/// The files in a drive folder, sorted.
fn drive_files(drive: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(drive)
        .expect("drive dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn backup_with_a_recovery_key_round_trips_and_refuses_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let input = dir.join("chats.db");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&input, &data).unwrap();
    let drive = dir.join("drive");
    let (d, i) = (drive.to_str().unwrap(), input.to_str().unwrap());

    // Phase 1: create; the recovery key is printed on stdout, nowhere else.
    let o = bkv(
        &[
            "backup",
            "create",
            "--input",
            i,
            "--drive",
            d,
            "--recovery-key",
        ],
        &[],
        "",
    )
    .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let key = stdout(&o).trim().to_string();
    assert_eq!(key.len(), 64 + 15, "{key}");
    assert_eq!(key.split(' ').count(), 16);
    assert!(!stderr(&o).contains(&key[..9]));
    assert_eq!(drive_files(&drive), ["backup.bkvb", "backup.json"]);
    let manifest = std::fs::read_to_string(drive.join("backup.json")).unwrap();
    assert!(manifest.contains("\"recovery-key\""), "{manifest}");
    assert!(!manifest.contains(&key[..9]));
    let backup = std::fs::read(drive.join("backup.bkvb")).unwrap();
    assert_eq!(&backup[..4], b"BKVB");
    // Five 64 KiB chunks (the last short), each with its tag, after the 74-byte header.
    assert_eq!(backup.len(), 74 + data.len() + 5 * 16);

    // A create that fails (no password on stdin, or no input) leaves the drive as it was.
    let before = std::fs::read(drive.join("backup.bkvb")).unwrap();
    let o = bkv(
        &[
            "backup",
            "create",
            "--input",
            i,
            "--drive",
            d,
            "--password-stdin",
            "--account",
            "alice",
        ],
        &[],
        "",
    )
    .await;
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let missing = dir.join("missing").display().to_string();
    let o = bkv(
        &[
            "backup",
            "create",
            "--input",
            &missing,
            "--drive",
            d,
            "--recovery-key",
        ],
        &[],
        "",
    )
    .await;
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot open"), "{}", stderr(&o));
    assert_eq!(drive_files(&drive), ["backup.bkvb", "backup.json"]);
    assert_eq!(std::fs::read(drive.join("backup.bkvb")).unwrap(), before);

    // Phase 2: restore on a "new device" with the key as typed, dashes and all.
    let out = dir.join("restored.db");
    let o_arg = out.to_str().unwrap();
    let restore = ["backup", "restore", "--drive", d, "--output", o_arg];
    let mut args = restore.to_vec();
    args.push("--recovery-key-stdin");
    let typed = format!("{}\n", key.replace(' ', "-"));
    let o = bkv(&args, &[], &typed).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), data);
    assert!(!stderr(&o).contains(&key[..9]));
    // An existing output is never overwritten.
    let o = bkv(&args, &[], &typed).await;
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("refusing to overwrite"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_file(&out).unwrap();

    // Phase 3: a mistyped key is caught by its check digits (exit 2) and shows no digit.
    let mut digits: Vec<u8> = key.replace(' ', "").into_bytes();
    digits[10] = if digits[10] == b'9' {
        b'0'
    } else {
        digits[10] + 1
    };
    let mistyped = String::from_utf8(digits).unwrap();
    let o = bkv(&args, &[], &mistyped).await;
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("check digits"), "{}", stderr(&o));
    assert!(!stderr(&o).contains(&mistyped[..9]));
    let o = bkv(&args, &[], "1234").await;
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("64 digits; this one has 4"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());

    // Another backup's key passes the check digits and is refused by the header.
    let other = dir.join("other");
    let o = bkv(
        &[
            "backup",
            "create",
            "--input",
            i,
            "--drive",
            other.to_str().unwrap(),
            "--recovery-key",
        ],
        &[],
        "",
    )
    .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let other_key = stdout(&o);
    let o = bkv(&args, &[], &other_key).await;
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("not made with this key"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists() && !dir.join("restored.db.partial").exists());

    // A password is refused before any vault is asked: the manifest says recovery key.
    let mut pw_args = restore.to_vec();
    pw_args.extend(["--password-stdin", "--account", "alice"]);
    let o = bkv(&pw_args, &[], "hunter2\n").await;
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--recovery-key-stdin"),
        "{}",
        stderr(&o)
    );

    // Phase 4: damage in the drive: an altered chunk, a cut, a swapped chunk. Nothing is
    // left at the output path.
    let altered = {
        let mut b = backup.clone();
        b[74 + 70_000] ^= 1; // chunk 1
        b
    };
    let cut = backup[..74 + 2 * (65_536 + 16)].to_vec();
    let swapped = {
        let c = 65_536 + 16;
        let mut b = backup[..74].to_vec();
        b.extend_from_slice(&backup[74 + c..74 + 2 * c]);
        b.extend_from_slice(&backup[74..74 + c]);
        b.extend_from_slice(&backup[74 + 2 * c..]);
        b
    };
    for (damaged, expect) in [
        (altered, "chunk 1 of the backup does not authenticate"),
        (cut, "truncated: it ends after 2 chunks"),
        (swapped, "chunk 0 of the backup does not authenticate"),
    ] {
        std::fs::write(drive.join("backup.bkvb"), &damaged).unwrap();
        let o = bkv(&args, &[], &typed).await;
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        assert!(stderr(&o).contains(expect), "{expect}: {}", stderr(&o));
        assert!(stderr(&o).contains("nothing was written"), "{}", stderr(&o));
        assert!(!out.exists() && !dir.join("restored.db.partial").exists());
    }
}

#[tokio::test]
async fn backup_with_a_password_registers_and_recovers_through_the_vault() {
    use ed25519_dalek::pkcs8::EncodePublicKey as _;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    cli_pki(dir).await;
    let issuer = pki::read_issuer_public(&dir.join("issuer.pub.pem")).unwrap();
    let cluster = FakeCluster::new(issuer).await;
    let identity = ed25519_dalek::VerifyingKey::from_bytes(&cluster.identity_key())
        .unwrap()
        .to_public_key_pem(Default::default())
        .unwrap();
    std::fs::write(dir.join("identity.pub.pem"), identity).unwrap();
    let node: FakeVault = cluster.node("a");
    let svc = node.service();
    let server: TestServer = serve(node_tls(dir), move |s| s.add_service(svc)).await;
    let env = vec![
        ("BKV_ENDPOINTS", server.url()),
        ("BKV_CA_CERT", dir.join("ca.pem").display().to_string()),
        (
            "BKV_IDENTITY_PUB",
            dir.join("identity.pub.pem").display().to_string(),
        ),
        (
            "BKV_ISSUER_KEY",
            dir.join("issuer.key").display().to_string(),
        ),
        ("BKV_CLUSTER", TEST_AUDIENCE.to_string()),
    ];
    let input = dir.join("photos.tar");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&input, &data).unwrap();
    let drive = dir.join("drive");
    let (d, i) = (drive.to_str().unwrap(), input.to_str().unwrap());
    let pw = "correct horse battery staple";
    let acct = [
        "--account",
        "alice",
        "--insecure-light-ksf",
        "--password-stdin",
    ];

    // Phase 1: create registers a new key for alice under the password.
    let mut args = vec![
        "backup",
        "create",
        "--input",
        i,
        "--drive",
        d,
        "--guess-limit",
        "3",
        "--json",
    ];
    args.extend(acct);
    let o = bkv(&args, &env, &format!("{pw}\n")).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(j["protection"], "password");
    assert_eq!(j["bytes"], 100_000);
    let version = j["version"].as_u64().expect("version");
    assert_eq!(drive_files(&drive), ["backup.bkvb", "backup.json"]);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(drive.join("backup.json")).unwrap()).unwrap();
    assert_eq!(manifest["account"], "alice");
    assert_eq!(manifest["version"], version);

    // A create whose registration fails (no vault answers) leaves the drive, and the key
    // the vault holds, as they were: the backup above stays restorable (phase 3).
    let before = std::fs::read(drive.join("backup.bkvb")).unwrap();
    let mut dead = env.clone();
    dead[0].1 = dead_endpoint().await;
    let mut args = vec![
        "backup",
        "create",
        "--input",
        i,
        "--drive",
        d,
        "--deadline",
        "1",
    ];
    args.extend(acct);
    let o = bkv(&args, &dead, &format!("{pw}\n")).await;
    assert_ne!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(drive_files(&drive), ["backup.bkvb", "backup.json"]);
    assert_eq!(std::fs::read(drive.join("backup.bkvb")).unwrap(), before);

    // Phase 2: a wrong password spends a guess, says how many are left, writes nothing.
    let out = dir.join("restored.tar");
    let o_arg = out.to_str().unwrap();
    let mut restore = vec!["backup", "restore", "--drive", d, "--output", o_arg];
    restore.extend(acct);
    let o = bkv(&restore, &env, "Tr0ub4dor&3\n").await;
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("2 guesses remaining"), "{}", stderr(&o));
    assert_eq!(cluster.guesses_used("alice"), Some(1));
    assert!(!out.exists() && !dir.join("restored.tar.partial").exists());

    // A recovery key is refused before anything is read: the manifest says password.
    let o = bkv(
        &[
            "backup",
            "restore",
            "--drive",
            d,
            "--output",
            o_arg,
            "--recovery-key-stdin",
        ],
        &env,
        "",
    )
    .await;
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--password-stdin --account alice"),
        "{}",
        stderr(&o)
    );

    // Phase 3: the right password restores the backup (and resets the count).
    let o = bkv(&restore, &env, &format!("{pw}\n")).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), data);
    assert_eq!(cluster.guesses_used("alice"), Some(0));
    std::fs::remove_file(&out).unwrap();

    // Phase 4: once the account's key is replaced, the old backup says so.
    let mut reg = vec!["register", "--key-out", "-"];
    reg.extend(acct);
    let o = bkv(&reg, &env, "another password\n").await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = bkv(&restore, &env, "another password\n").await;
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("was made with version"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());

    // No secret in any output or in the drive.
    for file in drive_files(&drive) {
        let bytes = std::fs::read(drive.join(file)).unwrap();
        assert!(!bytes.windows(pw.len()).any(|w| w == pw.as_bytes()));
    }
    server.stop().await;
}
