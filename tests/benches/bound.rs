//! The single-process bound: exactly the server-side work of a recovery, with no network
//! and no replication, on a real SoftHSM token, with the cluster benchmark's concurrency
//! over the node's HSM worker pool, on the same cores. The figure `bkv bench` is compared
//! with.
//!
//! The server side is the node's own vault service (`bkv-vault`) over `bkv-devkit`'s
//! in-memory replica, called in process: per recovery,
//! - `RecoverStart`: verify the account token (one issued for this recovery, as `bkv bench`
//!   issues them), parse the attempt id and the credential request, hash it, apply
//!   `ChargeGuess` to the `VaultState` (behind a lock, as the state machine holds it), then
//!   OPAQUE login start: HSM unseal of the record, the OPRF and 3DH work, HSM seal of the
//!   ticket;
//! - `RecoverFinish`: the same token again (found in the cache of verified tokens), parse
//!   the finalization, HSM unseal of the ticket, OPAQUE login finish, transport encryption
//!   of the key, apply `ResetGuesses`.
//!
//! The client's side (blinding, Argon2id, 3DH, opening the key) runs between the two timed
//! phases and is not counted: rounds of `--batch` recoveries run phase by phase, each phase
//! with `--clients` concurrent tasks. `--no-tokens` leaves token verification out.
//!
//! `cargo bench -p bkv-tests --bench bound -- --clients 64 --duration 10 [--json]`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bkv_client::{KsfParams, Recovery, Registration, SecretString};
use bkv_core::ids::{AccountId, ClusterId, GuessLimit, RequestId};
use bkv_core::token::{Claims, TrustedIssuers, issue};
use bkv_core::{BackupKey, Command, Outcome};
use bkv_devkit::testing::authorized;
use bkv_devkit::{MemoryReplica, ReplicaOptions};
use bkv_hsm::Partition;
use bkv_hsm::testing::TestToken;
use bkv_proto::v1::vault_server::Vault as _;
use bkv_proto::v1::{
    ActivateRequest, RecoverFinishRequest, RecoverStartRequest, RegisterFinishRequest,
    RegisterStartRequest,
};
use bkv_vault::VaultService;
use ed25519_dalek::SigningKey;
use rand::RngCore as _;
use rand::rngs::OsRng;

const AUDIENCE: &str = "bench";
const ISSUER: &str = "bench-issuer";
const TICKET_TTL_MS: u64 = 300_000;

/// Command-line settings.
#[derive(Debug, Clone)]
struct Settings {
    clients: usize,
    hsm_workers: usize,
    threads: usize,
    duration: Duration,
    batch: usize,
    accounts: usize,
    filler: u64,
    tokens: bool,
    json: bool,
}

impl Settings {
    fn parse() -> Result<Self, String> {
        let mut s = Self {
            clients: 64,
            hsm_workers: bkv_hsm::DEFAULT_WORKERS,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            duration: Duration::from_secs(10),
            batch: 1024,
            accounts: 0,
            filler: 0,
            tokens: true,
            json: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .ok_or_else(|| format!("{name} needs a value"))
                    .and_then(|v| {
                        v.parse::<f64>()
                            .map_err(|_| format!("{name}: {v:?} is not a number"))
                    })
            };
            match arg.as_str() {
                // cargo bench passes --bench to every bench binary.
                "--bench" => {}
                "--clients" => s.clients = value("--clients")? as usize,
                "--hsm-workers" => s.hsm_workers = value("--hsm-workers")? as usize,
                "--threads" => s.threads = value("--threads")? as usize,
                "--duration" => s.duration = Duration::from_secs_f64(value("--duration")?),
                "--batch" => s.batch = value("--batch")? as usize,
                "--accounts" => s.accounts = value("--accounts")? as usize,
                "--filler" => s.filler = value("--filler")? as u64,
                "--no-tokens" => s.tokens = false,
                "--json" => s.json = true,
                "--help" | "-h" => {
                    return Err(
                        "options: --clients N (64) --hsm-workers N (2) --threads N (CPUs) \
                         --duration SECS (10) --batch N (1024) --accounts N (batch) \
                         --filler N (extra accounts in the state, 0) --no-tokens --json"
                            .into(),
                    );
                }
                other => return Err(format!("unknown argument {other:?} (try --help)")),
            }
        }
        if s.clients == 0 || s.threads == 0 || s.hsm_workers == 0 || s.batch == 0 {
            return Err(
                "--clients, --threads, --hsm-workers and --batch must be at least 1".into(),
            );
        }
        s.accounts = s.accounts.max(s.batch);
        Ok(s)
    }
}

/// One pool account: what the client knows and what the server's state holds.
struct Account {
    id: AccountId,
    password: String,
}

/// The server side: the vault service over an in-memory replica sealing with a real token.
struct Server {
    replica: MemoryReplica<Partition>,
    service: VaultService<MemoryReplica<Partition>>,
}

impl Server {
    /// `RecoverStart` on the server: returns the credential response and the ticket.
    async fn recover_start(
        &self,
        token: &str,
        attempt_id: &[u8],
        credential_request: &[u8],
    ) -> (Vec<u8>, Vec<u8>) {
        let request = RecoverStartRequest {
            attempt_id: attempt_id.to_vec(),
            credential_request: credential_request.to_vec(),
        };
        let answer = self
            .service
            .recover_start(authorized(request, token))
            .await
            .expect("recover start")
            .into_inner();
        (answer.credential_response, answer.ticket)
    }

    /// `RecoverFinish` on the server: returns the transported key and the version.
    async fn recover_finish(
        &self,
        token: &str,
        ticket: &[u8],
        finalization: &[u8],
    ) -> (Vec<u8>, u64) {
        let request = RecoverFinishRequest {
            ticket: ticket.to_vec(),
            credential_finalization: finalization.to_vec(),
        };
        let answer = self
            .service
            .recover_finish(authorized(request, token))
            .await
            .expect("recover finish")
            .into_inner();
        (answer.transported_key, answer.version)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// User + system CPU time of this process (all threads), from /proc (USER_HZ = 100).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Runs `f` on every item with `clients` concurrent tasks; returns the results in order.
async fn concurrently<I, O, F, Fut>(items: Arc<Vec<I>>, clients: usize, f: F) -> Vec<O>
where
    I: Send + Sync + 'static,
    O: Send + 'static,
    F: Fn(Arc<Vec<I>>, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = O> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients.min(items.len()) {
        let (items, next, f) = (items.clone(), next.clone(), f.clone());
        tasks.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= items.len() {
                    return out;
                }
                out.push((i, f(items.clone(), i).await));
            }
        });
    }
    let mut all = Vec::with_capacity(items.len());
    while let Some(done) = tasks.join_next().await {
        all.extend(done.expect("bench task"));
    }
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, o)| o).collect()
}

/// A token for `account`, as its app would fetch one before a recovery.
fn account_token(issuer: &SigningKey, account: &AccountId) -> String {
    let now = now_ms() / 1000;
    issue(
        issuer,
        &Claims {
            iss: ISSUER.into(),
            sub: account.as_str().into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + 3000,
            nbf: None,
        },
    )
}

/// Registers the pool (untimed) through the service: RegisterStart, RegisterFinish,
/// Activate.
async fn register(server: &Server, issuer: &SigningKey, n: usize) -> Vec<Account> {
    let mut accounts = Vec::with_capacity(n);
    for i in 0..n {
        let id = AccountId::parse(&format!("bound-{i}")).expect("valid account id");
        let token = account_token(issuer, &id);
        let password = format!("bound password {i}");
        let (reg, registration_request) =
            Registration::start(SecretString::from(password.clone())).expect("registration");
        let response = server
            .service
            .register_start(authorized(
                RegisterStartRequest {
                    registration_request,
                },
                &token,
            ))
            .await
            .expect("register start")
            .into_inner();
        let upload = reg
            .finish(
                &response.registration_response,
                &id,
                &BackupKey::generate(),
                &KsfParams::light(),
            )
            .expect("registration finish");
        let mut request_id = vec![0u8; 16];
        OsRng.fill_bytes(&mut request_id);
        let staged = server
            .service
            .register_finish(authorized(
                RegisterFinishRequest {
                    request_id,
                    registration_upload: upload.registration_upload,
                    sealed_key: upload.sealed_key,
                    guess_limit: 0,
                },
                &token,
            ))
            .await
            .expect("register finish")
            .into_inner();
        server
            .service
            .activate(authorized(
                ActivateRequest {
                    version: staged.version,
                },
                &token,
            ))
            .await
            .expect("activate");
        accounts.push(Account { id, password });
    }
    accounts
}

/// Extra accounts in the state (sealed records of realistic size, never recovered).
fn fill(server: &Server, n: u64) {
    let mut record = vec![0u8; 330];
    for i in 0..n {
        OsRng.fill_bytes(&mut record);
        let mut rid = [0u8; 16];
        OsRng.fill_bytes(&mut rid);
        let account = AccountId::parse(&format!("filler-{i}")).expect("valid account id");
        if let Outcome::Staged { version } = server.replica.apply(Command::Stage {
            account: account.clone(),
            request_id: RequestId::new(rid),
            guess_limit: GuessLimit::DEFAULT,
            sealed_record: record.clone(),
        }) {
            server.replica.apply(Command::Activate { account, version });
        }
    }
}

/// One recovery in progress between the phases.
struct Attempt {
    account: usize,
    /// Issued for this recovery, presented on both calls (as `bkv bench` does).
    token: String,
    recovery: Mutex<Option<Recovery>>,
    attempt_id: Vec<u8>,
    credential_request: Vec<u8>,
}

/// One recovery between the client's finish and `RecoverFinish`.
struct Finishing {
    token: String,
    ticket: Vec<u8>,
    finalization: Vec<u8>,
}

async fn run(s: Settings) -> serde_json::Value {
    let token = TestToken::new();
    let mut config = token.config();
    config.workers = s.hsm_workers;
    let hsm = Partition::open(config).await.expect("open the token");
    hsm.generate_cluster_key().await.expect("cluster key");
    let issuer = SigningKey::generate(&mut OsRng);
    let mut issuers = TrustedIssuers::new(3600, 60);
    issuers.insert(ISSUER, issuer.verifying_key());
    let mut cluster_id = [0u8; 16];
    OsRng.fill_bytes(&mut cluster_id);
    let options = ReplicaOptions {
        cluster_name: AUDIENCE.into(),
        cluster_id: ClusterId::new(cluster_id),
        ticket_ttl_ms: TICKET_TTL_MS,
        verify_tokens: s.tokens,
        ..ReplicaOptions::default()
    };
    let replica = MemoryReplica::bootstrap(hsm, issuers, options)
        .await
        .expect("bootstrap");
    let server = Arc::new(Server {
        service: replica.service(),
        replica,
    });
    let setup = Instant::now();
    fill(&server, s.filler);
    let accounts = Arc::new(register(&server, &issuer, s.accounts).await);
    eprintln!(
        "bound: {} accounts registered and {} filler accounts in {:.1} s; measuring for {:.0} s",
        s.accounts,
        s.filler,
        setup.elapsed().as_secs_f64(),
        s.duration.as_secs_f64()
    );

    let mut timed = Duration::ZERO;
    let mut cpu = Duration::ZERO;
    let mut recoveries = 0u64;
    let (mut start_phase, mut finish_phase) = (Duration::ZERO, Duration::ZERO);
    let mut next_account = 0usize;
    while timed < s.duration {
        // Client: start s.batch recoveries on distinct accounts (untimed).
        let attempts: Vec<Attempt> = (0..s.batch)
            .map(|k| {
                let account = (next_account + k) % accounts.len();
                let pw = SecretString::from(accounts[account].password.clone());
                let (recovery, credential_request) = Recovery::start(pw).expect("login start");
                let mut attempt_id = vec![0u8; 16];
                OsRng.fill_bytes(&mut attempt_id);
                Attempt {
                    account,
                    token: account_token(&issuer, &accounts[account].id),
                    recovery: Mutex::new(Some(recovery)),
                    attempt_id,
                    credential_request,
                }
            })
            .collect();
        next_account = (next_account + s.batch) % accounts.len();
        let attempts = Arc::new(attempts);

        // Server: RecoverStart for all of them (timed).
        let (cpu0, t0) = (cpu_time(), Instant::now());
        let started = {
            let server = server.clone();
            concurrently(attempts.clone(), s.clients, move |items, i| {
                let server = server.clone();
                async move {
                    let a = &items[i];
                    server
                        .recover_start(&a.token, &a.attempt_id, &a.credential_request)
                        .await
                }
            })
            .await
        };
        let (t1, cpu1) = (Instant::now(), cpu_time());

        // Client: finish OPAQUE (untimed).
        let finished: Vec<(Vec<u8>, Vec<u8>, bkv_client::RecoverySession)> = attempts
            .iter()
            .zip(started)
            .map(|(a, (response, ticket))| {
                let recovery = a
                    .recovery
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take()
                    .expect("recovery state");
                let (fin, session) = recovery
                    .finish(&response, &accounts[a.account].id, &KsfParams::light())
                    .expect("the right password verifies");
                (ticket, fin, session)
            })
            .collect();
        let items: Arc<Vec<Finishing>> = Arc::new(
            attempts
                .iter()
                .zip(&finished)
                .map(|(a, (ticket, fin, _))| Finishing {
                    token: a.token.clone(),
                    ticket: ticket.clone(),
                    finalization: fin.clone(),
                })
                .collect(),
        );

        // Server: RecoverFinish for all of them (timed).
        let (cpu2, t2) = (cpu_time(), Instant::now());
        let answers = {
            let server = server.clone();
            concurrently(items, s.clients, move |items, i| {
                let server = server.clone();
                async move {
                    let f = &items[i];
                    server
                        .recover_finish(&f.token, &f.ticket, &f.finalization)
                        .await
                }
            })
            .await
        };
        let (t3, cpu3) = (Instant::now(), cpu_time());

        // Client: the key opens (untimed): the work above was the real thing.
        for ((_, _, session), (transported, version)) in finished.iter().zip(&answers) {
            session
                .open(transported, bkv_core::RecordVersion(*version))
                .expect("the transported key opens");
        }
        start_phase += t1 - t0;
        finish_phase += t3 - t2;
        timed += (t1 - t0) + (t3 - t2);
        cpu += (cpu1 - cpu0) + (cpu3 - cpu2);
        recoveries += s.batch as u64;
    }
    let per_second = recoveries as f64 / timed.as_secs_f64();
    let cpu_ms = cpu.as_secs_f64() * 1000.0 / recoveries as f64;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    serde_json::json!({
        "recoveries": recoveries,
        "seconds": timed.as_secs_f64(),
        "per_second": per_second,
        "start_phase_ms_per_recovery": start_phase.as_secs_f64() * 1000.0 / recoveries as f64,
        "finish_phase_ms_per_recovery": finish_phase.as_secs_f64() * 1000.0 / recoveries as f64,
        "cpu_seconds": cpu.as_secs_f64(),
        "cpu_ms_per_recovery": cpu_ms,
        "clients": s.clients,
        "hsm_workers": s.hsm_workers,
        "threads": s.threads,
        "batch": s.batch,
        "accounts": s.accounts,
        "filler_accounts": s.filler,
        "token_verification": s.tokens,
        "load_average": load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    })
}

fn main() {
    let settings = match Settings::parse() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bound: {e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let json = settings.json;
    let report = runtime.block_on(run(settings));
    if json {
        println!("{report:#}");
    } else {
        println!(
            "bound: {:.0} recoveries/s ({} recoveries in {:.1} s of server work; {} clients, {} HSM \
             workers, {} threads; token verification {}); server CPU {:.3} ms per recovery; load {}",
            report["per_second"].as_f64().unwrap_or(0.0),
            report["recoveries"],
            report["seconds"].as_f64().unwrap_or(0.0),
            report["clients"],
            report["hsm_workers"],
            report["threads"],
            if report["token_verification"].as_bool().unwrap_or(false) {
                "on"
            } else {
                "off"
            },
            report["cpu_ms_per_recovery"].as_f64().unwrap_or(0.0),
            report["load_average"].as_str().unwrap_or("?"),
        );
    }
}
