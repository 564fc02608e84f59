//! [`Node`]: one running vault node: its HSM partition, its Raft, its readiness, and the
//! operations the gRPC services share (authentication, writes, readiness checks).
//!
//! A node serves clients only when its token holds the cluster key, that key's check value
//! and id equal the ones in the replicated `Bootstrap`, and it has unsealed the OPAQUE server
//! setup with it. A background task keeps that judgement current (see [`Readiness`]).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use bkv_core::opaque::ServerSecrets;
use bkv_core::token::TrustedIssuers;
use bkv_core::{AccountId, Command, Outcome, Request as CoreRequest};
use bkv_hsm::{ClusterKeyInfo, Partition};
use bkv_raft::{BkvNode, RaftNode, StateHandle, WriteError, Writer};
use tokio::sync::watch;

use crate::audit_log::AccountHasher;
use crate::config::NodeConfig;
use crate::error::VaultError;
use crate::limits::RateLimits;
use crate::metrics::{CallTimer, Metrics};
use crate::sealer::MeteredSealer;
use crate::shares::NodeShares;
use crate::tls::TlsMaterial;
use bkv_vault::Serving;

/// Whether the node serves clients, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Ready: cluster key present and matching, server setup unsealed, quorum in reach.
    Serving,
    /// Not ready, with the reason operators and clients see.
    NotServing(String),
}

impl Readiness {
    /// Whether the node serves.
    pub fn is_serving(&self) -> bool {
        matches!(self, Self::Serving)
    }
}

/// Why a readiness check failed: the node's own set-up, or the cluster around it.
enum NotReady {
    /// Key, Bootstrap or server setup missing or inconsistent.
    Setup(String),
    /// No leader or no quorum; the node's own set-up is fine.
    Quorum(String),
}

struct Inner {
    config: NodeConfig,
    hsm: Partition,
    sealer: MeteredSealer,
    raft: RaftNode,
    writer: Writer,
    issuers: TrustedIssuers,
    tls: TlsMaterial,
    serving: RwLock<Option<Arc<Serving>>>,
    key: RwLock<Option<ClusterKeyInfo>>,
    readiness: watch::Sender<Readiness>,
    shutting_down: AtomicBool,
    metrics: Metrics,
    limits: RateLimits,
    hasher: watch::Sender<Option<AccountHasher>>,
    shares: OnceLock<Arc<NodeShares>>,
}

/// A running node. Cheap to clone.
#[derive(Clone)]
pub struct Node(Arc<Inner>);

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.0.config.node_id)
            .finish_non_exhaustive()
    }
}

pub use bkv_core::clock::now_unix_ms;

impl Node {
    /// Assembles a node from its opened parts.
    pub fn new(
        config: NodeConfig,
        hsm: Partition,
        raft: RaftNode,
        issuers: TrustedIssuers,
        tls: TlsMaterial,
        metrics: Metrics,
        hasher: watch::Sender<Option<AccountHasher>>,
    ) -> Self {
        let writer = raft.writer();
        let limits = RateLimits::new(&config.limits);
        let (readiness, _) = watch::channel(Readiness::NotServing("starting".into()));
        let sealer = MeteredSealer::new(hsm.clone(), metrics.clone());
        Self(Arc::new(Inner {
            config,
            hsm,
            sealer,
            raft,
            writer,
            issuers,
            tls,
            serving: RwLock::new(None),
            key: RwLock::new(None),
            readiness,
            shutting_down: AtomicBool::new(false),
            metrics,
            limits,
            hasher,
            shares: OnceLock::new(),
        }))
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.0.config
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.0.config.node_id
    }

    /// The HSM partition (key management: ceremony, init).
    pub fn hsm(&self) -> &Partition {
        &self.0.hsm
    }

    /// The HSM as a sealer, measured: what the vault's protocol code seals with.
    pub fn sealer(&self) -> &MeteredSealer {
        &self.0.sealer
    }

    /// The node's Raft.
    pub fn raft(&self) -> &RaftNode {
        &self.0.raft
    }

    /// The applied state.
    pub fn state(&self) -> &StateHandle {
        self.0.raft.state()
    }

    /// TLS material (for calls to other nodes).
    pub fn tls(&self) -> &TlsMaterial {
        &self.0.tls
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// Rate limits of the recovery path.
    pub fn limits(&self) -> &RateLimits {
        &self.0.limits
    }

    /// How long recovery tickets live, ms.
    pub fn ticket_ttl_ms(&self) -> u64 {
        self.0.config.recovery.ticket_ttl_secs.saturating_mul(1000)
    }

    /// This node's addresses, as stored in the membership.
    pub fn bkv_node(&self) -> BkvNode {
        let c = &self.0.config;
        BkvNode::new(c.peer_addr(), c.client_addr(), c.admin_addr())
    }

    /// Starts timing a gRPC call for metrics.
    pub fn begin_call(&self, method: &'static str) -> CallTimer {
        self.0.metrics.begin_call(method)
    }

    /// Readiness changes, for health reporting.
    pub fn readiness(&self) -> watch::Receiver<Readiness> {
        self.0.readiness.subscribe()
    }

    /// The serving state, or UNAVAILABLE with the reason the node does not serve.
    pub fn serving(&self) -> Result<Arc<Serving>, VaultError> {
        if self.0.shutting_down.load(Ordering::Relaxed) {
            return Err(VaultError::unavailable("the node is shutting down"));
        }
        let serving = self.0.serving.read().map(|s| s.clone()).unwrap_or(None);
        serving.ok_or_else(|| {
            let reason = match &*self.0.readiness.borrow() {
                Readiness::NotServing(r) => r.clone(),
                Readiness::Serving => "the node is not ready".into(),
            };
            VaultError::Unavailable {
                reason,
                leader_hint: self.leader_client_addr(),
            }
        })
    }

    /// This node's share-holder, once its share keys are in its token.
    pub fn shares(&self) -> Option<&Arc<NodeShares>> {
        self.0.shares.get()
    }

    /// Sets this node's share-holder (once, at start).
    pub fn set_shares(&self, shares: Arc<NodeShares>) {
        let _ = self.0.shares.set(shares);
    }

    /// The addresses of member `node_id`, if it is one.
    fn member(&self, node_id: u64) -> Option<bkv_raft::BkvNode> {
        let metrics = self.0.raft.metrics();
        let metrics = metrics.borrow();
        metrics
            .membership_config
            .membership()
            .get_node(&node_id)
            .cloned()
    }

    /// The peer address of member `node_id`, if it is one.
    pub fn peer_addr(&self, node_id: u64) -> Option<String> {
        self.member(node_id).map(|n| n.raft_addr)
    }

    /// The admin address of member `node_id`, if it is one.
    pub fn admin_addr_of(&self, node_id: u64) -> Option<String> {
        self.member(node_id).map(|n| n.admin_addr)
    }

    /// The leader's client address, if a leader is known.
    pub fn leader_client_addr(&self) -> Option<String> {
        self.0.raft.leader().client_addr().map(str::to_string)
    }

    /// Errors with UNAVAILABLE, `reason` and the leader's admin address unless this node
    /// leads: for operations only the leader performs.
    pub fn require_leader(&self, reason: &str) -> Result<(), VaultError> {
        let leader = self.0.raft.leader();
        if leader.id == Some(self.id()) {
            return Ok(());
        }
        Err(VaultError::Unavailable {
            reason: reason.to_string(),
            leader_hint: leader.node.map(|n| n.admin_addr),
        })
    }

    /// Verifies an account token for this cluster and returns its account.
    pub fn verify_token(&self, token: &str) -> Result<AccountId, VaultError> {
        let audience = self
            .state()
            .cluster()
            .map(|c| c.cluster_name)
            .ok_or_else(|| VaultError::unavailable("the cluster is not initialised"))?;
        let now = now_unix_ms() / 1000;
        let verified = self
            .0
            .issuers
            .verify_cached(token, &audience, now)
            .map_err(|e| VaultError::from_token(&e))?;
        Ok(verified.account)
    }

    /// Commits a command through Raft (from any node) and returns its outcome.
    pub async fn write(&self, command: Command) -> Result<Outcome, VaultError> {
        if self.0.shutting_down.load(Ordering::Relaxed) {
            return Err(VaultError::unavailable("the node is shutting down"));
        }
        let request = CoreRequest {
            at_unix_ms: now_unix_ms(),
            command,
        };
        match self.0.writer.write(request).await {
            Ok(written) => Ok(written.outcome),
            Err(WriteError::TooLarge { len, max }) => Err(VaultError::invalid(
                "request",
                format!("too_large: {len} bytes encoded, at most {max}"),
            )),
            Err(e) if e.is_unavailable() => Err(VaultError::Unavailable {
                reason: e.to_string(),
                leader_hint: e
                    .leader_hint()
                    .and_then(|h| h.client_addr().map(str::to_string)),
            }),
            Err(e) => {
                tracing::error!(error = %e, "write failed; this node stops serving");
                self.set_not_serving(format!("raft failed: {e}"));
                Err(VaultError::Internal(format!("raft: {e}")))
            }
        }
    }

    /// Forgets the cached cluster key (after the ceremony put one in the token).
    pub fn cluster_key_changed(&self, key: Option<ClusterKeyInfo>) {
        if let Ok(mut k) = self.0.key.write() {
            *k = key;
        }
    }

    /// The cluster key in the token, cached once found.
    pub async fn cluster_key(&self) -> Result<Option<ClusterKeyInfo>, bkv_hsm::HsmError> {
        if let Some(k) = self.0.key.read().ok().and_then(|k| *k) {
            return Ok(Some(k));
        }
        let found = self.0.hsm.cluster_key().await?;
        if let Some(k) = &found {
            self.cluster_key_changed(Some(*k));
        }
        Ok(found)
    }

    fn set_not_serving(&self, reason: String) {
        if let Ok(mut s) = self.0.serving.write() {
            *s = None;
        }
        self.0.readiness.send_if_modified(|r| {
            let next = Readiness::NotServing(reason);
            let changed = *r != next;
            *r = next;
            changed
        });
    }

    /// Marks the node as shutting down: it stops serving at once.
    pub fn begin_shutdown(&self) {
        self.0.shutting_down.store(true, Ordering::Relaxed);
        self.set_not_serving("the node is shutting down".into());
    }

    /// One readiness check: loads the server setup once the cluster key and the
    /// `Bootstrap` are both present and agree, and judges whether the node can serve.
    pub async fn refresh_readiness(&self) {
        if self.0.shutting_down.load(Ordering::Relaxed) {
            return;
        }
        let next = match self.judge().await {
            Ok(()) => Readiness::Serving,
            Err(NotReady::Quorum(reason)) => Readiness::NotServing(reason),
            Err(NotReady::Setup(reason)) => {
                // Without a matching key and Bootstrap the unsealed setup is not to be used.
                if let Ok(mut s) = self.0.serving.write() {
                    *s = None;
                }
                Readiness::NotServing(reason)
            }
        };
        self.0.metrics.set_serving(next.is_serving());
        self.0.readiness.send_if_modified(|r| {
            let changed = *r != next;
            if changed {
                match &next {
                    Readiness::Serving => tracing::info!("serving clients"),
                    Readiness::NotServing(reason) => tracing::warn!(%reason, "not serving"),
                }
                *r = next;
            }
            changed
        });
    }

    async fn judge(&self) -> Result<(), NotReady> {
        let setup = |r: &str| NotReady::Setup(r.to_string());
        let cluster = self
            .state()
            .cluster()
            .ok_or_else(|| setup("not initialised: no Bootstrap applied"))?;
        let key = self
            .cluster_key()
            .await
            .map_err(|e| NotReady::Setup(format!("HSM: {e}")))?
            .ok_or_else(|| setup("no cluster key in this node's token"))?;
        if key.key_check_value != cluster.key_check_value || key.key_id != cluster.key_id {
            return Err(NotReady::Setup(format!(
                "cluster key check value {} differs from the cluster's {}",
                hex::encode(key.key_check_value),
                hex::encode(cluster.key_check_value)
            )));
        }
        let loaded = self.0.serving.read().map(|s| s.is_some()).unwrap_or(false);
        if !loaded {
            let secrets = ServerSecrets::unseal(
                &self.0.sealer,
                &cluster.cluster_id,
                &cluster.sealed_server_setup,
            )
            .await
            .map_err(|e| NotReady::Setup(format!("cannot unseal the server setup: {e}")))?;
            if self.0.hasher.borrow().is_none() {
                self.0
                    .hasher
                    .send_replace(Some(AccountHasher::from_server_setup(&secrets.to_bytes())));
            }
            if let Ok(mut s) = self.0.serving.write() {
                *s = Some(Arc::new(Serving {
                    secrets,
                    cluster: cluster.clone(),
                }));
            }
        }
        let metrics = self.0.raft.metrics().borrow().clone();
        self.0.metrics.observe_raft(&metrics);
        self.0
            .metrics
            .snapshot_on_disk(self.0.raft.snapshot_on_disk().bytes);
        if let Err(fatal) = &metrics.running_state {
            // Storage failure or a panic in Raft: fatal to serving, never retried into an
            // answer.
            return Err(NotReady::Setup(format!("raft stopped: {fatal}")));
        }
        let leader = metrics
            .current_leader
            .ok_or_else(|| NotReady::Quorum("no leader known (election or no quorum)".into()))?;
        if leader == self.id() {
            let quorum_window = self.0.config.raft.election_timeout_max_ms.saturating_mul(2);
            match metrics.millis_since_quorum_ack {
                Some(ms) if ms <= quorum_window => {}
                _ => {
                    return Err(NotReady::Quorum(
                        "no quorum: a majority has not acknowledged the leader".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Runs readiness checks until shutdown: every `period`, and whenever Raft metrics change
    /// (at most 20 times a second: metrics change on every applied entry).
    pub async fn readiness_loop(self, period: Duration) {
        let mut metrics = self.0.raft.metrics();
        while !self.0.shutting_down.load(Ordering::Relaxed) {
            self.refresh_readiness().await;
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                changed = metrics.changed() => if changed.is_err() { return },
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
