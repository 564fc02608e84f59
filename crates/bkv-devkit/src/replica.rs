//! [`MemoryReplica`]: the vault's state machine in one process, as a [`Backend`] of the one
//! vault service. Each command is applied at the next log position at once, as a node that
//! always leads and never loses a write would; sealing goes through any [`Sealer`] (a real
//! SoftHSM partition for the single-process bound, the software sealer for SDK tests). The
//! threshold OPRF's share-holders are software ones (`soft_holder`) running the node's own
//! share-holder rules; the share map is signed by an identity key the replica makes.
//!
//! NOT a vault: no replication, no durability, no rate limits. It runs the node's own
//! request handling so that what is tested and measured above it is the product, not a copy.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::soft_holder::{MemoryLedgers, ReplicaState, SoftHolder, SoftKeys};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bkv_core::clock::now_unix_ms;
use bkv_core::opaque::ServerSecrets;
use bkv_core::share_map::threshold_for;
use bkv_core::token::TrustedIssuers;
use bkv_core::{
    AccountId, AccountStatus, AttemptId, AttemptView, AuditKind, ClusterConfig, ClusterId, Command,
    GuessLimit, OprfRecord, Outcome, RecordStatus, Request, Sealer, ShareHolder as MapHolder,
    ShareMap, SignedShareMap, VaultState,
};
use bkv_vault::holder::{EvalRequest, Evaluated, RefreshTask};
use bkv_vault::{Backend, CallReport, Serving, VaultError, VaultEvent, VaultService};
use ed25519_dalek::{Signer as _, SigningKey};
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
    /// How many share-holders the share map names (node ids 1..=n).
    pub share_holders: u64,
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
            share_holders: 3,
        }
    }
}

/// The applied state and the log that led to it.
pub(crate) struct Applied {
    pub(crate) state: VaultState,
    last_index: u64,
    log: Vec<Request>,
}

struct Inner<S> {
    sealer: S,
    serving: Arc<Serving>,
    issuers: TrustedIssuers,
    options: ReplicaOptions,
    applied: Arc<Mutex<Applied>>,
    leader: Mutex<Option<String>>,
    charges: AtomicU64,
    identity: SigningKey,
    holders: Vec<SoftHolder>,
    /// Holders that never answer (as a stopped node does until the call times out).
    hung: Mutex<std::collections::BTreeSet<u64>>,
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
    /// `Bootstrap` command as `bkv admin init` does, trusting `issuers`; then a share map of
    /// `options.share_holders` software holders, signed by a fresh identity key.
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
        let identity = SigningKey::generate(&mut OsRng);
        let bootstrap = Command::Bootstrap {
            cluster_id: options.cluster_id,
            cluster_name: options.cluster_name.clone(),
            sealed_server_setup,
            key_check_value: [0; 3],
            key_id: [0; 8],
            default_guess_limit: options.default_guess_limit,
            max_guess_limit: options.max_guess_limit,
            identity_key: identity.verifying_key().to_bytes(),
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
        let applied = Arc::new(Mutex::new(Applied {
            state,
            last_index: 1,
            log: Vec::new(),
        }));
        let keys: Vec<SoftKeys> = (0..options.share_holders.max(1))
            .map(|_| SoftKeys::generate())
            .collect();
        let map = ShareMap {
            cluster_name: options.cluster_name.clone(),
            epoch: 1,
            threshold: u16::try_from(threshold_for(keys.len()))
                .map_err(|_| VaultError::Internal("too many share-holders".into()))?,
            holders: keys
                .iter()
                .zip(1u64..)
                .map(|(k, node_id)| MapHolder {
                    node_id,
                    receive_key: k.receive_public(),
                })
                .collect(),
        };
        let encoded = map.encode();
        let signed = SignedShareMap {
            signature: identity.sign(&encoded).to_bytes(),
            encoded,
        };
        let holders = keys
            .into_iter()
            .zip(1u64..)
            .map(|(k, node_id)| {
                let receive = k.receive_key();
                SoftHolder::new(
                    node_id,
                    receive,
                    k,
                    MemoryLedgers::default(),
                    ReplicaState(applied.clone()),
                )
            })
            .collect();
        let replica = Self(Arc::new(Inner {
            sealer,
            serving: Arc::new(Serving { secrets, cluster }),
            issuers,
            options,
            applied,
            leader: Mutex::new(None),
            charges: AtomicU64::new(0),
            identity,
            holders,
            hung: Mutex::default(),
        }));
        match replica.apply(Command::SetShareMap { map: signed }) {
            Outcome::ShareMapSet { .. } => Ok(replica),
            other => Err(VaultError::Internal(format!(
                "the share map was refused: {other:?}"
            ))),
        }
    }

    /// Makes share-holder `node_id` never answer an evaluation (`true`), as a stopped node,
    /// or answer again (`false`).
    pub fn hang_holder(&self, node_id: u64, hung: bool) {
        let mut set = self.0.hung.lock().unwrap_or_else(PoisonError::into_inner);
        if hung {
            set.insert(node_id);
        } else {
            set.remove(&node_id);
        }
    }

    /// The cluster identity public key that signed the share map: what clients pin.
    pub fn identity_key(&self) -> [u8; 32] {
        self.0.identity.verifying_key().to_bytes()
    }

    /// The share-holders (node ids 1..=n), for tests that play one of them.
    pub fn share_holders(&self) -> &[SoftHolder] {
        &self.0.holders
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

    /// Puts `state` in place of the applied state, as every holder reads it, and returns
    /// the one it replaces: a test plays a node restarted on an older state (replayed up
    /// to a commit index saved before what it had applied) and then caught up again.
    pub fn swap_state(&self, state: VaultState) -> VaultState {
        std::mem::replace(&mut lock(&self.0.applied).state, state)
    }

    /// Erases the shares of records that are gone or that a refresh replaced (installing
    /// the new share first, which takes over the old one's counters), on every holder
    /// (what a node's sweep does); returns how many were erased.
    pub async fn sweep_shares(&self) -> Result<u64, VaultError> {
        let mut erased = 0;
        for holder in &self.0.holders {
            let mut after = None;
            loop {
                let (sweep, next) = holder.sweep(after, 1024).await?;
                erased += sweep.erased;
                match next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
        }
        Ok(erased)
    }

    /// Refreshes the shares of `account`'s active record as a node's refresh pass does:
    /// every holder of it in the share map deals a sharing of zero, each adds the pieces
    /// dealt to it, and `RefreshShares` puts the new shares in the record. Each holder
    /// installs its new share (taking over the old one's counters and erasing it) when it
    /// is next asked to evaluate or swept. Returns the command's outcome.
    pub async fn refresh_shares(&self, account: &AccountId) -> Result<Outcome, VaultError> {
        let found = self.read(|s| {
            let map = s.cluster()?.share_map.as_ref()?.map.clone();
            let record = s.active_record(account)?;
            Some((map, record))
        });
        let Some((map, record)) = found else {
            return Err(VaultError::no_record());
        };
        let participants: Vec<u64> = record
            .oprf
            .holders()
            .filter(|h| map.holder(*h).is_some())
            .collect();
        let task = RefreshTask {
            account: account.clone(),
            version: record.version,
            participants: participants.clone(),
        };
        let holder = |id: u64| {
            self.0
                .holders
                .iter()
                .find(|h| h.node_id() == id)
                .ok_or_else(|| VaultError::Internal(format!("no holder {id}")))
        };
        let mut dealt = Vec::with_capacity(participants.len());
        for id in &participants {
            dealt.push(
                holder(*id)?
                    .refresh_deal(&task)
                    .await
                    .map_err(|e| VaultError::Internal(e.to_string()))?,
            );
        }
        let mut shares = Vec::with_capacity(participants.len());
        for (b, id) in participants.iter().enumerate() {
            let mine: Vec<_> = dealt.iter().map(|d: &Vec<_>| d[b].clone()).collect();
            shares.push(
                holder(*id)?
                    .refresh_apply(&task, &mine)
                    .await
                    .map_err(|e| VaultError::Internal(e.to_string()))?,
            );
        }
        Ok(self.apply(Command::RefreshShares {
            account: account.clone(),
            version: record.version,
            from: record.oprf.shares_digest(),
            shares,
        }))
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
            .map_err(|e| VaultError::from_token(&e))
    }

    async fn commit(&self, command: Command) -> Result<Outcome, VaultError> {
        Ok(self.apply(command))
    }

    fn account_status(&self, account: &AccountId) -> AccountStatus {
        self.read(|s| s.account_status(account))
    }

    fn cluster(&self) -> Result<ClusterConfig, VaultError> {
        self.read(|s| s.cluster().cloned())
            .ok_or_else(|| VaultError::unavailable("not bootstrapped"))
    }

    async fn attempt(&self, account: &AccountId, attempt_id: &AttemptId) -> AttemptView {
        self.read(|s| s.attempt(account, attempt_id))
    }

    fn active_oprf(&self, account: &AccountId) -> Option<OprfRecord> {
        self.read(|s| match s.account_status(account).record {
            RecordStatus::Active { version, .. } => s.active_oprf(account, version).map(|a| a.0),
            _ => None,
        })
    }

    fn share_candidates(&self, holders: &[u64], _turn: u64) -> Vec<u64> {
        holders.to_vec()
    }

    fn is_local(&self, holder: u64) -> bool {
        // The first holder plays the serving node; the others' answers are checked as a
        // node checks its peers'.
        holder == 1
    }

    async fn evaluate_share(
        &self,
        holder: u64,
        request: &EvalRequest,
    ) -> Result<Evaluated, VaultError> {
        let hung = self
            .0
            .hung
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&holder);
        if hung {
            return std::future::pending().await;
        }
        let index = usize::try_from(holder.saturating_sub(1)).unwrap_or(usize::MAX);
        let holder = self
            .0
            .holders
            .get(index)
            .ok_or_else(|| VaultError::unavailable("no such share-holder"))?;
        holder
            .evaluate(request, std::time::Duration::ZERO)
            .await
            .map_err(|e| VaultError::Internal(e.to_string()))
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
    let refused = || VaultError::from_token(&bkv_core::token::TokenError::MissingClaim("sub"));
    let claims = token.split('.').nth(1).ok_or_else(refused)?;
    let bytes = URL_SAFE_NO_PAD.decode(claims).map_err(|_| refused())?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| refused())?;
    let sub = claims
        .get("sub")
        .and_then(|s| s.as_str())
        .ok_or_else(refused)?;
    AccountId::parse(sub)
        .map_err(|e| VaultError::from_token(&bkv_core::token::TokenError::BadSubject(e)))
}
