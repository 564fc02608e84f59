//! [`ChaosCluster`]: a cluster for a chaos scenario (peer proxy, failpoints build), with its
//! [`History`], [`Nemesis`], [`ClientKit`] and [`Canaries`]; [`Load`], the concurrent
//! honest and attacking clients; and [`ChaosCluster::verify`], which heals the cluster,
//! observes the final state, runs every checker and prints the run's figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::audit::Audit;
use super::check::{self, Verdict};
use super::history::{Entry, History, Outcome, Phase, Role, now_ms};
use super::nemesis::Nemesis;
use super::workload::{Attacker, Attempt, Canaries, ClientKit, Honest, Leak, observe_status};
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
            let kept = self.keep_evidence();
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
        // A leader, then writes through every node until a full round succeeds.
        self.observe_leader(o.liveness_bound).await?;
        let nodes = self.kit.nodes();
        let mut round = 0u32;
        loop {
            round += 1;
            let mut all_ok = true;
            for (i, _) in nodes.iter().enumerate() {
                let h = Honest::new(
                    format!("probe-{round}-{i}"),
                    format!("probe-{}-{round}-{i}", self.name),
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
        let proxy = self.cluster.proxy().map(|p| p.stats()).unwrap_or_default();
        println!("proxy: {proxy:?}");
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

    /// Copies node logs, audit files and configs next to the history; returns the dir.
    fn keep_evidence(&self) -> PathBuf {
        let dest = chaos_dir().join(format!("{}-evidence", self.name));
        let _ = std::fs::create_dir_all(&dest);
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

/// What a [`Load`] runs.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Accounts with only their honest owner.
    pub honest: usize,
    /// Accounts that attackers guess on (their owners recover now and then).
    pub victims: usize,
    /// Attacking clients.
    pub attackers: usize,
    /// Guess limit of every registration.
    pub guess_limit: u32,
    /// Pause between two operations of one client.
    pub pause: Duration,
    /// Retries, reused attempt ids, forged finalizations, leaked-ticket replays.
    pub replays: bool,
    /// Seed of the clients' choices.
    pub seed: u64,
}

impl Default for LoadSpec {
    fn default() -> Self {
        Self {
            honest: 3,
            victims: 2,
            attackers: 2,
            guess_limit: 5,
            pause: Duration::from_millis(40),
            replays: true,
            seed: 1,
        }
    }
}

/// Honest and attacking clients running until stopped.
#[derive(Debug)]
pub struct Load {
    stop: watch::Sender<bool>,
    tasks: JoinSet<anyhow::Result<u64>>,
    /// The honest clients (owners of every account).
    pub accounts: Vec<Honest>,
}

/// Longest a load may run, whatever its caller does.
const MAX_LOAD: Duration = Duration::from_secs(900);
/// Most operations one client makes.
const MAX_OPS: u64 = 20_000;

impl Load {
    /// Registers every account (retrying until `setup_timeout`), then starts the clients.
    pub async fn start(cc: &ChaosCluster, spec: &LoadSpec) -> anyhow::Result<Self> {
        let (stop, stop_rx) = watch::channel(false);
        let mut accounts = Vec::new();
        let tag = format!("{}-{}", cc.name, now_ms() % 100_000);
        for i in 0..spec.honest {
            accounts.push((
                Honest::new(
                    format!("honest-{i}"),
                    format!("acct-{tag}-{i}"),
                    &cc.canaries,
                ),
                false,
            ));
        }
        for i in 0..spec.victims {
            accounts.push((
                Honest::new(
                    format!("owner-{i}"),
                    format!("victim-{tag}-{i}"),
                    &cc.canaries,
                ),
                true,
            ));
        }
        for (i, (h, _)) in accounts.iter().enumerate() {
            let until = Instant::now() + Duration::from_secs(30);
            let mut done = false;
            for _ in 0..100 {
                if h.register(
                    &cc.kit,
                    &cc.history,
                    &cc.canaries,
                    Some(spec.guess_limit),
                    i,
                )
                .await?
                .is_some()
                {
                    done = true;
                    break;
                }
                if Instant::now() > until {
                    break;
                }
            }
            anyhow::ensure!(done, "could not register {}", h.account);
        }
        let victims: Vec<String> = accounts
            .iter()
            .filter(|(_, v)| *v)
            .map(|(h, _)| h.account.clone())
            .collect();
        let leaks: Arc<Mutex<Vec<Leak>>> = Arc::default();
        let mut tasks = JoinSet::new();
        for (i, (h, victim)) in accounts.iter().enumerate() {
            let ctx = Ctx {
                kit: cc.kit.clone(),
                history: cc.history.clone(),
                canaries: cc.canaries.clone(),
                stop: stop_rx.clone(),
                spec: spec.clone(),
                rng: StdRng::seed_from_u64(spec.seed.wrapping_mul(1000).wrapping_add(i as u64)),
            };
            let h = h.clone();
            let leaks = leaks.clone();
            let victim = *victim;
            tasks.spawn(async move { honest_loop(ctx, h, victim, leaks).await });
        }
        for i in 0..spec.attackers {
            let ctx = Ctx {
                kit: cc.kit.clone(),
                history: cc.history.clone(),
                canaries: cc.canaries.clone(),
                stop: stop_rx.clone(),
                spec: spec.clone(),
                rng: StdRng::seed_from_u64(
                    spec.seed.wrapping_mul(1000).wrapping_add(500 + i as u64),
                ),
            };
            let a = Attacker::new(format!("attacker-{i}"));
            let victims = victims.clone();
            let leaks = leaks.clone();
            tasks.spawn(async move { attacker_loop(ctx, a, victims, leaks).await });
        }
        Ok(Self {
            stop,
            tasks,
            accounts: accounts.into_iter().map(|(h, _)| h).collect(),
        })
    }

    /// Stops the clients and waits for them (each finishes its operation in flight);
    /// returns how many operations they made.
    pub async fn stop(mut self) -> anyhow::Result<(u64, Vec<Honest>)> {
        let _ = self.stop.send(true);
        let mut ops = 0;
        let until = tokio::time::Instant::now() + Duration::from_secs(60);
        while let Ok(Some(done)) = tokio::time::timeout_at(until, self.tasks.join_next()).await {
            ops += done??;
        }
        self.tasks.abort_all();
        Ok((ops, self.accounts))
    }
}

struct Ctx {
    kit: ClientKit,
    history: History,
    canaries: Canaries,
    stop: watch::Receiver<bool>,
    spec: LoadSpec,
    rng: StdRng,
}

impl Ctx {
    fn stopped(&self, started: Instant, ops: u64) -> bool {
        *self.stop.borrow() || started.elapsed() > MAX_LOAD || ops >= MAX_OPS
    }

    async fn pause(&mut self) {
        let p = self.spec.pause;
        let jitter = self.rng.gen_range(0..=p.as_millis() as u64);
        let mut stop = self.stop.clone();
        tokio::select! {
            () = tokio::time::sleep(p + Duration::from_millis(jitter)) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }

    fn node(&mut self) -> Option<u64> {
        let nodes = self.kit.nodes();
        (!nodes.is_empty()).then(|| nodes[self.rng.gen_range(0..nodes.len())])
    }
}

async fn honest_loop(
    mut ctx: Ctx,
    h: Honest,
    victim: bool,
    leaks: Arc<Mutex<Vec<Leak>>>,
) -> anyhow::Result<u64> {
    let started = Instant::now();
    let mut ops = 0u64;
    while !ctx.stopped(started, ops) {
        ops += 1;
        if let Err(e) = honest_step(&mut ctx, &h, victim, &leaks).await {
            eprintln!("{}: {e:#}", h.name);
        }
        ctx.pause().await;
        if victim {
            ctx.pause().await;
        }
    }
    Ok(ops)
}

async fn honest_step(
    ctx: &mut Ctx,
    h: &Honest,
    victim: bool,
    leaks: &Mutex<Vec<Leak>>,
) -> anyhow::Result<()> {
    let limit = Some(ctx.spec.guess_limit);
    let first = ctx.rng.gen_range(0..16usize);
    let roll = ctx.rng.gen_range(0..100u32);
    let outcome = if victim {
        if ctx.spec.replays && roll < 25 {
            if let Some(node) = ctx.node()
                && let Some(leak) = h.leaky_recover(&ctx.kit, &ctx.history, node).await?
            {
                leaks
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(leak);
            }
            Outcome::Ok
        } else {
            h.recover(&ctx.kit, &ctx.history, first).await?
        }
    } else if roll < 60 {
        h.recover(&ctx.kit, &ctx.history, first).await?
    } else if roll < 85 {
        h.register(&ctx.kit, &ctx.history, &ctx.canaries, limit, first)
            .await?;
        Outcome::Ok
    } else {
        h.delete(&ctx.kit, &ctx.history, first).await?;
        h.register(&ctx.kit, &ctx.history, &ctx.canaries, limit, first)
            .await?;
        Outcome::Ok
    };
    if matches!(outcome, Outcome::Destroyed | Outcome::NotFound) {
        // The attackers won this round (or a delete went through): start over.
        h.register(&ctx.kit, &ctx.history, &ctx.canaries, limit, first)
            .await?;
    }
    Ok(())
}

async fn attacker_loop(
    mut ctx: Ctx,
    a: Attacker,
    victims: Vec<String>,
    leaks: Arc<Mutex<Vec<Leak>>>,
) -> anyhow::Result<u64> {
    let started = Instant::now();
    let mut ops = 0u64;
    let mut last: Option<Attempt> = None;
    while !ctx.stopped(started, ops) && !victims.is_empty() {
        ops += 1;
        if let Err(e) = attacker_step(&mut ctx, &a, &victims, &leaks, &mut last).await {
            eprintln!("{}: {e:#}", a.name);
        }
        ctx.pause().await;
    }
    Ok(ops)
}

async fn attacker_step(
    ctx: &mut Ctx,
    a: &Attacker,
    victims: &[String],
    leaks: &Mutex<Vec<Leak>>,
    last: &mut Option<Attempt>,
) -> anyhow::Result<()> {
    let Some(node) = ctx.node() else {
        return Ok(());
    };
    let account = victims[ctx.rng.gen_range(0..victims.len())].clone();
    let roll = ctx.rng.gen_range(0..100u32);
    let replays = ctx.spec.replays;
    match (last.clone(), roll) {
        (Some(prev), 55..70) if replays => {
            // The same attempt, same bytes, another node: must get the same charge.
            let again = a
                .start(&ctx.kit, &ctx.history, prev, node, "recover_start")
                .await?;
            *last = Some(again);
        }
        (Some(prev), 70..78) if replays => {
            a.conflict(&ctx.kit, &ctx.history, &prev, node).await?;
        }
        (Some(prev), 78..90) if replays => {
            if let Some(ticket) = &prev.ticket {
                a.forge_finish(&ctx.kit, &ctx.history, &prev.account, ticket, node)
                    .await?;
            }
        }
        (_, 90..100) if replays => {
            let leak = {
                let l = leaks.lock().unwrap_or_else(PoisonError::into_inner);
                (!l.is_empty()).then(|| l[ctx.rng.gen_range(0..l.len())].clone())
            };
            if let Some(leak) = leak {
                a.replay(&ctx.kit, &ctx.history, &leak, node).await?;
            }
        }
        _ => {
            *last = Some(a.guess(&ctx.kit, &ctx.history, &account, node).await?);
        }
    }
    Ok(())
}

/// Waits for `check` on the cluster, polling (a bounded wait with a name).
pub async fn wait_cluster<T, F, Fut>(what: &str, timeout: Duration, check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    wait_for(what, timeout, Duration::from_millis(100), check).await
}
