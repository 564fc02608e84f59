//! Seeded random chaos: a [`Schedule`] of fault steps and a workload, drawn from a seed so
//! that the same seed gives the same schedule (the interleavings of a run on real processes
//! differ, the faults and the clients' choices do not), and [`run`], which plays it.

use std::fmt;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use super::load::{Load, LoadSpec};
use super::proxy::Fault;
use super::runner::{ChaosCluster, Summary, VerifyOptions};

/// Which node a step hits: a fixed one, or whoever leads when the step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Node with this id.
    Node(u64),
    /// The leader at the time.
    Leader,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Node(n) => write!(f, "node {n}"),
            Self::Leader => f.write_str("the leader"),
        }
    }
}

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Cut the target off from the others both ways (drop or blackhole).
    Isolate(Target, Fault),
    /// One directed link blackholed.
    OneWay(u64, u64),
    /// Delay (with jitter) on every link out of the target.
    Slow(Target, Duration, Duration),
    /// Reset every peer connection.
    Reset,
    /// kill -9, then restart at the heal.
    Kill(Target),
    /// SIGSTOP for a while, then SIGCONT.
    Pause(Target, Duration),
    /// Slow fsync: `log_flush=sleep(ms)`.
    SlowDisk(Target, u64),
    /// Failing storage: `log_append=error` (the node must fail closed).
    DiskError(Target),
    /// Failing HSM: `hsm_seal=error;hsm_unseal=error` (no login and no key may come from
    /// the node).
    HsmError(Target),
    /// Failing fsync: `log_flush=error` (the node must fail closed).
    FsyncError(Target),
    /// Kernel: this percentage of the target's packets lost (peer links, and client links
    /// if `true`).
    Lose(Target, u32, bool),
    /// Kernel: every packet of the target duplicated.
    Duplicate(Target),
    /// Kernel: the target's traffic limited to this many kbit/s (`tbf`).
    RateLimit(Target, u64),
    /// Kernel: the target cut off from the clients, not from its peers.
    CutFromClients(Target),
    /// Kernel: the target cut off from its peers and back, every this long.
    Flap(Target, Duration),
    /// Kernel: the target's data dir full.
    DiskFull(Target),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Isolate(t, fault) => write!(f, "isolate {t} ({fault:?})"),
            Self::OneWay(a, b) => write!(f, "blackhole {a}->{b}"),
            Self::Slow(t, base, jitter) => write!(
                f,
                "delay links of {t} by {}+{} ms",
                base.as_millis(),
                jitter.as_millis()
            ),
            Self::Reset => f.write_str("reset peer connections"),
            Self::Kill(t) => write!(f, "kill -9 {t}"),
            Self::Pause(t, d) => write!(f, "SIGSTOP {t} for {} ms", d.as_millis()),
            Self::SlowDisk(t, ms) => write!(f, "slow fsync on {t} ({ms} ms)"),
            Self::DiskError(t) => write!(f, "storage error on {t}"),
            Self::HsmError(t) => write!(f, "HSM error on {t}"),
            Self::FsyncError(t) => write!(f, "fsync error on {t}"),
            Self::Lose(t, p, clients) => write!(
                f,
                "{p}% packet loss on {t}{}",
                if *clients { " (peers and clients)" } else { "" }
            ),
            Self::Duplicate(t) => write!(f, "duplicate every packet of {t}"),
            Self::RateLimit(t, kbit) => write!(f, "limit {t} to {kbit} kbit/s"),
            Self::CutFromClients(t) => write!(f, "cut {t} off from the clients"),
            Self::Flap(t, d) => write!(f, "flap {t}'s peer links every {} ms", d.as_millis()),
            Self::DiskFull(t) => write!(f, "fill the disk of {t}"),
        }
    }
}

/// A seeded chaos run: the cluster size, the clients, and the steps (each held for a while,
/// then healed).
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The seed.
    pub seed: u64,
    /// Nodes in the cluster.
    pub nodes: u64,
    /// The clients.
    pub load: LoadSpec,
    /// `(step, how long it is held, pause after the heal)`.
    pub steps: Vec<(Step, Duration, Duration)>,
}

impl Schedule {
    /// Draws a schedule of about `duration` for `nodes` nodes from `seed`.
    pub fn generate(seed: u64, duration: Duration, nodes: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let load = draw_load(&mut rng, seed);
        let mut steps = Vec::new();
        let mut total = Duration::ZERO;
        // Bounded by count as well as by time.
        for _ in 0..10_000 {
            if total >= duration {
                break;
            }
            let target = draw_target(&mut rng, nodes);
            let other = |rng: &mut StdRng, not: u64| loop {
                let n = rng.gen_range(1..=nodes);
                if n != not {
                    break n;
                }
            };
            let step = match rng.gen_range(0..10u32) {
                0 => Step::Isolate(target, Fault::Blackhole),
                1 => Step::Isolate(target, Fault::Drop),
                2 => {
                    let a = rng.gen_range(1..=nodes);
                    Step::OneWay(a, other(&mut rng, a))
                }
                3 => Step::Slow(
                    target,
                    Duration::from_millis(rng.gen_range(20..=150)),
                    Duration::from_millis(rng.gen_range(0..=100)),
                ),
                4 => Step::Reset,
                5 => Step::Kill(target),
                6 => Step::Pause(target, Duration::from_millis(rng.gen_range(300..=2500))),
                7 => Step::SlowDisk(target, rng.gen_range(50..=400)),
                8 => Step::DiskError(target),
                _ => Step::HsmError(target),
            };
            let hold = Duration::from_millis(rng.gen_range(1000..=3500));
            let rest = Duration::from_millis(rng.gen_range(500..=2000));
            total += hold + rest;
            steps.push((step, hold, rest));
        }
        Self {
            seed,
            nodes,
            load,
            steps,
        }
    }

    /// The schedule, one step a line.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "seed {} on {} nodes: {} honest, {} victims, {} attackers, guess limit {}, pause {} \
             ms\n",
            self.seed,
            self.nodes,
            self.load.honest,
            self.load.victims,
            self.load.attackers,
            self.load.guess_limit,
            self.load.pause.as_millis()
        );
        for (i, (step, hold, rest)) in self.steps.iter().enumerate() {
            s.push_str(&format!(
                "  {i:>3}. {step}, held {} ms, then heal and {} ms\n",
                hold.as_millis(),
                rest.as_millis()
            ));
        }
        s
    }
}

/// The node a step hits: the leader at the time (40%), or any node.
pub fn draw_target(rng: &mut StdRng, nodes: u64) -> Target {
    if rng.gen_bool(0.4) {
        Target::Leader
    } else {
        Target::Node(rng.gen_range(1..=nodes))
    }
}

/// The clients of a seeded run, drawn first from its generator.
pub fn draw_load(rng: &mut StdRng, seed: u64) -> LoadSpec {
    LoadSpec {
        honest: rng.gen_range(2..=4),
        victims: rng.gen_range(1..=3),
        attackers: rng.gen_range(1..=3),
        guess_limit: rng.gen_range(2..=6),
        pause: Duration::from_millis(rng.gen_range(20..=80)),
        replays: true,
        seed,
    }
}

/// Steps of a schedule printed with a run's verdicts.
const MAX_NOTE_STEPS: usize = 40;

async fn resolve(cc: &mut ChaosCluster, t: Target) -> anyhow::Result<u64> {
    match t {
        Target::Node(n) => Ok(n),
        Target::Leader => cc.observe_leader(Duration::from_secs(20)).await,
    }
}

/// Plays `schedule` on `cc` under its load, then verifies. The returned summary's note
/// holds the seed and the schedule.
pub async fn run(cc: &mut ChaosCluster, schedule: &Schedule) -> anyhow::Result<Summary> {
    run_until(cc, schedule, None).await
}

/// [`run`], stopping before the next step once `until` has passed (a soak runs for a time,
/// however long its heals take); a step begun is held and healed.
pub async fn run_until(
    cc: &mut ChaosCluster,
    schedule: &Schedule,
    until: Option<Instant>,
) -> anyhow::Result<Summary> {
    let load = Load::start(cc, &schedule.load).await?;
    let started = Instant::now();
    for (i, (step, hold, rest)) in schedule.steps.iter().enumerate() {
        if until.is_some_and(|u| Instant::now() >= u) {
            println!(
                "[{:>6} ms] time is up after {i} steps",
                started.elapsed().as_millis()
            );
            break;
        }
        println!("[{:>6} ms] step {i}: {step}", started.elapsed().as_millis());
        apply(cc, step).await?;
        tokio::time::sleep(*hold).await;
        cc.sample_digests().await;
        cc.nemesis.heal(&mut cc.cluster).await?;
        tokio::time::sleep(*rest).await;
        cc.sample_digests().await;
    }
    let (_ops, accounts) = load.stop().await?;
    // A soak's schedule has a thousand steps: its first ones, and the seed, are enough.
    let mut described = schedule.describe();
    if let Some((cut, _)) = described.match_indices('\n').nth(MAX_NOTE_STEPS) {
        described.truncate(cut);
        described.push_str(&format!(
            "\n  ... {} more steps (the seed replays them all)\n",
            schedule.steps.len() - MAX_NOTE_STEPS
        ));
    }
    let note = format!(
        "seed {} (replay: make chaos SEED={} DURATION=...)\n{described}",
        schedule.seed, schedule.seed,
    );
    cc.verify(
        &accounts,
        &VerifyOptions {
            note,
            ..VerifyOptions::default()
        },
    )
    .await
}

/// Injects `step` (healed by the next [`super::Nemesis::heal`]).
pub async fn apply(cc: &mut ChaosCluster, step: &Step) -> anyhow::Result<()> {
    let ids = cc.cluster.ids();
    let others = |n: u64| ids.iter().copied().filter(|x| *x != n).collect::<Vec<_>>();
    match step {
        Step::Isolate(t, fault) => {
            let n = resolve(cc, *t).await?;
            cc.nemesis.isolate(&cc.cluster, n, &others(n), *fault)?;
        }
        Step::OneWay(a, b) => cc.nemesis.link(&cc.cluster, *a, *b, Fault::Blackhole)?,
        Step::Slow(t, base, jitter) => {
            let n = resolve(cc, *t).await?;
            for o in others(n) {
                cc.nemesis.link(
                    &cc.cluster,
                    n,
                    o,
                    Fault::Delay {
                        base: *base,
                        jitter: *jitter,
                    },
                )?;
            }
        }
        Step::Reset => {
            cc.nemesis.reset_connections(&cc.cluster)?;
        }
        Step::Kill(t) => {
            let leader = cc.observe_leader(Duration::from_secs(20)).await.ok();
            let n = resolve(cc, *t).await?;
            let killed = Instant::now();
            cc.nemesis.kill9(&mut cc.cluster, n)?;
            if leader == Some(n) {
                let took = cc
                    .time_to_first_write(killed, Duration::from_secs(30))
                    .await?;
                cc.record_unavailability(
                    "first write after kill -9 of the leader",
                    took.as_millis() as u64,
                );
            }
        }
        Step::Pause(t, d) => {
            let n = resolve(cc, *t).await?;
            cc.nemesis.sigstop(&mut cc.cluster, n)?;
            tokio::time::sleep(*d).await;
            cc.nemesis.sigcont(&mut cc.cluster, n)?;
        }
        Step::SlowDisk(t, ms) => {
            let n = resolve(cc, *t).await?;
            cc.nemesis
                .failpoint(&cc.cluster, n, &format!("log_flush=sleep({ms})"), false)
                .await?;
        }
        Step::DiskError(t) => {
            let n = resolve(cc, *t).await?;
            cc.nemesis
                .failpoint(&cc.cluster, n, "log_append=error", true)
                .await?;
        }
        Step::HsmError(t) => {
            let n = resolve(cc, *t).await?;
            cc.nemesis.hsm_failure(&cc.cluster, n).await?;
        }
        Step::FsyncError(t) => {
            let n = resolve(cc, *t).await?;
            cc.nemesis
                .failpoint(&cc.cluster, n, "log_flush=error", true)
                .await?;
        }
        Step::Lose(t, percent, clients) => {
            let n = resolve(cc, *t).await?;
            cc.nemesis.lose(&cc.cluster, n, *percent, *clients)?;
        }
        Step::Duplicate(t) => {
            let n = resolve(cc, *t).await?;
            cc.nemesis.duplicate(&cc.cluster, n)?;
        }
        Step::RateLimit(t, kbit) => {
            let n = resolve(cc, *t).await?;
            cc.nemesis.rate_limit(&cc.cluster, n, *kbit)?;
        }
        Step::CutFromClients(t) => {
            let n = resolve(cc, *t).await?;
            cc.nemesis.cut_from_clients(&cc.cluster, n)?;
        }
        Step::Flap(t, period) => {
            let n = resolve(cc, *t).await?;
            cc.nemesis.flap(&cc.cluster, n, *period)?;
        }
        Step::DiskFull(t) => {
            let n = resolve(cc, *t).await?;
            cc.nemesis.fill_disk(&cc.cluster, n)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let a = Schedule::generate(42, Duration::from_secs(60), 3);
        let b = Schedule::generate(42, Duration::from_secs(60), 3);
        let c = Schedule::generate(43, Duration::from_secs(60), 3);
        assert_eq!(a.describe(), b.describe());
        assert_ne!(a.describe(), c.describe());
        let total: Duration = a.steps.iter().map(|(_, h, r)| *h + *r).sum();
        assert!(total >= Duration::from_secs(60) && total < Duration::from_secs(66));
        assert!(a.describe().starts_with("seed 42 on 3 nodes"));
    }
}
