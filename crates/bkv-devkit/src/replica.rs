//! [`MemoryReplica`]: the vault's state machine in one process, as a [`Backend`] of the one
//! vault service. Each command is applied at the next log position at once, as a node that
//! always leads and never loses a write would; sealing goes through any [`Sealer`] (a real
//! SoftHSM partition for the single-process bound, the software sealer for SDK tests).
//!
//! NOT a vault: no replication, no durability, no rate limits. It runs the node's own
//! request handling so that what is tested and measured above it is the product, not a copy.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bkv_core::opaque::ServerSecrets;
use bkv_core::token::TrustedIssuers;
use bkv_core::{
    AccountId, AccountStatus, AuditKind, ClusterConfig, ClusterId, Command, GuessLimit, Outcome,
    Request, Sealer, VaultState,
};
use bkv_vault::{Backend, CallReport, Serving, VaultError, VaultEvent, VaultService};
use rand::rngs::OsRng;

/// How a replica is set up.
#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    /// The cluster name: the audience account tokens must name.
    pub cluster_name: String,
    /// The cluster id (bound into every sealed blob).
    pub cluster_id: ClusterId,
    /// Guess limit of registrations that ask for none.
    pub default_guess_limit: GuessLimit,
    /// Largest guess limit a registration may ask for.
    pub max_guess_limit: GuessLimit,
    /// How long recovery tickets live, ms.
    pub ticket_ttl_ms: u64,
    /// Whether account tokens are verified. Off only for benchmarks that leave token
    /// checks out of what they measure; every call then acts for the token's unverified
    /// `sub`.
    pub verify_tokens: bool,
    /// Whether to keep every applied command, as a Raft log would (for canary scans of
    /// what a node stores; off for benchmarks, where it would only grow).
    pub keep_log: bool,
}

impl Default for ReplicaOptions {
    fn default() -> Self {
        Self {
            cluster_name: "bkv-test".into(),
            cluster_id: ClusterId::new([7; 16]),
            default_guess_limit: GuessLimit::DEFAULT,
            max_guess_limit: GuessLimit::DEFAULT,
            ticket_ttl_ms: 300_000,
            verify_tokens: true,
            keep_log: false,
        }
    }
}

struct Applied {
    state: VaultState,
    last_index: u64,
    log: Vec<Request>,
}

struct Inner<S> {
    sealer: S,
    serving: Arc<Serving>,
    issuers: TrustedIssuers,
    options: ReplicaOptions,
    applied: Mutex<Applied>,
    leader: Mutex<Option<String>>,
    charges: AtomicU64,
}

/// The vault's state machine in memory, serving through [`VaultService`]. Cheap to clone.
pub struct MemoryReplica<S>(Arc<Inner<S>>);

impl<S> Clone for MemoryReplica<S> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<S> std::fmt::Debug for MemoryReplica<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryReplica")
            .field("cluster", &self.0.options.cluster_name)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S: Sealer + Send + Sync + 'static> MemoryReplica<S> {
    /// A bootstrapped replica: fresh OPAQUE server secrets, sealed with `sealer` into the
    /// `Bootstrap` command as `bkv admin init` does, trusting `issuers`.
    pub async fn bootstrap(
        sealer: S,
        issuers: TrustedIssuers,
        options: ReplicaOptions,
    ) -> Result<Self, VaultError> {
        let secrets = ServerSecrets::generate(&mut OsRng);
        let sealed_server_setup = secrets
            .seal(&sealer, &options.cluster_id)
            .await
            .map_err(|e| VaultError::Internal(format!("sealing the server setup: {e}")))?;
        let bootstrap = Command::Bootstrap {
            cluster_id: options.cluster_id,
            cluster_name: options.cluster_name.clone(),
            sealed_server_setup,
            key_check_value: [0; 3],
            key_id: [0; 8],
            default_guess_limit: options.default_guess_limit,
            max_guess_limit: options.max_guess_limit,
        };
        let mut state = VaultState::default();
        let applied = state.apply(
            1,
            &Request {
                at_unix_ms: now_unix_ms(),
                command: bootstrap,
            },
        );
        if applied.outcome != Outcome::Bootstrapped {
            return Err(VaultError::Internal(format!(
                "bootstrap refused: {:?}",
                applied.outcome
            )));
        }
        let cluster: ClusterConfig = state
            .cluster()
            .cloned()
            .ok_or_else(|| VaultError::Internal("bootstrap left no cluster".into()))?;
        Ok(Self(Arc::new(Inner {
            sealer,
            serving: Arc::new(Serving { secrets, cluster }),
            issuers,
            options,
            applied: Mutex::new(Applied {
                state,
                last_index: 1,
                log: Vec::new(),
            }),
            leader: Mutex::new(None),
            charges: AtomicU64::new(0),
        })))
    }

    /// The vault service over this replica.
    pub fn service(&self) -> VaultService<Self> {
        VaultService::new(self.clone())
    }

    /// Makes successful answers name `leader` (a client address) from now on, as nodes
    /// name theirs, or nothing.
    pub fn set_leader(&self, leader: Option<String>) {
        *lock(&self.0.leader) = leader;
    }

    /// Reads the applied state.
    pub fn read<R>(&self, f: impl FnOnce(&VaultState) -> R) -> R {
        f(&lock(&self.0.applied).state)
    }

    /// How many new guesses were charged in all (retries of a charged attempt not counted).
    pub fn charges(&self) -> u64 {
        self.0.charges.load(Ordering::Relaxed)
    }

    /// The commands applied since the bootstrap, with their proposer's clock, when the
    /// replica keeps its log ([`ReplicaOptions::keep_log`]).
    pub fn log(&self) -> Vec<Request> {
        lock(&self.0.applied).log.clone()
    }

    /// Applies `command` at the next log position and returns its outcome.
    pub fn apply(&self, command: Command) -> Outcome {
        let request = Request {
            at_unix_ms: now_unix_ms(),
            command,
        };
        let mut applied = lock(&self.0.applied);
        applied.last_index += 1;
        let index = applied.last_index;
        let result = applied.state.apply(index, &request);
        if self.0.options.keep_log {
            applied.log.push(request);
        }
        drop(applied);
        let charged = result
            .events
            .iter()
            .filter(|e| e.kind == AuditKind::GuessCharged)
            .count();
        self.0.charges.fetch_add(charged as u64, Ordering::Relaxed);
        result.outcome
    }
}

impl<S: Sealer + Send + Sync + 'static> Backend for MemoryReplica<S> {
    type Sealer = S;

    fn sealer(&self) -> &S {
        &self.0.sealer
    }

    fn serving(&self) -> Result<Arc<Serving>, VaultError> {
        Ok(self.0.serving.clone())
    }

    fn verify_token(&self, token: &str) -> Result<AccountId, VaultError> {
        if !self.0.options.verify_tokens {
            return unverified_account(token);
        }
        self.0
            .issuers
            .verify_cached(token, &self.0.options.cluster_name, now_unix_ms() / 1000)
            .map(|v| v.account)
            .map_err(|e| VaultError::Unauthenticated(e.to_string()))
    }

    async fn commit(&self, command: Command) -> Result<Outcome, VaultError> {
        Ok(self.apply(command))
    }

    fn account_status(&self, account: &AccountId) -> AccountStatus {
        self.read(|s| s.account_status(account))
    }

    fn admit_recovery(&self, _: &AccountId, _: Option<IpAddr>) -> Result<(), VaultError> {
        Ok(())
    }

    fn now_unix_ms(&self) -> u64 {
        now_unix_ms()
    }

    fn ticket_ttl_ms(&self) -> u64 {
        self.0.options.ticket_ttl_ms
    }

    fn leader_client_addr(&self) -> Option<String> {
        lock(&self.0.leader).clone()
    }

    fn observe_call(&self, _: &CallReport<'_>) {}

    fn observe(&self, _: VaultEvent) {}
}

/// The account a JWT's `sub` names, read without checking anything else.
fn unverified_account(token: &str) -> Result<AccountId, VaultError> {
    let refused = || VaultError::Unauthenticated("no readable sub claim".into());
    let claims = token.split('.').nth(1).ok_or_else(refused)?;
    let bytes = URL_SAFE_NO_PAD.decode(claims).map_err(|_| refused())?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| refused())?;
    let sub = claims
        .get("sub")
        .and_then(|s| s.as_str())
        .ok_or_else(refused)?;
    AccountId::parse(sub).map_err(|e| VaultError::Unauthenticated(format!("sub: {e}")))
}

/// The current time, Unix milliseconds.
fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
