//! [`ChaosCluster`]: a cluster for a chaos scenario (peer proxy, failpoints build), with its
//! [`History`], [`Nemesis`], [`ClientKit`] and [`Canaries`]; and [`ChaosCluster::verify`],
//! which heals the cluster, observes the final state, runs every checker and prints the
//! run's figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::audit::Audit;
use super::canary::Canaries;
use super::check::{self, Verdict};
use super::excerpt::excerpt;
use super::history::{Entry, History, Outcome, Phase, Role, now_ms};
use super::honest::Honest;
use super::kit::ClientKit;
use super::nemesis::Nemesis;
use super::workload::observe_status;
use crate::cluster::{Cluster, wait_for};
use crate::options::{ClusterOptions, FAILPOINTS_NODE_BINARY};

/// Where chaos histories (and the files of failed runs) are kept: `<target>/<profile>/chaos`.
pub fn chaos_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("chaos")))
        .unwrap_or_else(|| std::env::temp_dir().join("bkv-chaos"))
}

/// Cluster options for chaos: the failpoints build, the peer proxy, short client timeouts.
pub fn chaos_options(nodes: u64) -> ClusterOptions {
    let mut o = ClusterOptions::new(nodes);
    o.node_binary = FAILPOINTS_NODE_BINARY.into();
    o.peer_proxy = true;
    o.client_call_timeout = Duration::from_secs(3);
    o.client_deadline = Duration::from_secs(10);
    o
}

/// A cluster under chaos and what watches it.
#[derive(Debug)]
pub struct ChaosCluster {
    /// The run's name (history file name).
    pub name: String,
    /// The cluster.
    pub cluster: Cluster,
    /// Client material.
    pub kit: ClientKit,
    /// The history.
    pub history: History,
    /// The fault injector.
    pub nemesis: Nemesis,
    /// Secrets that must never appear in a file.
    pub canaries: Canaries,
    started: Instant,
    /// Verifications run so far (each registers probe accounts of its own).
    verifications: u32,
}

/// What [`ChaosCluster::verify`] found.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The run's name.
    pub name: String,
    /// Every checker's verdict.
    pub verdicts: Vec<Verdict>,
    /// Headline figures (`faults`, `operations`, `beyond_limit`, ...).
    pub figures: BTreeMap<String, u64>,
    /// The history file.
    pub history: Option<PathBuf>,
}

impl Summary {
    /// Whether every checker passed.
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(Verdict::passed)
    }

    /// The verdict of checker `name`.
    pub fn verdict(&self, name: &str) -> Option<&Verdict> {
        self.verdicts.iter().find(|v| v.name == name)
    }
}

/// How the final verification runs.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Liveness bound after the heal.
    pub liveness_bound: Duration,
    /// Whether final honest recoveries run (they spend a guess and reset counters).
    pub final_recoveries: bool,
    /// Free text printed with the figures (the seed, the schedule).
    pub note: String,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            liveness_bound: Duration::from_secs(30),
            final_recoveries: true,
            note: String::new(),
        }
    }
}

impl ChaosCluster {
    /// Starts a cluster with `options` (see [`chaos_options`]) and a history at
    /// `<chaos dir>/<name>.jsonl`.
    pub async fn start(name: &str, options: ClusterOptions) -> anyhow::Result<Self> {
        let path = chaos_dir().join(format!("{name}.jsonl"));
        let history = History::new(Some(&path))?;
        let cluster = Cluster::start_with(options).await?;
        let mut kit = ClientKit::new(&cluster)?;
        kit.call_timeout = cluster.options().client_call_timeout;
        kit.deadline = cluster.options().client_deadline;
        history.info(
            Entry::new(Role::Observer, "observer", "note")
                .nodes(&cluster.ids())
                .detail(format!("{name}: cluster dir {}", cluster.dir().display())),
        );
        println!("{name}: history {}", path.display());
        Ok(Self {
            name: name.to_string(),
            nemesis: Nemesis::new(history.clone()),
            kit,
            history,
            canaries: Canaries::default(),
            cluster,
            started: Instant::now(),
            verifications: 0,
        })
    }

    /// Records each up node's `(applied index, digest)` as `digest` entries.
    pub async fn sample_digests(&mut self) {
        if let Ok(d) = self.cluster.digests().await {
            for (node, (index, digest)) in d {
                let mut e = Entry::new(Role::Observer, "observer", "digest").node(node);
                e.applied_index = Some(index);
                e.digest = Some(digest);
                self.history.info(e);
            }
        }
    }

    /// Waits up to `timeout` for a leader of the nodes that are up and records it.
    pub async fn observe_leader(&mut self, timeout: Duration) -> anyhow::Result<u64> {
        let leader = self.cluster.leader(timeout).await?;
        self.history
            .info(Entry::new(Role::Observer, "observer", "leader").node(leader));
        Ok(leader)
    }

    /// Records an unavailability measured by a scenario.
    pub fn record_unavailability(&self, what: &str, ms: u64) {
        let mut e = Entry::new(Role::Observer, "observer", "unavailability").detail(what);
        e.duration_ms = Some(ms);
        self.history.info(e);
        println!("{}: {what}: {ms} ms", self.name);
    }

    /// Registers fresh accounts until one succeeds (each with a short deadline), from
    /// `since`: returns how long the cluster took to accept a write. Bounded by `timeout`.
    pub async fn time_to_first_write(
        &self,
        since: Instant,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let until = Instant::now() + timeout;
        for i in 0..10_000u32 {
            let h = Honest::new(
                format!("probe-{i}"),
                format!("avail-{}-{i}", now_ms()),
                &self.canaries,
            );
            if h.register(&self.kit, &self.history, &self.canaries, None, i as usize)
                .await?
                .is_some()
            {
                return Ok(since.elapsed());
            }
            anyhow::ensure!(
                Instant::now() < until,
                "no write accepted within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::bail!("no write accepted")
    }

    /// Heals everything, observes the final state and runs every checker; prints the
    /// figures. Fails (after keeping the evidence) if a checker found a violation.
    pub async fn verify(
        &mut self,
        load_accounts: &[Honest],
        o: &VerifyOptions,
    ) -> anyhow::Result<Summary> {
        let summary = self.observe_and_check(load_accounts, o).await?;
        self.report(&summary, o);
        if !summary.passed() {
            print!("{}", excerpt(&self.history.entries(), &summary.verdicts));
            let kept = self.keep_evidence(&summary);
            anyhow::bail!(
                "{}: checkers failed (history {}, evidence {}){}",
                self.name,
                summary
                    .history
                    .as_ref()
                    .map_or_else(|| "-".into(), |p| p.display().to_string()),
                kept.display(),
                if o.note.is_empty() {
                    String::new()
                } else {
                    format!("; {}", o.note)
                }
            );
        }
        Ok(summary)
    }

    /// [`Self::verify`] without failing: heals, observes, checks, returns the summary.
    pub async fn observe_and_check(
        &mut self,
        load_accounts: &[Honest],
        o: &VerifyOptions,
    ) -> anyhow::Result<Summary> {
        self.nemesis.heal(&mut self.cluster).await?;
        self.kit.refresh(&self.cluster);
        let healed = Instant::now();
        // A leader, then writes through every node until a full round succeeds. The probe
        // accounts are new to the run: a scenario that verifies after each of its phases
        // must not write again an account whose final state an earlier verification
        // observed (`no_lost_writes` judges every `final_status` against the last write).
        self.observe_leader(o.liveness_bound).await?;
        self.verifications += 1;
        let pass = self.verifications;
        let nodes = self.kit.nodes();
        let mut round = 0u32;
        loop {
            round += 1;
            let mut all_ok = true;
            for (i, _) in nodes.iter().enumerate() {
                let h = Honest::new(
                    format!("probe-{pass}-{round}-{i}"),
                    format!("probe-{}-{pass}-{round}-{i}", self.name),
                    &self.canaries,
                );
                let ok = h
                    .register(&self.kit, &self.history, &self.canaries, None, i)
                    .await?
                    .is_some()
                    && h.recover(&self.kit, &self.history, i + 1).await? == Outcome::Ok;
                all_ok &= ok;
            }
            if all_ok || healed.elapsed() > o.liveness_bound || round >= 50 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let ids = self.cluster.ids();
        self.cluster
            .wait_digests_equal(&ids, Duration::from_secs(30))
            .await?;
        self.sample_digests().await;
        // Final state of every account on every node.
        let accounts: Vec<String> = {
            let mut a: Vec<String> = self
                .history
                .entries()
                .iter()
                .filter(|e| e.role == Some(Role::Honest))
                .filter_map(|e| e.account.clone())
                .collect();
            a.sort();
            a.dedup();
            a
        };
        for account in &accounts {
            for node in &ids {
                observe_status(&self.kit, &self.history, account, *node).await?;
            }
        }
        if o.final_recoveries {
            for (i, h) in load_accounts.iter().enumerate() {
                let mut h = h.clone();
                h.name = format!("final-{}", h.name);
                h.recover(&self.kit, &self.history, i).await?;
            }
        }
        // Let the audit writers catch up with what was applied.
        self.cluster
            .wait_digests_equal(&ids, Duration::from_secs(30))
            .await?;
        self.sample_digests().await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        let audit = Audit::read(self.cluster.dir())?;
        let mut roots = vec![self.cluster.dir().to_path_buf()];
        if let Some(p) = self.history.path() {
            roots.push(p.to_path_buf());
        }
        let verdicts = vec![
            check::guess_bound(&self.history, &audit),
            check::share_evaluations(&self.history, &audit),
            check::no_lost_writes(&self.history),
            check::replicas_agree(&self.history, &audit),
            check::fail_closed(&self.history),
            check::no_plaintext(&roots, &self.canaries.all()),
            check::liveness(&self.history, o.liveness_bound),
        ];
        let entries = self.history.entries();
        let mut figures = BTreeMap::new();
        figures.insert("faults".to_string(), self.nemesis.faults);
        figures.insert(
            "operations".to_string(),
            entries
                .iter()
                .filter(|e| e.phase == Some(Phase::Complete))
                .count() as u64,
        );
        figures.insert(
            "max_unavailability_ms".to_string(),
            entries
                .iter()
                .filter(|e| e.op == "unavailability")
                .filter_map(|e| e.duration_ms)
                .max()
                .unwrap_or(0),
        );
        figures.insert("seconds".to_string(), self.started.elapsed().as_secs());
        for (k, n) in self.nemesis.kernel_figures() {
            figures.insert(format!("kernel.{k}"), n);
        }
        for v in &verdicts {
            for (k, n) in &v.figures {
                figures.insert(format!("{}.{k}", v.name), *n);
            }
        }
        Ok(Summary {
            name: self.name.clone(),
            verdicts,
            figures,
            history: self.history.path().map(Path::to_path_buf),
        })
    }

    fn report(&self, s: &Summary, o: &VerifyOptions) {
        println!("==== chaos run {} ====", s.name);
        if !o.note.is_empty() {
            println!("{}", o.note);
        }
        for v in &s.verdicts {
            println!("{}", v.summary());
        }
        if let Some(proxy) = self.cluster.proxy() {
            println!("proxy: {:?}", proxy.stats());
        }
        let line: Vec<String> = s
            .figures
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        println!(
            "CHAOS-FIGURES {{\"run\":\"{}\",{}}}",
            s.name,
            line.join(",")
        );
        if let Some(p) = &s.history {
            println!("history: {}", p.display());
        }
    }

    /// Copies node logs, audit files, the history and the verdicts into the run's evidence
    /// dir (a later run of the same name rewrites the history, not this copy); returns the dir.
    fn keep_evidence(&self, s: &Summary) -> PathBuf {
        let dest = chaos_dir().join(format!("{}-evidence", self.name));
        let _ = std::fs::create_dir_all(&dest);
        let verdicts: Vec<String> = s.verdicts.iter().map(|v| v.summary()).collect();
        let _ = std::fs::write(dest.join("verdicts.txt"), verdicts.join("\n") + "\n");
        if let Some(history) = &s.history {
            let _ = std::fs::copy(history, dest.join("history.jsonl"));
        }
        for id in self.cluster.ids() {
            if let Ok(n) = self.cluster.node(id) {
                let _ = std::fs::copy(n.log_path(), dest.join(format!("node{id}.log")));
                let _ = std::fs::copy(
                    n.data_dir().join("audit.jsonl"),
                    dest.join(format!("node{id}.audit.jsonl")),
                );
            }
        }
        dest
    }
}

/// Waits for `check` on the cluster, polling (a bounded wait with a name).
pub async fn wait_cluster<T, F, Fut>(what: &str, timeout: Duration, check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    wait_for(what, timeout, Duration::from_millis(100), check).await
}
