//! The report of a `bkv bench` run: what was run against what, and the figures, as text
//! for people and as JSON for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::recorder::Summary;

/// What the client side of the benchmark used for Argon2id, in words.
pub const KSF_NOTE: &str = "bench accounts use INSECURE light Argon2id on the client side \
(m=8 KiB, t=1, p=1), so that the figures measure the vault rather than the load \
generator's password hashing; the vault never runs Argon2";

/// How the account pool was set up.
#[derive(Debug, Clone, Serialize)]
pub struct PoolReport {
    /// Accounts in the pool (`PREFIX-0` ...).
    pub accounts: u64,
    /// Their name prefix.
    pub prefix: String,
    /// Whether this run registered them (else an earlier run did).
    pub registered_now: bool,
    /// Time taken to register them, seconds (0 if not registered now).
    pub register_seconds: f64,
    /// Registrations per second while doing so.
    pub register_per_second: f64,
    /// Registrations that failed.
    pub register_errors: u64,
}

/// CPU time the load generator itself used in the measured window.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ClientCpu {
    /// User + system seconds, all threads.
    pub seconds: f64,
    /// Average cores busy (seconds / window).
    pub cores: f64,
    /// Per finished operation, ms.
    pub per_op_ms: f64,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The endpoints.
    pub endpoints: Vec<String>,
    /// The clients' routing (`stay` or `leader`, see `bkv_client::Routing`).
    pub routing: &'static str,
    /// How many connection sets had each endpoint as their current one at the end.
    pub ended_on: BTreeMap<String, usize>,
    /// Concurrent clients.
    pub clients: usize,
    /// Connections per endpoint, shared by the clients.
    pub connections: usize,
    /// Tokio worker threads of the load generator.
    pub threads: usize,
    /// The operation mix.
    pub mix: String,
    /// Offered load in operations per second (open loop), or `None` (closed loop).
    pub offered_rate: Option<f64>,
    /// About the client's Argon2id.
    pub ksf: &'static str,
    /// The account pool.
    pub pool: PoolReport,
    /// Warm-up before the window, seconds.
    pub warmup_seconds: f64,
    /// The measured window, seconds.
    pub window_seconds: f64,
    /// The figures.
    pub summary: Summary,
    /// The load generator's own CPU use, if it could be read.
    pub client_cpu: Option<ClientCpu>,
    /// `uptime`'s load averages when the run ended (1, 5, 15 min), if readable.
    pub load_average: Option<[f64; 3]>,
}

impl Report {
    /// The report as text.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let s = &self.summary;
        let _ = writeln!(
            out,
            "bkv bench: {} clients over {} connection(s) per endpoint, {} tokio threads; \
             mix {}; {} endpoint(s), routing {}",
            self.clients,
            self.connections,
            self.threads,
            self.mix,
            self.endpoints.len(),
            self.routing
        );
        let p = &self.pool;
        if p.registered_now {
            let _ = writeln!(
                out,
                "pool: {} accounts {}-N registered in {:.1} s ({:.0}/s, {} errors)",
                p.accounts, p.prefix, p.register_seconds, p.register_per_second, p.register_errors
            );
        } else if p.accounts > 0 {
            let _ = writeln!(
                out,
                "pool: {} accounts {}-N registered by an earlier run",
                p.accounts, p.prefix
            );
        }
        match self.offered_rate {
            Some(r) => {
                let _ = writeln!(out, "load: open loop, {r:.0} operations/s offered");
            }
            None => out.push_str(
                "load: closed loop (each client starts its next operation when the last ends)\n",
            ),
        }
        let _ = writeln!(out, "note: {}", self.ksf);
        let _ = writeln!(
            out,
            "window: {:.1} s after {:.1} s of warm-up\n",
            self.window_seconds, self.warmup_seconds
        );
        let _ = writeln!(
            out,
            "{:<12} {:>9} {:>7} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "operation", "ok", "errors", "ok/s", "mean ms", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        for o in &s.operations {
            let l = &o.latency_ms;
            let _ = writeln!(
                out,
                "{:<12} {:>9} {:>7} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                o.op, o.ok, o.errors, o.per_second, l.mean, l.p50, l.p90, l.p99, l.max
            );
        }
        if s.operations.len() > 1 {
            let _ = writeln!(
                out,
                "{:<12} {:>9} {:>7} {:>9.1}",
                "all", s.ok, s.errors, s.per_second
            );
        }
        out.push('\n');
        if !s.error_kinds.is_empty() {
            let kinds: Vec<String> = s
                .error_kinds
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let _ = writeln!(out, "errors: {}", kinds.join(", "));
        }
        let _ = writeln!(
            out,
            "longest stretch without a success: {:.1} ms (from +{:.2} s)",
            s.longest_gap.ms, s.longest_gap.from_s
        );
        let ended: Vec<String> = self
            .ended_on
            .iter()
            .map(|(url, n)| format!("{url} {n}"))
            .collect();
        let _ = writeln!(
            out,
            "connection sets at the end, by current endpoint: {}",
            ended.join(", ")
        );
        match &self.client_cpu {
            Some(c) => {
                let _ = writeln!(
                    out,
                    "load generator CPU: {:.1} s in the window ({:.2} cores), {:.3} ms per operation",
                    c.seconds, c.cores, c.per_op_ms
                );
            }
            None => out.push_str("load generator CPU: not available\n"),
        }
        if let Some([a, b, c]) = self.load_average {
            let _ = writeln!(out, "load average at the end: {a:.2} {b:.2} {c:.2}");
        }
        out
    }
}

/// The 1, 5 and 15 minute load averages from `/proc/loadavg`.
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}
