//! Child processes that cannot outlive their test, and the binaries they run.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A child process killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    name: String,
}

impl ChildGuard {
    /// Starts `command`, named `name` in messages.
    pub fn spawn(name: impl Into<String>, mut command: Command) -> anyhow::Result<Self> {
        let name = name.into();
        let child = command
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {name}: {e}"))?;
        Ok(Self {
            child: Some(child),
            name,
        })
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Kills the process now (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends a signal (`TERM`, `STOP`, `CONT`, `KILL`, ...) with `kill(1)`, if the process
    /// is still ours to signal.
    pub fn signal(&mut self, signal: &str) -> anyhow::Result<()> {
        let Some(pid) = self.pid() else {
            anyhow::bail!("{} is not running", self.name);
        };
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .map_err(|e| anyhow::anyhow!("cannot run kill: {e}"))?;
        anyhow::ensure!(
            status.success(),
            "kill -{signal} {pid} ({}) failed",
            self.name
        );
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit; reaps it and returns its status, or
    /// `None` if it still runs.
    pub fn wait_timeout(&mut self, timeout: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let until = Instant::now() + timeout;
        loop {
            let Some(child) = self.child.as_mut() else {
                anyhow::bail!("{} was already reaped", self.name);
            };
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(Some(status));
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A binary of this workspace, built by `cargo build --workspace --bins` (which `make test`
/// runs first): found next to the test executable's `deps` directory.
pub fn workspace_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test-binary>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or_else(|| anyhow::anyhow!("unexpected test binary location {}", exe.display()))?;
    let path = profile_dir.join(name);
    anyhow::ensure!(
        path.exists(),
        "{} not found: run `cargo build --workspace --bins` (make test does) first",
        path.display()
    );
    Ok(path)
}

/// A free TCP port on 127.0.0.1, for a node to listen on.
///
/// Taken from 20000..32000, below Linux's ephemeral range (32768..), so that the ports other
/// tests get from the OS by binding port 0 never collide with the ones handed to nodes here;
/// each call in a process moves on from a start that depends on the process id.
pub fn free_port() -> anyhow::Result<u16> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let start = (std::process::id().wrapping_mul(7919)) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // LOW + (.. % SPAN) is below 32000 and fits u16.
        let port = u16::try_from(LOW + (start + n) % SPAN).unwrap_or(20_000);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no free port in 20000..32000")
}

/// The resident set size of process `pid` (`VmRSS` of `/proc/<pid>/status`), in bytes.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmRSS:").map(|kib| kib * 1024)
}

/// The peak resident set size of process `pid` since it started (`VmHWM`), in bytes.
pub fn peak_rss_bytes(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmHWM:").map(|kib| kib * 1024)
}

fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no {field} in /proc/{pid}/status"))
}

/// Samples a process's RSS every 50 ms in the background (for at most 10 minutes), to
/// report its peak.
#[derive(Debug)]
pub struct RssSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl RssSampler {
    /// Starts sampling `pid`.
    pub fn start(pid: u32) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut peak = 0;
                let until = Instant::now() + Duration::from_secs(600);
                while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                    peak = peak.max(rss_bytes(pid).unwrap_or(0));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                peak
            }
        });
        Self { stop, task }
    }

    /// Stops sampling; the largest sample.
    pub async fn peak(self) -> anyhow::Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        Ok(self.task.await?)
    }
}

/// Raises this process's limit on open files to at least `wanted` (the soft limit up to
/// the hard one; the hard one too when the process may, as root may); processes it starts
/// inherit it. Fails, saying so, when the machine does not allow it.
pub fn raise_open_files(wanted: u64) -> anyhow::Result<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    if soft >= wanted {
        return Ok(soft);
    }
    let hard = limit.maximum.unwrap_or(u64::MAX);
    let target = if hard >= wanted {
        hard.min(wanted.max(soft))
    } else {
        wanted
    };
    let maximum = if hard >= wanted {
        limit.maximum
    } else {
        Some(wanted)
    };
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum,
        },
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "this test needs {wanted} open files; the limit is {soft} (hard {hard}) and \
             cannot be raised ({e}): run it where `ulimit -Hn` is at least {wanted}"
        )
    })?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_kills_its_process_on_drop() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let mut guard = ChildGuard::spawn("sleep", cmd).unwrap();
        assert!(guard.is_running());
        let pid = guard.pid().unwrap();
        drop(guard);
        // The process is gone (reaped): /proc/<pid> no longer exists, or is another process.
        let status = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(!status.starts_with("sleep"), "sleep {pid} still running");
    }

    #[test]
    fn rss_of_this_process_is_read() {
        let rss = rss_bytes(std::process::id()).unwrap();
        assert!(rss > 1024 * 1024, "{rss}");
        assert!(rss_bytes(u32::MAX).is_err());
    }

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let ports: Vec<u16> = (0..20).map(|_| free_port().unwrap()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len());
        assert!(ports.iter().all(|p| (20_000..32_000).contains(p)));
    }
}
