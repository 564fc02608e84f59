//! The backup journey against a real cluster started by `cluster/up` (three `bkv-node`s with
//! SoftHSM tokens): the SDK example `backup` (password and recovery-key halves), and `bkv
//! backup create` / `bkv backup restore` with the password kept in the vault, a wrong
//! password counted. Afterwards no file of the cluster (data, tokens, logs) and no output
//! holds the password. Its own directory and ports (base 19800), never a developer's cluster.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use bkv_tests::cluster_up::{PurgeOnDrop, profile, repo_root};

/// The variables `cluster/up` wrote to bkv.env.
fn cluster_env(dir: &Path) -> Vec<(String, String)> {
    let env = std::fs::read_to_string(dir.join("bkv.env")).expect("bkv.env");
    env.lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .filter(|(_, v)| !v.contains('$'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs a binary with the cluster's environment, `stdin`, at most 300 s.
fn run(bin: &Path, args: &[&str], env: &[(String, String)], stdin: &str) -> Output {
    let mut child = Command::new("timeout")
        .arg("300")
        .arg(bin)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin");
    child.wait_with_output().expect("output")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every file below `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn backup_journey_on_a_real_cluster() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("local");
    let _down = PurgeOnDrop { dir: dir.clone() };

    // Phase 1: the cluster.
    let up = Command::new("timeout")
        .arg("600")
        .arg(repo_root().join("cluster/up"))
        .env("BKV_LOCAL_DIR", &dir)
        .env("BKV_PROFILE", profile())
        .env("BKV_BASE_PORT", "19800")
        .env("BKV_SKIP_BUILD", "1")
        .output()
        .expect("cluster/up");
    assert!(up.status.success(), "cluster/up failed:\n{}", text(&up));
    let env = cluster_env(&dir);

    // Phase 2: the SDK example, both halves.
    let example = bkv_tests::process::workspace_binary("examples/backup").expect("example built");
    let o = run(&example, &["backup-example@example.com"], &env, "");
    let said = text(&o);
    assert!(o.status.success(), "example failed:\n{said}");
    for line in [
        "password: wrong passphrase refused, 4 guesses left",
        "password: restored and checked",
        "recovery key: typo refused",
        "recovery key: another backup's key refused",
        "recovery key: restored and checked",
    ] {
        assert!(said.contains(line), "{line:?} missing:\n{said}");
    }

    // Phase 3: the CLI with the password in the vault.
    let bkv = bkv_tests::process::workspace_binary("bkv").expect("bkv built");
    let input = tmp.path().join("photos.tar");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&input, &data).expect("input");
    let drive = tmp.path().join("drive");
    let out = tmp.path().join("restored.tar");
    let (i, d, r) = (
        input.to_str().expect("utf-8"),
        drive.to_str().expect("utf-8"),
        out.to_str().expect("utf-8"),
    );
    let pw = "a passphrase for the t91 backup";
    let acct = ["--account", "carol", "--password-stdin"];
    let mut create = vec![
        "backup",
        "create",
        "--input",
        i,
        "--drive",
        d,
        "--guess-limit",
        "3",
    ];
    create.extend(acct);
    let o = run(&bkv, &create, &env, &format!("{pw}\n"));
    assert!(o.status.success(), "backup create:\n{}", text(&o));
    let mut restore = vec!["backup", "restore", "--drive", d, "--output", r];
    restore.extend(acct);
    let o = run(&bkv, &restore, &env, "not the passphrase\n");
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("2 guesses remaining"), "{}", text(&o));
    assert!(!out.exists());
    let o = run(&bkv, &restore, &env, &format!("{pw}\n"));
    assert!(o.status.success(), "backup restore:\n{}", text(&o));
    assert!(
        std::fs::read(&out).expect("restored") == data,
        "restored bytes differ"
    );

    // Phase 4: the password is in no file of the cluster and of the drive.
    let mut holders = Vec::new();
    for f in files(&dir).into_iter().chain(files(&drive)) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        if bytes.windows(pw.len()).any(|w| w == pw.as_bytes()) {
            holders.push(f);
        }
    }
    assert!(holders.is_empty(), "the password is in {holders:?}");
}
