//! The audit trail of a scripted session (register, wrong guess, recover, delete): every
//! node's `audit.jsonl` and `Audit` stream hold the same events in the same order, the
//! account appears only as a keyed hash, and neither the account name, nor the password, nor
//! the backup key (raw, hex or base64) is in any audit file, node log or data file.
//! `Audit` with `follow` streams a new event as it is applied.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use bkv_client::VaultError;
use bkv_client::proto::AuditRecord;
use bkv_tests::{Cluster, account, password, wait_for};
use rand::RngCore as _;

/// The fields that every replica must agree on (not `seq`: a node's own line number).
type Event = (
    u64,
    String,
    String,
    Option<u64>,
    Option<u64>,
    Option<u64>,
    u64,
);

fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The lines of a node's audit file, parsed.
fn audit_lines(data_dir: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(data_dir.join("audit.jsonl"))?;
    text.lines().map(|l| Ok(serde_json::from_str(l)?)).collect()
}

fn event(line: &serde_json::Value) -> Event {
    let u = |k: &str| line.get(k).and_then(serde_json::Value::as_u64);
    let s = |k: &str| {
        line.get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (
        u("log_index").unwrap_or(0),
        s("kind"),
        s("account"),
        u("version"),
        u("charge"),
        u("guesses_remaining"),
        u("at_unix_ms").unwrap_or(0),
    )
}

/// Every way a secret could be written down: raw, hex (both cases), base64 (standard and
/// URL-safe, with and without padding).
fn encodings(secret: &[u8]) -> Vec<(String, Vec<u8>)> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let mut out = vec![
        ("raw".to_string(), secret.to_vec()),
        ("hex".to_string(), hex::encode(secret).into_bytes()),
        ("HEX".to_string(), hex::encode_upper(secret).into_bytes()),
    ];
    for (name, engine) in [
        ("base64", &STANDARD),
        ("base64 no pad", &STANDARD_NO_PAD),
        ("base64url", &URL_SAFE),
        ("base64url no pad", &URL_SAFE_NO_PAD),
    ] {
        out.push((name.to_string(), engine.encode(secret).into_bytes()));
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every regular file under `dir` (bounded depth), with its contents.
fn files_under(dir: &Path, depth: u32, out: &mut Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
    anyhow::ensure!(depth < 12, "{} is nested too deep", dir.display());
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            files_under(&entry.path(), depth + 1, out)?;
        } else if kind.is_file() {
            out.push((
                entry.path().display().to_string(),
                std::fs::read(entry.path())?,
            ));
        }
    }
    Ok(())
}

/// Every record of node `id`'s `Audit` stream from `from_seq`, until the stream ends.
async fn audit_stream(cluster: &Cluster, id: u64) -> anyhow::Result<Vec<AuditRecord>> {
    let admin = cluster.admin_at(id).await?;
    let mut stream = admin.audit(0, false).await?;
    let mut out = Vec::new();
    // Bounded: a node's file holds a few dozen records here.
    for _ in 0..10_000 {
        match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
            Ok(Ok(Some(record))) => out.push(record),
            Ok(Ok(None)) => return Ok(out),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => anyhow::bail!("node {id}: the Audit stream neither ended nor answered"),
        }
    }
    anyhow::bail!("node {id}: the Audit stream did not end")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_node_audits_the_same_session_without_names_or_secrets() -> anyhow::Result<()> {
    let cluster = Cluster::start(3).await?;
    let ids = cluster.ids();
    let name = format!("audit-canary-{}", random_hex(8));
    let secret_password = format!("pw-canary-{}", random_hex(12));
    let marker = cluster.node_view(1).await?.applied_index;

    // Phase 1: the scripted session, through every node.
    let client = cluster.vault(&ids, &name).await?;
    let registered = client
        .register(&account(&name), password(&secret_password), None)
        .await?;
    let wrong = client
        .recover(&account(&name), password("not the password"))
        .await;
    assert!(
        matches!(wrong, Err(VaultError::WrongPassword { .. })),
        "{wrong:?}"
    );
    let recovered = client
        .recover(&account(&name), password(&secret_password))
        .await?;
    assert_eq!(recovered.key.expose(), registered.key.expose());
    assert!(client.delete().await?);
    cluster
        .wait_digests_equal(&ids, Duration::from_secs(10))
        .await?;

    // Phase 2: the same events, in the same order, in every node's file.
    let want_kinds = [
        "registered",
        "activated",
        "guess_charged",
        "guess_charged",
        "recovered",
        "deleted",
    ];
    let mut per_node = Vec::new();
    for id in &ids {
        let data_dir = cluster.node(*id)?.data_dir().to_path_buf();
        let session = wait_for(
            &format!("node {id}'s audit file to hold the session"),
            Duration::from_secs(10),
            Duration::from_millis(100),
            || async {
                let lines = audit_lines(&data_dir)?;
                let session: Vec<Event> =
                    lines.iter().map(event).filter(|e| e.0 > marker).collect();
                Ok((session.len() >= want_kinds.len()).then_some(session))
            },
        )
        .await?;
        let kinds: Vec<&str> = session.iter().map(|e| e.1.as_str()).collect();
        assert_eq!(kinds, want_kinds, "node {id}");
        let lines = audit_lines(&data_dir)?;
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(
                line.get("seq").and_then(serde_json::Value::as_u64),
                Some(i as u64 + 1),
                "node {id}: seq of line {i}"
            );
        }
        let indexes: Vec<u64> = lines.iter().map(|l| event(l).0).collect();
        assert!(
            indexes.windows(2).all(|w| w[0] <= w[1]),
            "node {id}: log indexes out of order: {indexes:?}"
        );
        per_node.push((*id, session, lines));
    }
    let (first_id, first, _) = &per_node[0];
    for (id, session, _) in &per_node[1..] {
        assert_eq!(session, first, "node {id} differs from node {first_id}");
    }
    let hash = &first[0].2;
    assert!(
        hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "account hash {hash:?}"
    );
    assert!(first.iter().all(|e| &e.2 == hash), "one hash per account");
    println!(
        "{} nodes hold the same {} session events (account hash {hash}): {:?}",
        per_node.len(),
        first.len(),
        first
            .iter()
            .map(|e| (e.0, e.1.as_str()))
            .collect::<Vec<_>>()
    );

    // Phase 3: each node's Audit stream gives its file, line for line.
    for (id, _, lines) in &per_node {
        let records = audit_stream(&cluster, *id).await?;
        let text = std::fs::read_to_string(cluster.node(*id)?.data_dir().join("audit.jsonl"))?;
        let file_lines: Vec<&str> = text.lines().collect();
        assert_eq!(records.len(), lines.len(), "node {id}: stream vs file");
        for (record, line) in records.iter().zip(&file_lines) {
            assert_eq!(record.json, *line, "node {id}: seq {}", record.seq);
        }
        let session: Vec<&AuditRecord> = records.iter().filter(|r| r.log_index > marker).collect();
        assert!(
            session.iter().all(|r| &r.account_hash == hash),
            "node {id}: stream account hashes"
        );
    }

    // Phase 4: no name, password or key anywhere it must not be. The account name may sit
    // in the Raft log and state (account ids are not secret), never in an audit file or a
    // node log; the password and the key are nowhere under the cluster's dir.
    let key = registered.key.expose().to_vec();
    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    for (how, bytes) in encodings(secret_password.as_bytes()) {
        secrets.push((format!("password ({how})"), bytes));
    }
    for (how, bytes) in encodings(&key) {
        secrets.push((format!("backup key ({how})"), bytes));
    }
    let mut names = secrets.clone();
    for (how, bytes) in encodings(name.as_bytes()) {
        names.push((format!("account name ({how})"), bytes));
    }
    let mut files = Vec::new();
    files_under(cluster.dir(), 0, &mut files)?;
    let mut scanned = (0usize, 0usize);
    for (path, bytes) in &files {
        let audit_or_log = path.ends_with("audit.jsonl") || path.ends_with(".log");
        let forbidden = if audit_or_log { &names } else { &secrets };
        for (what, needle) in forbidden {
            assert!(!contains(bytes, needle), "{what} found in {path}");
        }
        scanned.0 += 1;
        scanned.1 += bytes.len();
    }
    for (id, _, _) in &per_node {
        for record in audit_stream(&cluster, *id).await? {
            for (what, needle) in &names {
                assert!(
                    !contains(record.json.as_bytes(), needle),
                    "{what} in node {id}'s Audit stream"
                );
            }
        }
    }
    println!(
        "canary scan: {} files, {} bytes, {} forms of name, password and key: none found",
        scanned.0,
        scanned.1,
        names.len()
    );

    // Phase 5: `Audit` with follow streams the next event as it is applied.
    let last_seq = per_node
        .iter()
        .find(|(id, _, _)| *id == 3)
        .map(|(_, _, lines)| lines.len() as u64)
        .unwrap_or(0);
    let admin = cluster.admin_at(3).await?;
    let mut follow = admin.audit(last_seq + 1, true).await?;
    let other = format!("audit-follow-{}", random_hex(4));
    cluster
        .vault(&ids, &other)
        .await?
        .register(&account(&other), password(&secret_password), None)
        .await?;
    let next = tokio::time::timeout(Duration::from_secs(10), follow.next())
        .await
        .map_err(|_| anyhow::anyhow!("no followed event within 10 s"))??
        .ok_or_else(|| anyhow::anyhow!("the followed stream ended"))?;
    assert_eq!(next.kind, "registered", "{next:?}");
    assert_eq!(next.seq, last_seq + 1);
    assert!(next.account_hash.len() == 32 && &next.account_hash != hash);
    assert!(!next.json.contains(&other));
    let then = tokio::time::timeout(Duration::from_secs(10), follow.next())
        .await
        .map_err(|_| anyhow::anyhow!("no second followed event within 10 s"))??
        .ok_or_else(|| anyhow::anyhow!("the followed stream ended"))?;
    assert_eq!(then.kind, "activated", "{then:?}");
    println!(
        "followed: seq {} {}, seq {} {}",
        next.seq, next.kind, then.seq, then.kind
    );
    Ok(())
}
