//! `cluster/up` then `cluster/down --purge`, as an operator runs them: three real nodes,
//! init, two ceremonies, a round trip, status. Uses its own directory and ports so it never
//! touches a developer's running cluster.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use bkv_tests::cluster_up::{PurgeOnDrop, profile, repo_root};

fn run(script: &str, dir: &Path, profile: &str) -> Output {
    Command::new("timeout")
        .arg("600")
        .arg(repo_root().join(script))
        .env("BKV_LOCAL_DIR", dir)
        .env("BKV_PROFILE", profile)
        .env("BKV_BASE_PORT", "19100")
        .env("BKV_SKIP_BUILD", "1")
        .output()
        .expect("run the script")
}

#[test]
fn cluster_up_then_down_purge() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("local");
    let _down = PurgeOnDrop { dir: dir.clone() };

    let up = run("cluster/up", &dir, profile());
    let out = String::from_utf8_lossy(&up.stdout);
    let err = String::from_utf8_lossy(&up.stderr);
    assert!(up.status.success(), "cluster/up failed:\n{out}\n{err}");
    assert!(
        out.contains("recovered key equals the registered key"),
        "{out}"
    );
    assert!(out.matches("serving").count() >= 3, "{out}");
    for i in 1..=3 {
        assert!(dir.join(format!("node{i}.pid")).exists());
    }
    let env = std::fs::read_to_string(dir.join("bkv.env")).expect("bkv.env");
    for var in [
        "BKV_ENDPOINTS",
        "BKV_CA_CERT",
        "BKV_ADMIN_ENDPOINTS",
        "BKV_ADMIN_CERT",
        "BKV_ADMIN_KEY",
    ] {
        assert!(
            env.contains(&format!("export {var}=")),
            "{var} missing from bkv.env"
        );
    }

    // The SDK example runs against it (the env cluster/up wrote is what a developer sources).
    let example =
        bkv_tests::process::workspace_binary("examples/backup_and_restore").expect("example built");
    let mut cmd = Command::new(example);
    cmd.arg("example-user");
    for line in env.lines() {
        if let Some((k, v)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
            cmd.env(k, v);
        }
    }
    let ran = cmd.output().expect("run the example");
    let said = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success(),
        "example failed:\n{said}\n{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(said.contains("wrong passphrase: 4 guesses left"), "{said}");
    assert!(said.contains("chat history: hello, world"), "{said}");

    // A second run is safe: nothing is re-created, the round trip works again.
    let again = run("cluster/up", &dir, profile());
    let out2 = String::from_utf8_lossy(&again.stdout);
    assert!(
        again.status.success(),
        "second cluster/up failed:\n{out2}\n{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(out2.contains("already initialised"), "{out2}");
    assert!(
        out2.contains("recovered key equals the registered key"),
        "{out2}"
    );

    let down = run("cluster/down", &dir, profile());
    assert!(down.status.success());
    // The nodes are gone: their HTTP ports no longer answer.
    std::thread::sleep(Duration::from_millis(200));
    assert!(std::net::TcpStream::connect("127.0.0.1:19401").is_err());
    let purge = Command::new(repo_root().join("cluster/down"))
        .arg("--purge")
        .env("BKV_LOCAL_DIR", &dir)
        .output()
        .expect("cluster/down --purge");
    assert!(purge.status.success());
    assert!(!dir.exists(), "cluster/down --purge leaves nothing behind");
}
