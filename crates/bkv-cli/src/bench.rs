//! `bkv bench`: a load generator against any bkv cluster. N concurrent clients run a mix
//! of registrations, recoveries and wrong guesses through the SDK for a duration or a
//! count, over a few shared connections per endpoint, against a pool of synthetic accounts
//! that it registers first (each with its own token, issued on the fly from the dev issuer
//! key). It reports throughput and latency percentiles per operation, measured end to end
//! per SDK call, and its own CPU time.

mod cpu;
mod mix;
mod recorder;
mod report;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bkv_client::{KsfParams, SecretString, TokenSource, VaultClient, VaultError};
use bkv_core::ids::AccountId;
use bkv_devkit::issue_token;
use clap::Args;
use ed25519_dalek::SigningKey;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng as _, RngCore as _, SeedableRng as _};

use self::mix::{Mix, Op};
use self::recorder::{Ending, Recorder, Sample, Summary};
use self::report::{ClientCpu, KSF_NOTE, PoolReport, Report};
use crate::conn::{ClientConn, RoutingArg, read_file};
use crate::exit::Failure;
use crate::parse::parse_secs;
use crate::token::IssuerArgs;

/// Lifetime of the tokens the bench issues (one per operation).
const TOKEN_TTL_SECS: u64 = 300;
/// Most error messages kept as examples in the report.
const ERROR_EXAMPLES: usize = 8;

/// `bkv bench`
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub conn: ClientConn,
    #[command(flatten)]
    pub issuer: IssuerArgs,
    /// Concurrent clients, each running one operation after the other
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000), value_name = "N")]
    pub clients: u64,
    /// HTTP/2 connection sets (each to every endpoint, each starting at the next endpoint),
    /// shared round robin by the clients
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..=1_000), value_name = "N")]
    pub connections: u64,
    /// How long to measure, in seconds, after the warm-up
    #[arg(long, default_value = "30", value_parser = parse_secs, value_name = "SECS")]
    pub duration: Duration,
    /// Run this many operations (no warm-up) instead of a duration
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub count: Option<u64>,
    /// Offered load: start this many operations per second in all, evenly spread over the
    /// clients (open loop). Without it every client starts its next operation as soon as
    /// the last one ends (closed loop)
    #[arg(long, value_parser = parse_rate, value_name = "OPS")]
    pub rate: Option<f64>,
    /// Seconds of load before the measured window (not reported)
    #[arg(long, default_value = "2", value_parser = parse_warmup, value_name = "SECS")]
    pub warmup: Duration,
    /// Operations and their weights: recover (right password), register (a new account),
    /// wrong (a wrong password, which the vault charges)
    #[arg(long, default_value = "recover=1", value_name = "OP=W,...")]
    pub mix: Mix,
    /// Accounts in the pool that recoveries and wrong guesses draw from (registered first)
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub accounts: u64,
    /// Name prefix of the bench accounts (PREFIX-0, PREFIX-1, ...)
    #[arg(long, default_value = "bench", value_name = "PREFIX")]
    pub prefix: String,
    /// The pool is registered already (an earlier run with the same --prefix and at least
    /// --accounts accounts): do not register it again
    #[arg(long)]
    pub registered: bool,
    /// Guess limit of the accounts the bench registers. Wrong guesses never take an
    /// account to its limit: a recovery is run instead
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(2..), value_name = "N")]
    pub guess_limit: u32,
    /// Tokio worker threads of the load generator (default: one per CPU)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256), value_name = "N")]
    pub threads: Option<u64>,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
    /// No progress bar
    #[arg(long)]
    pub quiet: bool,
}

/// Parses an offered rate: operations per second, more than 0.
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 1e6 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a rate between 0 and 1000000 per second"
        )),
    }
}

/// Parses the warm-up: seconds, zero allowed.
fn parse_warmup(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    parse_secs(s)
}

impl BenchArgs {
    /// Tokio worker threads to run with.
    pub fn threads(&self) -> usize {
        self.threads
            .map(|t| t as usize)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
    }
}

/// Who signs the bench accounts' tokens.
struct Issuer {
    key: SigningKey,
    name: String,
    audience: String,
}

/// What every client shares.
struct Shared {
    /// One client per connection; operations run on `with_token` copies of them.
    bases: Vec<VaultClient>,
    issuer: Arc<Issuer>,
    mix: Mix,
    clients: u64,
    accounts: u64,
    prefix: String,
    run_id: String,
    guess_limit: u32,
    origin: Instant,
    /// Open loop: time between two starts of one client.
    pace: Option<Duration>,
    stop: AtomicBool,
    /// Operations left to start (count mode).
    tickets: Option<AtomicU64>,
    ok: AtomicU64,
    errors: AtomicU64,
}

impl Shared {
    fn account(&self, index: u64) -> Result<AccountId, Failure> {
        let name = format!("{}-{index}", self.prefix);
        AccountId::parse(&name).map_err(|e| Failure::usage(format!("account {name:?}: {e}")))
    }

    /// The password of pool account `index`.
    fn password(&self, index: u64) -> SecretString {
        SecretString::from(format!("bkv bench {}-{index}", self.prefix))
    }

    /// A client for `account` over the connections of client `w`, with one token for all
    /// its calls, issued at the first: as an app fetches a token from its backend before a
    /// recovery and presents it on both calls.
    fn vault(&self, w: u64, account: &AccountId) -> VaultClient {
        let issuer = self.issuer.clone();
        let account_for_token = account.clone();
        let issued = OnceLock::new();
        let token = TokenSource::from_fn(move || {
            issued
                .get_or_init(|| {
                    issue_token(
                        &issuer.key,
                        &issuer.name,
                        &issuer.audience,
                        &account_for_token,
                        TOKEN_TTL_SECS,
                    )
                    .map(SecretString::from)
                })
                .clone()
        });
        self.bases[(w as usize) % self.bases.len()].with_token(token)
    }

    /// Takes a ticket for one more operation; `false` when the run is over.
    fn next(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        match &self.tickets {
            None => true,
            Some(t) => t
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }

    fn count(&self, ending: Ending) {
        match ending {
            Ending::Ok => self.ok.fetch_add(1, Ordering::Relaxed),
            Ending::Failed(_) => self.errors.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// The kind of an SDK error, as reports name it.
fn kind(e: &VaultError) -> &'static str {
    match e {
        VaultError::WrongPassword { .. } => "wrong_password",
        VaultError::Destroyed => "destroyed",
        VaultError::NotFound => "not_found",
        VaultError::RateLimited { .. } => "rate_limited",
        VaultError::Unavailable { .. } => "unavailable",
        VaultError::Unauthenticated(_) => "unauthenticated",
        VaultError::PermissionDenied(_) => "permission_denied",
        VaultError::InvalidArgument { .. } => "invalid_argument",
        VaultError::TicketRejected { .. } => "ticket_rejected",
        VaultError::Protocol(_) => "protocol",
        VaultError::Server { .. } => "server",
        VaultError::Transport(_) => "transport",
        VaultError::Token(_) => "token",
    }
}

/// What one client brings back.
#[derive(Default)]
struct ClientResult {
    samples: Vec<Sample>,
    examples: BTreeMap<String, String>,
}

impl ClientResult {
    fn note(&mut self, op: Op, e: &VaultError) {
        if self.examples.len() < ERROR_EXAMPLES {
            self.examples
                .entry(format!("{op}/{}", kind(e)))
                .or_insert_with(|| e.to_string());
        }
    }
}

/// One client of the measured run: operations one after the other until the run is over.
/// Pool accounts are split between clients (client `w` uses accounts `w`, `w + clients`,
/// ...), so that no two operations on one account ever overlap.
async fn client(shared: Arc<Shared>, w: u64) -> Result<ClientResult, Failure> {
    let mut out = ClientResult::default();
    let mut recorder = Recorder::new(shared.origin);
    let mut rng = StdRng::from_entropy();
    let slots = (shared.accounts.saturating_sub(w)).div_ceil(shared.clients);
    // Guesses charged since the last successful recovery, per pool account of this client.
    let mut charged: HashMap<u64, u32> = HashMap::new();
    let mut registrations = 0u64;
    // Open loop: client w starts at origin + w/clients of a period, then once a period.
    let mut next_start = shared
        .pace
        .map(|p| shared.origin + p.mul_f64(w as f64 / shared.clients as f64));
    while shared.next() {
        // When the operation is due: in the open loop, latency counts from then (a late
        // start is the vault's delay too, not hidden from the figures).
        let mut due = None;
        if let (Some(at), Some(pace)) = (next_start, shared.pace) {
            tokio::time::sleep_until(at.into()).await;
            next_start = Some(at + pace);
            due = Some(at);
        }
        let mut op = shared.mix.pick(&mut rng);
        if op != Op::Register && slots == 0 {
            op = Op::Register;
        }
        let started;
        let result = match op {
            Op::Register => {
                let account = AccountId::parse(&format!(
                    "{}-{}-{w}-{registrations}",
                    shared.prefix, shared.run_id
                ))
                .map_err(|e| Failure::usage(format!("bench account name: {e}")))?;
                registrations += 1;
                let vault = shared.vault(w, &account);
                let password = SecretString::from(format!("bkv bench {account}"));
                started = due.unwrap_or_else(Instant::now);
                vault
                    .register(&account, password, Some(shared.guess_limit))
                    .await
                    .map(|_| ())
            }
            Op::Recover | Op::Wrong => {
                let index = w + rng.gen_range(0..slots) * shared.clients;
                let used = charged.entry(index).or_insert(0);
                if op == Op::Wrong && *used + 2 > shared.guess_limit {
                    // One more wrong guess would leave no guess for the next recovery.
                    op = Op::Recover;
                }
                let account = shared.account(index)?;
                let vault = shared.vault(w, &account);
                let password = match op {
                    Op::Wrong => SecretString::from("not the bench password".to_string()),
                    _ => shared.password(index),
                };
                started = due.unwrap_or_else(Instant::now);
                let result = vault.recover(&account, password).await;
                match (op, result) {
                    (Op::Recover, Ok(_)) => {
                        *used = 0;
                        Ok(())
                    }
                    (Op::Wrong, Err(VaultError::WrongPassword { .. })) => {
                        *used += 1;
                        Ok(())
                    }
                    (Op::Wrong, Ok(_)) => {
                        *used = 0;
                        Err(VaultError::Protocol("a wrong password was accepted".into()))
                    }
                    (_, Err(e)) => {
                        // The guess may have been charged before the failure.
                        *used += 1;
                        Err(e)
                    }
                    (Op::Register, Ok(_)) => Ok(()),
                }
            }
        };
        let ending = match &result {
            Ok(()) => Ending::Ok,
            Err(e) => {
                out.note(op, e);
                Ending::Failed(kind(e))
            }
        };
        recorder.record(op, started, ending);
        shared.count(ending);
    }
    out.samples = recorder.into_samples();
    Ok(out)
}

/// Registers pool accounts `0..accounts` with `clients` concurrent clients. Returns the
/// time it took and the failures.
async fn register_pool(shared: &Arc<Shared>, bar: &ProgressBar) -> (Duration, u64) {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..shared.clients.min(shared.accounts) {
        let (shared, next) = (shared.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= shared.accounts {
                    return;
                }
                let ending = match shared.account(index) {
                    Ok(account) => {
                        let vault = shared.vault(w, &account);
                        match vault
                            .register(&account, shared.password(index), Some(shared.guess_limit))
                            .await
                        {
                            Ok(_) => Ending::Ok,
                            Err(e) => Ending::Failed(kind(&e)),
                        }
                    }
                    Err(_) => Ending::Failed("account"),
                };
                shared.count(ending);
            }
        });
    }
    let ticker = {
        let (shared, bar) = (shared.clone(), bar.clone());
        tokio::spawn(async move {
            loop {
                let (ok, errors) = (
                    shared.ok.load(Ordering::Relaxed),
                    shared.errors.load(Ordering::Relaxed),
                );
                bar.set_position(ok + errors);
                let secs = shared.origin.elapsed().as_secs_f64().max(1e-3);
                bar.set_message(format!(
                    "{ok} registered, {errors} errors, {:.0}/s",
                    ok as f64 / secs
                ));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    while tasks.join_next().await.is_some() {}
    ticker.abort();
    bar.finish_and_clear();
    (started.elapsed(), shared.errors.load(Ordering::Relaxed))
}

fn bar(quiet: bool, len: u64, template: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Runs `bkv bench`.
pub async fn run(a: BenchArgs) -> Result<(), Failure> {
    if a.mix.needs_pool() && a.accounts < a.clients {
        return Err(Failure::usage(format!(
            "--accounts ({}) must be at least --clients ({}): clients never share an account",
            a.accounts, a.clients
        )));
    }
    let Some(key_path) = &a.issuer.issuer_key else {
        return Err(Failure::usage(
            "bkv bench issues a token per account: set --issuer-key or BKV_ISSUER_KEY",
        ));
    };
    let issuer = Arc::new(Issuer {
        key: bkv_devkit::pki::read_issuer_key(key_path)?,
        name: a.issuer.issuer.clone(),
        audience: a.issuer.audience.clone(),
    });
    let ca = read_file("CA certificate", &a.conn.ca_cert)?;
    let mut bases = Vec::new();
    for i in 0..a.connections {
        // Each connection set starts at another endpoint, so that the clients spread over
        // the cluster the way many independent apps would (the SDK keeps to the endpoint
        // that last answered).
        let mut endpoints = a.conn.endpoints.clone();
        if !endpoints.is_empty() {
            let n = endpoints.len();
            endpoints.rotate_left(usize::try_from(i).unwrap_or(0) % n);
        }
        let config = a.conn.config(
            endpoints,
            ca.clone(),
            TokenSource::fixed(""),
            KsfParams::light(),
        )?;
        bases.push(VaultClient::connect(config).await?);
    }
    let endpoints = bases
        .first()
        .map(VaultClient::endpoints)
        .unwrap_or_default();
    let mut run_id = [0u8; 4];
    rand::rngs::OsRng.fill_bytes(&mut run_id);
    let make_shared = |accounts: u64, tickets: Option<u64>| {
        Arc::new(Shared {
            bases: bases
                .iter()
                .map(|b| b.with_token(TokenSource::fixed("")))
                .collect(),
            issuer: issuer.clone(),
            mix: a.mix,
            clients: a.clients,
            accounts,
            prefix: a.prefix.clone(),
            run_id: hex::encode(run_id),
            guess_limit: a.guess_limit,
            origin: Instant::now(),
            pace: a
                .rate
                .map(|r| Duration::from_secs_f64(a.clients as f64 / r)),
            stop: AtomicBool::new(false),
            tickets: tickets.map(AtomicU64::new),
            ok: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        })
    };
    let pool_accounts = if a.mix.needs_pool() { a.accounts } else { 0 };

    // Phase 1: the account pool.
    let mut pool = PoolReport {
        accounts: pool_accounts,
        prefix: a.prefix.clone(),
        registered_now: false,
        register_seconds: 0.0,
        register_per_second: 0.0,
        register_errors: 0,
    };
    if pool_accounts > 0 && !a.registered {
        if !a.quiet {
            eprintln!(
                "bkv bench: registering {pool_accounts} accounts {}-N with {} clients",
                a.prefix,
                a.clients.min(pool_accounts)
            );
        }
        let mut shared = make_shared(pool_accounts, None);
        if let Some(s) = Arc::get_mut(&mut shared) {
            // Registering the pool runs flat out whatever the offered rate.
            s.pace = None;
        }
        let bar = bar(
            a.quiet,
            pool_accounts,
            "{spinner} {elapsed:>4} [{bar:30}] {pos}/{len} {msg}",
        );
        let (took, errors) = register_pool(&shared, &bar).await;
        pool.registered_now = true;
        pool.register_seconds = took.as_secs_f64();
        pool.register_per_second = (pool_accounts - errors) as f64 / took.as_secs_f64().max(1e-6);
        pool.register_errors = errors;
        if errors == pool_accounts {
            return Err(Failure::other(
                "no pool account could be registered (is the cluster up? try bkv register)",
            ));
        }
    }

    // Phase 2: the measured run.
    let warmup = if a.count.is_some() {
        Duration::ZERO
    } else {
        a.warmup
    };
    let shared = make_shared(pool_accounts, a.count);
    let len = match a.count {
        Some(n) => n,
        None => u64::try_from((warmup + a.duration).as_millis()).unwrap_or(u64::MAX),
    };
    let bar = bar(a.quiet, len, "{spinner} {elapsed:>4} [{bar:30}] {msg}");
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..a.clients {
        tasks.spawn(client(shared.clone(), w));
    }
    let ticker = {
        let (shared, bar, counted) = (shared.clone(), bar.clone(), a.count.is_some());
        tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let (ok, errors) = (
                    shared.ok.load(Ordering::Relaxed),
                    shared.errors.load(Ordering::Relaxed),
                );
                let now = Instant::now();
                let rate = (ok - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
                if now.duration_since(last.0) >= Duration::from_secs(1) {
                    last = (now, ok);
                }
                let pos = if counted {
                    ok + errors
                } else {
                    u64::try_from(shared.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
                };
                bar.set_position(pos);
                bar.set_message(format!("{ok} ok, {errors} errors, {rate:.0} ok/s"));
            }
        })
    };
    let cpu_start;
    let from;
    let mut to;
    if a.count.is_none() {
        tokio::time::sleep(warmup).await;
        cpu_start = cpu::process_cpu_time();
        from = shared.origin.elapsed();
        tokio::time::sleep(a.duration).await;
        to = shared.origin.elapsed();
        shared.stop.store(true, Ordering::Relaxed);
    } else {
        cpu_start = cpu::process_cpu_time();
        from = Duration::ZERO;
        to = Duration::ZERO;
    }
    let mut samples = Vec::new();
    let mut examples = BTreeMap::new();
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(r)) => {
                samples.extend(r.samples);
                for (k, v) in r.examples {
                    examples.entry(k).or_insert(v);
                }
            }
            Ok(Err(f)) => failure = Some(f),
            Err(e) => failure = Some(Failure::other(format!("a bench client failed: {e}"))),
        }
    }
    ticker.abort();
    bar.finish_and_clear();
    if let Some(f) = failure {
        return Err(f);
    }
    let cpu_end = cpu::process_cpu_time();
    if a.count.is_some() {
        let last_end = samples.iter().map(Sample::end_us).max().unwrap_or(0);
        to = Duration::from_micros(last_end + 1);
    }
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let ops: Vec<Op> = Op::ALL.into_iter().filter(|op| a.mix.has(*op)).collect();
    let summary = Summary::of(&samples, &ops, micros(from), micros(to));
    let window = (to - from).as_secs_f64();
    let client_cpu = match (cpu_start, cpu_end) {
        (Some(s), Some(e)) => {
            let seconds = e.saturating_sub(s).as_secs_f64();
            let finished = (summary.ok + summary.errors).max(1);
            Some(ClientCpu {
                seconds,
                cores: seconds / window.max(1e-6),
                per_op_ms: seconds * 1000.0 / finished as f64,
            })
        }
        _ => None,
    };
    let mut ended_on = BTreeMap::new();
    for base in &bases {
        *ended_on.entry(base.current_endpoint()).or_insert(0) += 1;
    }
    let report = Report {
        endpoints,
        routing: match a.conn.routing {
            RoutingArg::Stay => "stay",
            RoutingArg::Leader => "leader",
        },
        ended_on,
        clients: a.clients as usize,
        connections: a.connections as usize,
        threads: a.threads(),
        mix: a.mix.to_string(),
        offered_rate: a.rate,
        ksf: KSF_NOTE,
        pool,
        warmup_seconds: warmup.as_secs_f64(),
        window_seconds: window,
        summary,
        client_cpu,
        load_average: report::load_average(),
    };
    if a.json {
        let mut value = serde_json::to_value(&report)
            .map_err(|e| Failure::other(format!("encoding the report: {e}")))?;
        value["error_examples"] = serde_json::json!(examples);
        println!("{value:#}");
    } else {
        print!("{}", report.text());
        for (k, message) in &examples {
            eprintln!("example error {k}: {message}");
        }
    }
    if report.summary.ok == 0 {
        return Err(Failure::other("no operation succeeded"));
    }
    Ok(())
}
