//! The single-process bound: exactly the server-side work of a recovery, with no network
//! and no replication, on a real SoftHSM token, with the cluster benchmark's concurrency
//! over the node's HSM worker pool, on the same cores. The figure `bkv bench` is compared
//! with.
//!
//! The server side is the node's own vault service (`bkv-vault`) over `bkv-devkit`'s
//! in-memory replica, called in process, with its software share-holders (threshold 2 of
//! 3) answering in process too: per recovery,
//! - `RecoverStart`: verify the account token (one issued for this recovery, as `bkv bench`
//!   issues them), parse the attempt id and the blinded element, hash it, apply
//!   `ChargeGuess` to the `VaultState` (behind a lock, as the state machine holds it), then
//!   the share evaluations with their DLEQ proofs at `threshold` holders, each after its own
//!   check of the applied charge;
//! - `RecoverLogin`: the same token again (found in the cache of verified tokens), OPAQUE
//!   login start on the hardened password: HSM unseal of the record, the OPRF and 3DH
//!   work, HSM seal of the ticket;
//! - `RecoverFinish`: parse the finalization, HSM unseal of the ticket, OPAQUE login
//!   finish, the reset signature's check, transport encryption of the key, apply
//!   `ResetGuesses`.
//!
//! The client's side (blinding, checking and combining the evaluations, Argon2id, 3DH,
//! opening the key) runs between the timed phases and is not counted: rounds of `--batch`
//! recoveries run phase by phase, each phase with `--clients` concurrent tasks.
//! `--no-tokens` leaves token verification out.
//!
//! `cargo bench -p bkv-tests --bench bound -- --clients 64 --duration 10 [--json]`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bkv_client::flow::{ClusterTrust, LoginFinished, RegisterStarted, ShareEvaluation};
use bkv_client::{KsfParams, Login, Recovery, Registration, SecretString};
use bkv_core::ids::{AccountId, ChargeNumber, ClusterId, GuessLimit, RecordVersion, RequestId};
use bkv_core::oprf_record::SHARE_CIPHERTEXT_LEN;
use bkv_core::token::{Claims, TrustedIssuers, issue};
use bkv_core::{BackupKey, Command, OprfRecord, Outcome, SignedShareMap, StoredShare};
use bkv_devkit::testing::authorized;
use bkv_devkit::{MemoryReplica, ReplicaOptions};
use bkv_hsm::Partition;
use bkv_hsm::testing::TestToken;
use bkv_proto::v1::vault_server::Vault as _;
use bkv_proto::v1::{
    ActivateRequest, RecoverFinishRequest, RecoverLoginRequest, RecoverLoginResponse,
    RecoverStartRequest, RecoverStartResponse, RegisterStartRequest,
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
    /// `RecoverStart` on the server: the charge and the share evaluations.
    async fn recover_start(
        &self,
        token: &str,
        attempt_id: &[u8],
        blinded_element: &[u8],
    ) -> RecoverStartResponse {
        let request = RecoverStartRequest {
            attempt_id: attempt_id.to_vec(),
            blinded_element: blinded_element.to_vec(),
        };
        self.service
            .recover_start(authorized(request, token))
            .await
            .expect("recover start")
            .into_inner()
    }

    /// `RecoverLogin` on the server: the credential response and the ticket.
    async fn recover_login(
        &self,
        token: &str,
        attempt_id: &[u8],
        credential_request: &[u8],
    ) -> RecoverLoginResponse {
        let request = RecoverLoginRequest {
            attempt_id: attempt_id.to_vec(),
            credential_request: credential_request.to_vec(),
        };
        self.service
            .recover_login(authorized(request, token))
            .await
            .expect("recover login")
            .into_inner()
    }

    /// `RecoverFinish` on the server: returns the transported key and the version.
    async fn recover_finish(&self, token: &str, finish: RecoverFinishRequest) -> (Vec<u8>, u64) {
        let answer = self
            .service
            .recover_finish(authorized(finish, token))
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

/// Registers the pool (untimed) through the service, as the SDK does: RegisterStart, the
/// client's finish (share map checked against the replica's identity key, the OPRF key
/// split over its holders), RegisterFinish, Activate.
async fn register(server: &Server, issuer: &SigningKey, n: usize) -> Vec<Account> {
    let identity_key = server.replica.identity_key();
    let mut accounts = Vec::with_capacity(n);
    for i in 0..n {
        let id = AccountId::parse(&format!("bound-{i}")).expect("valid account id");
        let token = account_token(issuer, &id);
        let password = format!("bound password {i}");
        let (reg, registration_request) =
            Registration::start(&id, SecretString::from(password.clone())).expect("registration");
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
        let started = RegisterStarted {
            registration_response: response.registration_response,
            share_map: SignedShareMap::try_from(response.share_map.expect("a share map"))
                .expect("the share map decodes"),
            default_guess_limit: response.default_guess_limit,
            max_guess_limit: response.max_guess_limit,
        };
        let upload = reg
            .finish(
                &started,
                &id,
                &BackupKey::generate(),
                &KsfParams::light(),
                0,
                ClusterTrust {
                    cluster_name: AUDIENCE,
                    identity_key: &identity_key,
                },
            )
            .expect("registration finish");
        let mut request_id = vec![0u8; 16];
        OsRng.fill_bytes(&mut request_id);
        let staged = server
            .service
            .register_finish(authorized(
                bkv_tests::raw::register_finish(request_id, &upload),
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

/// Extra accounts in the state (sealed records and OPRF halves of realistic size, never
/// recovered).
fn fill(server: &Server, n: u64) {
    let Some(map) = server.replica.read(|s| {
        s.cluster()
            .and_then(|c| c.share_map.as_ref())
            .map(|m| m.map.clone())
    }) else {
        return;
    };
    let mut record = vec![0u8; 330];
    for i in 0..n {
        OsRng.fill_bytes(&mut record);
        let mut rid = [0u8; 16];
        OsRng.fill_bytes(&mut rid);
        let shares = map
            .holders
            .iter()
            .map(|h| {
                let mut commitment = [0u8; 32];
                OsRng.fill_bytes(&mut commitment);
                let mut ciphertext = vec![0u8; SHARE_CIPHERTEXT_LEN];
                OsRng.fill_bytes(&mut ciphertext);
                StoredShare {
                    node_id: h.node_id,
                    commitment,
                    ciphertext,
                }
            })
            .collect();
        let mut reset_key = [0u8; 32];
        OsRng.fill_bytes(&mut reset_key);
        let account = AccountId::parse(&format!("filler-{i}")).expect("valid account id");
        if let Outcome::Staged { version } = server.replica.apply(Command::Stage {
            account: account.clone(),
            request_id: RequestId::new(rid),
            guess_limit: GuessLimit::DEFAULT,
            sealed_record: record.clone(),
            oprf: OprfRecord {
                map_epoch: map.epoch,
                threshold: map.threshold,
                shares,
                reset_key,
                ksf: KsfParams::light(),
            },
        }) {
            server.replica.apply(Command::Activate { account, version });
        }
    }
}

/// One recovery in progress between the phases.
struct Attempt {
    account: usize,
    /// Issued for this recovery, presented on every call (as `bkv bench` does).
    token: String,
    recovery: Mutex<Option<Recovery>>,
    attempt_id: Vec<u8>,
    blinded_element: Vec<u8>,
}

/// One recovery between the client's hardening and `RecoverLogin`.
struct LoggingIn {
    token: String,
    attempt_id: Vec<u8>,
    login: Mutex<Option<Login>>,
    credential_request: Vec<u8>,
    version: u64,
    charge: u64,
    ksf: KsfParams,
}

/// One recovery between the client's finish and `RecoverFinish`.
struct Finishing {
    token: String,
    request: RecoverFinishRequest,
}

/// Takes what a phase left in a slot.
fn take<T>(slot: &Mutex<Option<T>>) -> T {
    slot.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .expect("state of the previous phase")
}

/// The evaluations of a `RecoverStart` answer, as the SDK reads them.
fn evaluations(started: &RecoverStartResponse) -> Vec<ShareEvaluation> {
    started
        .evaluations
        .iter()
        .map(|e| ShareEvaluation {
            node_id: e.node_id,
            commitment: e.commitment.clone(),
            evaluated_element: e.evaluated_element.clone(),
            proof: e.proof.clone(),
        })
        .collect()
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
    let (mut start_phase, mut login_phase, mut finish_phase) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut next_account = 0usize;
    while timed < s.duration {
        // Client: start s.batch recoveries on distinct accounts (untimed).
        let attempts: Vec<Attempt> = (0..s.batch)
            .map(|k| {
                let account = (next_account + k) % accounts.len();
                let a = &accounts[account];
                let pw = SecretString::from(a.password.clone());
                let (recovery, blinded_element) = Recovery::start(&a.id, pw).expect("blind");
                let mut attempt_id = vec![0u8; 16];
                OsRng.fill_bytes(&mut attempt_id);
                Attempt {
                    account,
                    token: account_token(&issuer, &a.id),
                    recovery: Mutex::new(Some(recovery)),
                    attempt_id,
                    blinded_element,
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
                        .recover_start(&a.token, &a.attempt_id, &a.blinded_element)
                        .await
                }
            })
            .await
        };
        let (t1, cpu1) = (Instant::now(), cpu_time());

        // Client: check and combine the evaluations, start OPAQUE (untimed).
        let logging_in: Arc<Vec<LoggingIn>> = Arc::new(
            attempts
                .iter()
                .zip(&started)
                .map(|(a, st)| {
                    let (login, credential_request) = take(&a.recovery)
                        .harden(&a.blinded_element, st.threshold, &evaluations(st))
                        .expect("the evaluations verify and combine");
                    let k = st.ksf.expect("KSF parameters");
                    LoggingIn {
                        token: a.token.clone(),
                        attempt_id: a.attempt_id.clone(),
                        login: Mutex::new(Some(login)),
                        credential_request,
                        version: st.version,
                        charge: st.charge,
                        ksf: KsfParams {
                            m_cost_kib: k.m_cost_kib,
                            t_cost: k.t_cost,
                            p_cost: k.p_cost,
                        },
                    }
                })
                .collect(),
        );

        // Server: RecoverLogin for all of them (timed).
        let (cpu2, t2) = (cpu_time(), Instant::now());
        let logged = {
            let server = server.clone();
            concurrently(logging_in.clone(), s.clients, move |items, i| {
                let server = server.clone();
                async move {
                    let l = &items[i];
                    server
                        .recover_login(&l.token, &l.attempt_id, &l.credential_request)
                        .await
                }
            })
            .await
        };
        let (t3, cpu3) = (Instant::now(), cpu_time());

        // Client: finish OPAQUE and sign the reset (untimed).
        let finished: Vec<LoginFinished> = attempts
            .iter()
            .zip(logging_in.iter())
            .zip(&logged)
            .map(|((a, l), answer)| {
                take(&l.login)
                    .finish(
                        &answer.credential_response,
                        &accounts[a.account].id,
                        &l.ksf,
                        AUDIENCE,
                        RecordVersion(l.version),
                        ChargeNumber(l.charge),
                    )
                    .expect("the right password verifies")
            })
            .collect();
        let items: Arc<Vec<Finishing>> = Arc::new(
            logging_in
                .iter()
                .zip(&logged)
                .zip(&finished)
                .map(|((l, answer), done)| Finishing {
                    token: l.token.clone(),
                    request: RecoverFinishRequest {
                        ticket: answer.ticket.clone(),
                        credential_finalization: done.credential_finalization.clone(),
                        reset_signature: done.reset_signature.to_vec(),
                    },
                })
                .collect(),
        );

        // Server: RecoverFinish for all of them (timed).
        let (cpu4, t4) = (cpu_time(), Instant::now());
        let answers = {
            let server = server.clone();
            concurrently(items, s.clients, move |items, i| {
                let server = server.clone();
                async move {
                    let f = &items[i];
                    server.recover_finish(&f.token, f.request.clone()).await
                }
            })
            .await
        };
        let (t5, cpu5) = (Instant::now(), cpu_time());

        // Client: the key opens (untimed): the work above was the real thing.
        for (done, (transported, version)) in finished.iter().zip(&answers) {
            done.session
                .open(transported, RecordVersion(*version))
                .expect("the transported key opens");
        }
        start_phase += t1 - t0;
        login_phase += t3 - t2;
        finish_phase += t5 - t4;
        timed += (t1 - t0) + (t3 - t2) + (t5 - t4);
        cpu += (cpu1 - cpu0) + (cpu3 - cpu2) + (cpu5 - cpu4);
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
        "login_phase_ms_per_recovery": login_phase.as_secs_f64() * 1000.0 / recoveries as f64,
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
