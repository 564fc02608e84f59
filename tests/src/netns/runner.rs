//! [`run`]: a test body run inside a lab of its own. The test process (outside) makes the
//! lab, runs its own test binary again inside the clients' namespace with the lab's name in
//! [`CHILD_ENV`], waits for it (bounded), and removes the lab whatever happened; the child
//! (inside) runs the body on a tokio runtime. Where this machine cannot make a lab (not root,
//! no `ip`, `nsenter` or `iptables`, no namespaces), the test prints why and returns without
//! running, unless [`REQUIRE_ENV`] is set (CI sets it), which makes that a failure.

use std::process::Command;
use std::time::Duration;

use super::guard::{LabGuard, sweep_stale};
use super::lab::{Lab, Member};
use crate::process::ChildGuard;

/// Set in the child: the lab's prefix and node capacity (`<prefix>/<capacity>`).
const CHILD_ENV: &str = "BKV_NETNS_LAB";
/// When set (to anything but `0`), a machine that cannot make a lab fails the test instead
/// of skipping it.
pub const REQUIRE_ENV: &str = "BKV_REQUIRE_KERNEL_FAULTS";

/// Why this machine cannot make a lab, if it cannot (before trying).
fn missing_tools() -> Option<String> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_string))
        })
        .unwrap_or_default();
    if uid != "0" {
        return Some(format!(
            "network namespaces need root (uid {uid}); run as root (CI does)"
        ));
    }
    for (tool, arg, package) in [
        ("ip", "-V", "iproute2"),
        ("tc", "-V", "iproute2"),
        ("nsenter", "-V", "util-linux"),
        ("iptables-restore", "-V", "iptables"),
        ("iptables-save", "-V", "iptables"),
    ] {
        let found = Command::new(tool)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("`{tool}` is missing (Debian package {package})"));
        }
    }
    None
}

fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v != "0" && !v.is_empty())
}

/// Runs `body` inside a fresh lab with namespaces for nodes `1..=capacity`: see the module
/// documentation. `test` must be the test function's name (the child is started with
/// `<test binary> <test> --exact`); `limit` bounds the whole child run.
pub fn run<F, Fut>(test: &str, capacity: u64, limit: Duration, body: F) -> anyhow::Result<()>
where
    F: FnOnce(Lab) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    if let Ok(value) = std::env::var(CHILD_ENV) {
        let (prefix, capacity) = value
            .rsplit_once('/')
            .and_then(|(p, c)| Some((p.to_string(), c.parse::<u64>().ok()?)))
            .ok_or_else(|| anyhow::anyhow!("{CHILD_ENV}={value:?} is not <prefix>/<capacity>"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()?;
        return runtime.block_on(body(Lab::new(prefix, capacity)));
    }
    let skip = |reason: String| -> anyhow::Result<()> {
        anyhow::ensure!(
            !required(),
            "{test}: kernel faults are required ({REQUIRE_ENV}) but {reason}"
        );
        println!("SKIPPED {test}: kernel-level faults cannot run here: {reason}");
        Ok(())
    };
    if let Some(reason) = missing_tools() {
        return skip(reason);
    }
    sweep_stale();
    let guard = match LabGuard::create(capacity) {
        Ok(g) => g,
        Err(e) => return skip(format!("no lab could be made: {e:#}")),
    };
    let lab = guard.lab().clone();
    println!(
        "{test}: lab {} (hub {}, clients at {}), running the test inside it",
        lab.prefix(),
        lab.hub(),
        lab.ip(Member::Clients)
    );
    let mut child = Lab::command_in(&lab.ns(Member::Clients), std::env::current_exe()?);
    child
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{}/{}", lab.prefix(), lab.capacity()));
    let mut child = ChildGuard::spawn(format!("{test} in {}", lab.prefix()), child)?;
    let status = child.wait_timeout(limit)?;
    // The child first (if it still runs), then the lab.
    drop(child);
    drop(guard);
    match status {
        Some(s) if s.success() => Ok(()),
        Some(s) => anyhow::bail!("{test} failed inside its lab ({s}); its output is above"),
        None => anyhow::bail!(
            "{test} did not finish within {} s inside its lab; killed",
            limit.as_secs()
        ),
    }
}
