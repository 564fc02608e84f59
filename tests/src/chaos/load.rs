//! [`Load`]: the honest and attacking clients of a chaos run, running concurrently until
//! stopped, as a [`LoadSpec`] says: owners that recover, re-register and delete; victims'
//! owners that recover now and then (some of them leaking their finishes); attackers that
//! guess, retry, reuse attempt ids, log in on their own attempts, forge finalizations and
//! reset signatures, and replay leaked finishes.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::attacker::{Attacker, Attempt};
use super::canary::Canaries;
use super::history::{History, Outcome, now_ms};
use super::honest::{Honest, Leak};
use super::kit::ClientKit;
use super::runner::ChaosCluster;

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
    /// Retries, reused attempt ids, logins with forged finishes, leaked-finish replays.
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

/// Longest a load may run, whatever its caller does (a soak runs an hour or more).
const MAX_LOAD: Duration = Duration::from_secs(6 * 3600);
/// Most operations one client makes.
const MAX_OPS: u64 = 500_000;

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

    /// The first account attackers guess on (empty if the load has no victim).
    pub fn victim(&self) -> String {
        self.accounts
            .iter()
            .find(|h| h.account.starts_with("victim"))
            .map(|h| h.account.clone())
            .unwrap_or_default()
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
            // Log in on the attacker's own charged attempt (which charges nothing), then
            // finish with a forged finalization and reset signature.
            let prev = match prev.ticket {
                Some(_) => prev,
                None => a.login(&ctx.kit, &ctx.history, prev, node).await?,
            };
            if let Some(ticket) = &prev.ticket {
                a.forge_finish(&ctx.kit, &ctx.history, &prev.account, ticket, node)
                    .await?;
            }
            *last = Some(prev);
        }
        (_, 90..100) if replays => {
            let leak = {
                let l = leaks.lock().unwrap_or_else(PoisonError::into_inner);
                (!l.is_empty()).then(|| l[ctx.rng.gen_range(0..l.len())].clone())
            };
            if let Some(leak) = leak {
                if roll < 95 {
                    a.replay(&ctx.kit, &ctx.history, &leak, node).await?;
                } else {
                    a.replay_forged_reset(&ctx.kit, &ctx.history, &leak, node)
                        .await?;
                }
            }
        }
        _ => {
            *last = Some(a.guess(&ctx.kit, &ctx.history, &account, node).await?);
        }
    }
    Ok(())
}
