//! What the tests that run `cluster/up` as an operator does share: the repository root its
//! scripts are in, the build profile of the binaries to point it at, and a guard that runs
//! `cluster/down --purge` on drop, so a failed test leaves no node running.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (where `cluster/up` is).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The profile this test binary was built with (it lives in target/<profile>/deps): the
/// binaries `cluster/up` should take.
pub fn profile() -> &'static str {
    let exe = std::env::current_exe().unwrap_or_default();
    if exe.components().any(|c| c.as_os_str() == "release") {
        "release"
    } else {
        "debug"
    }
}

/// Runs `cluster/down --purge` for `dir` (a `BKV_LOCAL_DIR`) when dropped.
#[derive(Debug)]
pub struct PurgeOnDrop {
    /// The cluster directory.
    pub dir: PathBuf,
}

impl Drop for PurgeOnDrop {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("cluster/down"))
            .arg("--purge")
            .env("BKV_LOCAL_DIR", &self.dir)
            .output();
    }
}
