//! `cluster/mk-token`: run twice on a temp dir with the built `bkv-token`, then open the
//! token with the PIN files. Its own test binary, because SoftHSM takes its configuration
//! once per process and this one is the script's.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use bkv_core::SealPurpose;
use bkv_hsm::testing;
use bkv_hsm::{HsmConfig, Partition, Pin};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cluster/mk-token")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mk_token(dir: &Path, label: &str) -> String {
    run(Command::new(script())
        .arg(dir)
        .arg(label)
        .env("BKV_TOKEN_BIN", env!("CARGO_BIN_EXE_bkv-token"))
        .env("BKV_PKCS11_MODULE", testing::module())
        .env_remove("SOFTHSM2_CONF"))
}

#[tokio::test]
async fn mk_token_twice_then_open_with_pin_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("node1");
    let label = "bkv-node1";

    // Phase 1: the first run makes everything, the second changes nothing.
    let first = mk_token(&dir, label);
    assert!(first.contains("initialised"), "{first}");
    let pins: Vec<String> = ["user.pin", "so.pin"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).expect("pin file"))
        .collect();
    let second = mk_token(&dir, label);
    assert!(second.contains("exists"), "{second}");
    for (f, pin) in ["user.pin", "so.pin"].iter().zip(&pins) {
        let path = dir.join(f);
        assert_eq!(
            &std::fs::read_to_string(&path).expect("pin"),
            pin,
            "{f} rewritten"
        );
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{f} mode");
        assert_eq!(pin.len(), 32, "{f}: 16 random bytes in hex");
    }
    assert_ne!(pins[0], pins[1], "user and SO PINs differ");
    let conf = std::fs::read_to_string(dir.join("softhsm2.conf")).expect("conf");
    assert!(conf.contains(&format!(
        "directories.tokendir = {}",
        dir.join("tokens").display()
    )));
    assert!(conf.contains("objectstore.backend = file"));
    assert!(conf.contains("log.level = ERROR"));

    // Phase 2: this process opens the token with the PIN files.
    testing::use_softhsm_conf(&dir.join("softhsm2.conf"));
    let mut cfg = HsmConfig::new(
        label,
        Pin::from_file(dir.join("user.pin")).expect("user pin"),
    );
    cfg.module = testing::module();
    cfg.so_pin = Some(Pin::from_file(dir.join("so.pin")).expect("so pin"));
    let p = Partition::open(cfg).await.expect("open");
    let info = p.generate_cluster_key().await.expect("generate");
    let blob = p
        .seal(SealPurpose::Test, b"aad", b"hello")
        .await
        .expect("seal");
    let opened = p
        .unseal(SealPurpose::Test, b"aad", &blob)
        .await
        .expect("unseal");
    assert_eq!(opened.as_slice(), b"hello");
    let enrollment = p.enrollment_key().await.expect("enrollment key");
    drop(p);

    // Phase 3: `bkv-token show` reports the same key and fingerprint from another process.
    let shown = run(Command::new(env!("CARGO_BIN_EXE_bkv-token"))
        .args(["show", "--label", label, "--user-pin-file"])
        .arg(dir.join("user.pin"))
        .env("SOFTHSM2_CONF", dir.join("softhsm2.conf"))
        .env("BKV_PKCS11_MODULE", testing::module()));
    assert!(shown.contains(&format!("token {label:?}")), "{shown}");
    assert!(
        shown.contains(&hex::encode(info.key_check_value)),
        "{shown}"
    );
    assert!(shown.contains(&hex::encode(info.key_id)), "{shown}");
    assert!(shown.contains(&enrollment.fingerprint), "{shown}");
    for pin in &pins {
        assert!(!shown.contains(pin.as_str()), "PIN printed");
    }
}

#[test]
fn script_passes_no_pin_on_a_command_line() {
    let text = std::fs::read_to_string(script()).expect("script");
    assert!(
        !text.contains("softhsm2-util"),
        "softhsm2-util takes PINs as arguments"
    );
    // Every flag that mentions a PIN names a file.
    for word in text.split(|c: char| c.is_whitespace() || c == '"' || c == '\\') {
        if word.starts_with("--") && word.to_ascii_lowercase().contains("pin") {
            assert!(word.ends_with("-pin-file"), "PIN flag {word}");
        }
    }
    // PIN files are produced by redirection, never passed as an argument value.
    assert!(text.contains("/dev/urandom"));
}
