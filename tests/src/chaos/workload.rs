//! Workloads of chaos runs, each operation recorded in a [`History`]:
//!
//! - honest clients (the SDK, with failover over every node): register, recover, delete;
//!   and a "leaky" honest recovery over raw calls whose ticket and finalization an attacker
//!   later replays;
//! - attackers (raw `bkv.v1.Vault` calls to one node at a time): wrong passwords, retries of
//!   an attempt with the same bytes on other nodes, attempt ids reused with another request,
//!   forged finalizations, replayed tickets, clients that stop after the first step.
//!
//! [`ClientKit`] is what a spawned client needs (CA, token issuer, the node endpoints, which
//! change with membership); [`Canaries`] collects the passwords and backup keys used, for the
//! plaintext scan.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use bkv_client::proto::vault_client::VaultClient as RawVault;
use bkv_client::proto::{RecordState, RecoverFinishRequest, RecoverStartRequest, StatusRequest};
use bkv_client::{
    ClientConfig, KsfParams, Recovery, SecretString, TokenSource, VaultClient, VaultError,
};
use bkv_core::ids::AccountId;
use bkv_core::token::{Claims, issue};
use ed25519_dalek::SigningKey;
use rand::RngCore as _;
use tonic::Code;
use tonic::transport::Channel;

use super::history::{Entry, History, Outcome, Role, fingerprint, now_ms};
use crate::cluster::{Cluster, ISSUER_NAME};

/// What a client task needs to reach the cluster: CA, token issuer, node endpoints.
#[derive(Clone)]
pub struct ClientKit {
    ca_pem: Vec<u8>,
    issuer: SigningKey,
    cluster_name: String,
    endpoints: Arc<RwLock<BTreeMap<u64, String>>>,
    channels: Arc<Mutex<HashMap<u64, (String, Channel)>>>,
    /// Per-call timeout of clients.
    pub call_timeout: Duration,
    /// Overall deadline of an SDK call (its failover retries until then).
    pub deadline: Duration,
}

impl std::fmt::Debug for ClientKit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKit")
            .field("nodes", &self.nodes())
            .finish_non_exhaustive()
    }
}

impl ClientKit {
    /// A kit for `cluster`'s current nodes.
    pub fn new(cluster: &Cluster) -> anyhow::Result<Self> {
        let issuer =
            bkv_client::pki::read_issuer_key(&cluster.pki_dir().join(bkv_client::pki::ISSUER_KEY))?;
        let kit = Self {
            ca_pem: cluster.ca_pem().to_vec(),
            issuer,
            cluster_name: cluster.options().cluster_name.clone(),
            endpoints: Arc::default(),
            channels: Arc::default(),
            call_timeout: Duration::from_secs(3),
            deadline: Duration::from_secs(10),
        };
        kit.refresh(cluster);
        Ok(kit)
    }

    /// Takes the cluster's current nodes as the endpoints (a node added again under its id
    /// gets new ports: its cached channel goes).
    pub fn refresh(&self, cluster: &Cluster) {
        let mut map = BTreeMap::new();
        for id in cluster.ids() {
            if let Ok(n) = cluster.node(id) {
                map.insert(id, n.client_url());
            }
        }
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        channels.retain(|id, (url, _)| map.get(id) == Some(url));
        *self
            .endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner) = map;
    }

    /// The node ids known.
    pub fn nodes(&self) -> Vec<u64> {
        self.endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect()
    }

    /// A fresh account token for `account` (valid 10 minutes).
    pub fn token(&self, account: &str) -> String {
        let now = now_ms() / 1000;
        issue(
            &self.issuer,
            &Claims {
                iss: ISSUER_NAME.into(),
                sub: account.into(),
                aud: self.cluster_name.clone(),
                iat: now,
                exp: now + 600,
                nbf: None,
            },
        )
    }

    /// An SDK client for `account` over every known node, starting at a node picked by
    /// `first` (so clients spread over the nodes).
    pub async fn vault(&self, account: &str, first: usize) -> anyhow::Result<VaultClient> {
        let mut urls: Vec<String> = self
            .endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        anyhow::ensure!(!urls.is_empty(), "no endpoint");
        let n = urls.len();
        urls.rotate_left(first % n);
        let kit = self.clone();
        let account_owned = account.to_string();
        let token = TokenSource::from_fn(move || Ok(SecretString::from(kit.token(&account_owned))));
        let mut config = ClientConfig::new(urls, self.ca_pem.clone(), token);
        config.ksf = KsfParams::light();
        config.call_timeout = self.call_timeout;
        config.deadline = self.deadline;
        Ok(VaultClient::connect(config).await?)
    }

    /// A raw client of node `id`'s vault service (channel cached per node).
    pub fn raw(&self, id: u64) -> anyhow::Result<RawVault<Channel>> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, c)) = channels.get(&id) {
            return Ok(RawVault::new(c.clone()));
        }
        let url = self
            .endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no node {id}"))?;
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.ca_pem));
        let channel = tonic::transport::Endpoint::from_shared(url.clone())?
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(2))
            .timeout(self.call_timeout)
            .connect_lazy();
        channels.insert(id, (url, channel.clone()));
        Ok(RawVault::new(channel))
    }

    /// `message` with `account`'s bearer token.
    pub fn request<T>(&self, account: &str, message: T) -> anyhow::Result<tonic::Request<T>> {
        crate::raw::with_token(message, Some(&self.token(account)))
    }
}

/// The passwords and backup keys of a run: what must never appear in any file.
#[derive(Debug, Clone, Default)]
pub struct Canaries(Arc<Mutex<Vec<Vec<u8>>>>);

impl Canaries {
    /// Adds secret bytes to look for.
    pub fn add(&self, secret: &[u8]) {
        let mut v = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !v.iter().any(|s| s == secret) {
            v.push(secret.to_vec());
        }
    }

    /// Everything added so far.
    pub fn all(&self) -> Vec<Vec<u8>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A canary password: random, recognisable, never written anywhere by the test.
pub fn canary_password(canaries: &Canaries) -> String {
    let mut b = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let pw = format!("canary-pw-{}", hex::encode(b));
    canaries.add(pw.as_bytes());
    pw
}

fn classify_sdk(e: &VaultError) -> Outcome {
    match e {
        VaultError::WrongPassword { .. } => Outcome::WrongPassword,
        VaultError::Destroyed => Outcome::Destroyed,
        VaultError::NotFound => Outcome::NotFound,
        VaultError::Unavailable { .. } | VaultError::Transport(_) => Outcome::Unavailable,
        _ => Outcome::Error,
    }
}

/// How a raw call's status reads for the history.
pub fn classify_status(s: &tonic::Status) -> Outcome {
    match s.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
            Outcome::Unavailable
        }
        Code::PermissionDenied => Outcome::WrongPassword,
        Code::NotFound => Outcome::NotFound,
        Code::FailedPrecondition if s.message().contains("destroyed") => Outcome::Destroyed,
        Code::FailedPrecondition | Code::InvalidArgument => Outcome::Refused,
        _ => Outcome::Error,
    }
}

/// Honest operations through the SDK.
#[derive(Debug, Clone)]
pub struct Honest {
    /// The client's name in the history.
    pub name: String,
    /// The account it owns.
    pub account: String,
    /// Its password (a canary).
    pub password: String,
}

impl Honest {
    /// A client for `account` with a fresh canary password.
    pub fn new(name: impl Into<String>, account: impl Into<String>, canaries: &Canaries) -> Self {
        Self {
            name: name.into(),
            account: account.into(),
            password: canary_password(canaries),
        }
    }

    fn account_id(&self) -> anyhow::Result<AccountId> {
        Ok(AccountId::parse(&self.account)?)
    }

    /// Registers a fresh backup key (its bytes become a canary); returns the version when
    /// acknowledged.
    pub async fn register(
        &self,
        kit: &ClientKit,
        h: &History,
        canaries: &Canaries,
        guess_limit: Option<u32>,
        first: usize,
    ) -> anyhow::Result<Option<u64>> {
        let mut invoke = Entry::new(Role::Honest, &self.name, "register").account(&self.account);
        invoke.guess_limit = guess_limit;
        let op = h.invoke(invoke);
        let vault = kit.vault(&self.account, first).await?;
        let pw = SecretString::from(self.password.clone());
        Ok(
            match vault.register(&self.account_id()?, pw, guess_limit).await {
                Ok(r) => {
                    canaries.add(r.key.expose());
                    let v = r.version.get();
                    op.complete(Outcome::Ok, |e| {
                        e.version = Some(v);
                        e.key_fp = Some(fingerprint(r.key.expose()));
                    });
                    Some(v)
                }
                Err(err) => {
                    op.complete(classify_sdk(&err), |e| e.detail = Some(err.to_string()));
                    None
                }
            },
        )
    }

    /// Recovers the key with the right password; returns the outcome.
    pub async fn recover(
        &self,
        kit: &ClientKit,
        h: &History,
        first: usize,
    ) -> anyhow::Result<Outcome> {
        let op = h.invoke(Entry::new(Role::Honest, &self.name, "recover").account(&self.account));
        let vault = kit.vault(&self.account, first).await?;
        let pw = SecretString::from(self.password.clone());
        Ok(match vault.recover(&self.account_id()?, pw).await {
            Ok(r) => {
                let v = r.version.get();
                op.complete(Outcome::Ok, |e| {
                    e.version = Some(v);
                    e.released = true;
                    e.key_fp = Some(fingerprint(r.key.expose()));
                    e.guesses_remaining = Some(r.guesses_remaining_before);
                    e.guess_limit = Some(r.guess_limit);
                })
                .outcome
                .unwrap_or(Outcome::Error)
            }
            Err(err) => {
                let outcome = classify_sdk(&err);
                op.complete(outcome, |e| {
                    if let VaultError::WrongPassword { guesses_remaining } = err {
                        e.guesses_remaining = Some(guesses_remaining);
                        e.released = true;
                    }
                    e.detail = Some(err.to_string());
                });
                outcome
            }
        })
    }

    /// Deletes the account's records.
    pub async fn delete(
        &self,
        kit: &ClientKit,
        h: &History,
        first: usize,
    ) -> anyhow::Result<Outcome> {
        let op = h.invoke(Entry::new(Role::Honest, &self.name, "delete").account(&self.account));
        let vault = kit.vault(&self.account, first).await?;
        Ok(match vault.delete().await {
            Ok(existed) => {
                op.complete(Outcome::Ok, |e| {
                    e.detail = Some(format!("existed={existed}"))
                });
                Outcome::Ok
            }
            Err(err) => {
                let outcome = classify_sdk(&err);
                op.complete(outcome, |e| e.detail = Some(err.to_string()));
                outcome
            }
        })
    }

    /// A recovery over raw calls to `node` whose ticket and finalization are handed back
    /// for attackers to replay (as if they had read them off the wire).
    pub async fn leaky_recover(
        &self,
        kit: &ClientKit,
        h: &History,
        node: u64,
    ) -> anyhow::Result<Option<Leak>> {
        let account = self.account_id()?;
        let (recovery, credential_request) =
            Recovery::start(SecretString::from(self.password.clone()))?;
        let attempt_id = random_id();
        let mut invoke = Entry::new(Role::Honest, &self.name, "recover_start")
            .account(&self.account)
            .node(node);
        invoke.attempt = Some(hex::encode(attempt_id));
        invoke.request_hash = Some(request_hash(&credential_request));
        let op = h.invoke(invoke);
        let msg = RecoverStartRequest {
            attempt_id: attempt_id.to_vec(),
            credential_request,
        };
        let started = match kit
            .raw(node)?
            .recover_start(kit.request(&self.account, msg)?)
            .await
        {
            Ok(r) => r.into_inner(),
            Err(s) => {
                op.complete(classify_status(&s), |e| e.detail = Some(s.message().into()));
                return Ok(None);
            }
        };
        op.complete(Outcome::Ok, |e| {
            e.released = true;
            e.version = Some(started.version);
            e.guesses_remaining = Some(started.guesses_remaining);
            e.guess_limit = Some(started.guess_limit);
        });
        let (finalization, session) =
            recovery.finish(&started.credential_response, &account, &KsfParams::light())?;
        let mut invoke = Entry::new(Role::Honest, &self.name, "recover_finish")
            .account(&self.account)
            .node(node);
        invoke.version = Some(started.version);
        let op = h.invoke(invoke);
        let msg = RecoverFinishRequest {
            ticket: started.ticket.clone(),
            credential_finalization: finalization.clone(),
        };
        match kit
            .raw(node)?
            .recover_finish(kit.request(&self.account, msg)?)
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                let version = bkv_core::ids::RecordVersion(r.version);
                let key = session.open(&r.transported_key, version)?;
                op.complete(Outcome::Ok, |e| {
                    e.released = true;
                    e.version = Some(r.version);
                    e.key_fp = Some(fingerprint(key.expose()));
                });
            }
            Err(s) => {
                op.complete(classify_status(&s), |e| e.detail = Some(s.message().into()));
            }
        }
        Ok(Some(Leak {
            account: self.account.clone(),
            ticket: started.ticket,
            finalization,
        }))
    }
}

/// A ticket and finalization an attacker saw go by.
#[derive(Debug, Clone)]
pub struct Leak {
    /// The account.
    pub account: String,
    /// The ticket from `RecoverStart`.
    pub ticket: Vec<u8>,
    /// The client's finalization.
    pub finalization: Vec<u8>,
}

/// A recovery start an attacker made (to retry or replay).
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The account.
    pub account: String,
    /// The attempt id.
    pub attempt_id: [u8; 16],
    /// The credential request bytes.
    pub credential_request: Vec<u8>,
    /// The ticket, if a response came back.
    pub ticket: Option<Vec<u8>>,
}

fn random_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    id
}

/// SHA-256 of a credential request, first 16 bytes in hex (the history's `request_hash`).
pub fn request_hash(credential_request: &[u8]) -> String {
    hex::encode(&bkv_core::protocol::credential_request_hash(credential_request)[..16])
}

/// Attacks through raw calls: the attacker holds a valid account token for its victim but
/// not the password.
#[derive(Debug, Clone)]
pub struct Attacker {
    /// Its name in the history.
    pub name: String,
}

impl Attacker {
    /// An attacker named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    /// A wrong-password `RecoverStart` with a fresh attempt on `node`, stopping after the
    /// first step.
    pub async fn guess(
        &self,
        kit: &ClientKit,
        h: &History,
        account: &str,
        node: u64,
    ) -> anyhow::Result<Attempt> {
        let (_recovery, credential_request) = Recovery::start(SecretString::from(format!(
            "wrong-{}",
            hex::encode(random_id())
        )))?;
        let attempt = Attempt {
            account: account.to_string(),
            attempt_id: random_id(),
            credential_request,
            ticket: None,
        };
        self.start(kit, h, attempt, node, "recover_start").await
    }

    /// Sends `attempt` (again) to `node`: a retry when its bytes are unchanged.
    pub async fn start(
        &self,
        kit: &ClientKit,
        h: &History,
        mut attempt: Attempt,
        node: u64,
        op_name: &str,
    ) -> anyhow::Result<Attempt> {
        let mut invoke = Entry::new(Role::Attacker, &self.name, op_name)
            .account(&attempt.account)
            .node(node);
        invoke.attempt = Some(hex::encode(attempt.attempt_id));
        invoke.request_hash = Some(request_hash(&attempt.credential_request));
        let op = h.invoke(invoke);
        let msg = RecoverStartRequest {
            attempt_id: attempt.attempt_id.to_vec(),
            credential_request: attempt.credential_request.clone(),
        };
        match kit
            .raw(node)?
            .recover_start(kit.request(&attempt.account, msg)?)
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                op.complete(Outcome::Ok, |e| {
                    e.released = !r.credential_response.is_empty();
                    e.version = Some(r.version);
                    e.guesses_remaining = Some(r.guesses_remaining);
                    e.guess_limit = Some(r.guess_limit);
                });
                attempt.ticket = Some(r.ticket);
            }
            Err(s) => {
                op.complete(classify_status(&s), |e| e.detail = Some(s.message().into()));
            }
        }
        Ok(attempt)
    }

    /// Reuses `attempt`'s id with a new credential request (the vault must refuse).
    pub async fn conflict(
        &self,
        kit: &ClientKit,
        h: &History,
        attempt: &Attempt,
        node: u64,
    ) -> anyhow::Result<Attempt> {
        let (_recovery, credential_request) = Recovery::start(SecretString::from(format!(
            "wrong-{}",
            hex::encode(random_id())
        )))?;
        let other = Attempt {
            credential_request,
            ticket: None,
            ..attempt.clone()
        };
        self.start(kit, h, other, node, "recover_start").await
    }

    /// `RecoverFinish` with `ticket` and a forged finalization (random bytes of the right
    /// length): the vault must release nothing.
    pub async fn forge_finish(
        &self,
        kit: &ClientKit,
        h: &History,
        account: &str,
        ticket: &[u8],
        node: u64,
    ) -> anyhow::Result<Outcome> {
        let mut forged = vec![0u8; 64];
        rand::rngs::OsRng.fill_bytes(&mut forged);
        self.finish(kit, h, account, ticket, forged, node, "recover_finish")
            .await
    }

    /// Replays an honest client's ticket and finalization (the answer is sealed for the
    /// honest client's session, so it is worthless to the attacker; the vault must not let
    /// it undo later charges).
    pub async fn replay(
        &self,
        kit: &ClientKit,
        h: &History,
        leak: &Leak,
        node: u64,
    ) -> anyhow::Result<Outcome> {
        self.finish(
            kit,
            h,
            &leak.account,
            &leak.ticket,
            leak.finalization.clone(),
            node,
            "replay_finish",
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        kit: &ClientKit,
        h: &History,
        account: &str,
        ticket: &[u8],
        credential_finalization: Vec<u8>,
        node: u64,
        op_name: &str,
    ) -> anyhow::Result<Outcome> {
        let op = h.invoke(
            Entry::new(Role::Attacker, &self.name, op_name)
                .account(account)
                .node(node),
        );
        let msg = RecoverFinishRequest {
            ticket: ticket.to_vec(),
            credential_finalization,
        };
        Ok(
            match kit
                .raw(node)?
                .recover_finish(kit.request(account, msg)?)
                .await
            {
                Ok(r) => {
                    let r = r.into_inner();
                    op.complete(Outcome::Ok, |e| {
                        e.released = !r.transported_key.is_empty();
                        e.version = Some(r.version);
                    })
                    .outcome
                    .unwrap_or(Outcome::Error)
                }
                Err(s) => {
                    let outcome = classify_status(&s);
                    op.complete(outcome, |e| e.detail = Some(s.message().into()));
                    outcome
                }
            },
        )
    }
}

/// The record status of `account` as node `node` has it applied, recorded as a
/// `final_status` observation: `(state, version)` with state `absent`, `active` or
/// `destroyed`.
pub async fn observe_status(
    kit: &ClientKit,
    h: &History,
    account: &str,
    node: u64,
) -> anyhow::Result<(String, u64)> {
    let answer = kit
        .raw(node)?
        .status(kit.request(account, StatusRequest {})?)
        .await?
        .into_inner();
    let state = match RecordState::try_from(answer.state) {
        Ok(RecordState::Active) => "active",
        Ok(RecordState::Destroyed) => "destroyed",
        Ok(RecordState::Absent) => "absent",
        _ => "unknown",
    }
    .to_string();
    let mut e = Entry::new(Role::Observer, "observer", "final_status")
        .account(account)
        .node(node)
        .detail(state.clone());
    e.version = (answer.version != 0).then_some(answer.version);
    e.guesses_remaining = Some(answer.guess_limit.saturating_sub(answer.guesses_used));
    e.guess_limit = Some(answer.guess_limit);
    h.info(e);
    Ok((state, answer.version))
}
