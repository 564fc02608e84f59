//! The operator API, `bkv.v1.Admin` (docs/DESIGN.md §6): cluster initialisation, the
//! cluster-key ceremony and membership, the share map, status, leadership transfer,
//! snapshots and the audit stream.
//!
//! Served under mutual TLS; each call checks the role of the caller's certificate. The
//! ceremony itself (what the leader does to add a node) lives in [`crate::ceremony`].

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bkv_core::identity::Role;
use bkv_core::opaque::ServerSecrets;
use bkv_core::{ClusterId, Command, GuessLimit, Outcome, ShareMap, SignedShareMap};
use bkv_hsm::WrappedClusterKey;
use bkv_proto::v1::admin_server::Admin;
use bkv_proto::v1::{
    AddNodeProgress, AddNodeRequest, AuditRecord, AuditRequest, ClusterStatusRequest,
    ClusterStatusResponse, EraseSharesRequest, EraseSharesResponse, InitRequest, InitResponse,
    MemberRole, MemberStatus, NodeInfoRequest, NodeInfoResponse, NodeStatusRequest, NodeView,
    ProvisionClusterKeyRequest, ProvisionClusterKeyResponse, RefreshSharesProgress,
    RefreshSharesRequest, RemoveNodeRequest, RemoveNodeResponse, SetShareMapRequest,
    SetShareMapResponse, SnapshotRequest, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse,
};
use futures::{Stream, StreamExt as _};
use openraft::ChangeMembers;
use rand::rngs::OsRng;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::audit_log::{self, AuditLine, AuditLog, StreamError};
use crate::ceremony::{self, PeerAdmin};
use crate::error::VaultError;
use crate::node::Node;
use crate::tls::require_role;

/// Bound on waiting for this node to become leader after `init`.
const INIT_LEADER_WAIT: Duration = Duration::from_secs(10);

/// A signed share map from the wire.
pub fn parse_signed_map(
    map: Option<bkv_proto::v1::SignedShareMap>,
) -> Result<SignedShareMap, VaultError> {
    let map = map.ok_or_else(|| VaultError::invalid("share_map", "missing"))?;
    SignedShareMap::try_from(map).map_err(|e| VaultError::invalid(e.field, e.reason))
}

/// The `bkv.v1.Admin` service of one node.
#[derive(Debug, Clone)]
pub struct AdminService {
    node: Node,
    audit: AuditLog,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn admin_only(role: &Role) -> bool {
    role.is_admin()
}

fn admin_or_node(_role: &Role) -> bool {
    true
}

impl AdminService {
    /// The service over a node and its audit log.
    pub fn new(node: Node, audit: AuditLog) -> Self {
        Self { node, audit }
    }

    async fn init_inner(&self, msg: InitRequest) -> Result<InitResponse, VaultError> {
        let name = msg.cluster_name.trim();
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        {
            return Err(VaultError::invalid(
                "cluster_name",
                "bad_name: 1 to 64 characters of [A-Za-z0-9._-]",
            ));
        }
        let max = match msg.max_guess_limit {
            0 => GuessLimit::parse_max(100),
            n => GuessLimit::parse_max(n),
        }
        .map_err(|e| VaultError::invalid("max_guess_limit", format!("out_of_range: {e}")))?;
        let default = match msg.default_guess_limit {
            0 => GuessLimit::parse(GuessLimit::DEFAULT.get().min(max.get()), max),
            n => GuessLimit::parse(n, max),
        }
        .map_err(|e| VaultError::invalid("default_guess_limit", format!("out_of_range: {e}")))?;
        let identity_key: [u8; 32] =
            msg.identity_public_key.as_slice().try_into().map_err(|_| {
                VaultError::invalid("identity_public_key", "wrong_length: must be 32 bytes")
            })?;
        let first_map = parse_signed_map(msg.share_map)?;
        // The first map must verify under the identity key given and name this node alone,
        // with the key its token holds: checked before anything is created.
        let map = first_map
            .verify(&identity_key)
            .map_err(|e| VaultError::invalid("share_map", format!("refused: {e}")))?;
        self.check_map_members(&map, name, &[self.node.id()])
            .await?;

        let raft = self.node.raft();
        let initialized = raft
            .raft()
            .is_initialized()
            .await
            .map_err(|e| VaultError::Internal(format!("raft: {e}")))?;
        if initialized || self.node.state().cluster().is_some() {
            return Err(VaultError::AlreadyExists(
                "this node is already part of a cluster".into(),
            ));
        }
        let hsm = self.node.hsm();
        // A key left by an earlier, interrupted init is reused: the cluster does not exist
        // yet, so nothing was sealed under it that could be lost.
        let key = match hsm.cluster_key().await.map_err(hsm_error)? {
            Some(k) => k,
            None => hsm.generate_cluster_key().await.map_err(hsm_error)?,
        };
        self.node.cluster_key_changed(Some(key));
        let id_bytes = hsm.random(ClusterId::LEN).await.map_err(hsm_error)?;
        let cluster_id =
            ClusterId::parse(&id_bytes).map_err(|e| VaultError::Internal(e.to_string()))?;
        let secrets = ServerSecrets::generate(&mut OsRng);
        let sealed_server_setup = secrets
            .seal(hsm, &cluster_id)
            .await
            .map_err(|e| VaultError::Internal(format!("sealing the server setup: {e}")))?;
        drop(secrets);

        raft.initialize_single(self.node.bkv_node())
            .await
            .map_err(|e| VaultError::Internal(format!("raft initialise: {e}")))?;
        let mut metrics = raft.metrics();
        let me = self.node.id();
        tokio::time::timeout(
            INIT_LEADER_WAIT,
            metrics.wait_for(|m| m.current_leader == Some(me)),
        )
        .await
        .map_err(|_| VaultError::unavailable("this node did not become leader in time"))?
        .map_err(|_| VaultError::unavailable("raft stopped"))?;
        let outcome = self
            .node
            .write(Command::Bootstrap {
                cluster_id,
                cluster_name: name.to_string(),
                sealed_server_setup,
                key_check_value: key.key_check_value,
                key_id: key.key_id,
                default_guess_limit: default,
                max_guess_limit: max,
                identity_key,
            })
            .await?;
        match outcome {
            Outcome::Bootstrapped => {}
            Outcome::Rejected(r) => return Err(VaultError::from_rejection(r)),
            _ => {
                return Err(VaultError::Internal(
                    "unexpected outcome of Bootstrap".into(),
                ));
            }
        }
        match self
            .node
            .write(Command::SetShareMap { map: first_map })
            .await?
        {
            Outcome::ShareMapSet { .. } => {}
            Outcome::Rejected(r) => return Err(VaultError::from_rejection(r)),
            _ => {
                return Err(VaultError::Internal(
                    "unexpected outcome of SetShareMap".into(),
                ));
            }
        }
        self.node.refresh_readiness().await;
        tracing::info!(cluster = %cluster_id, name, "cluster initialised");
        Ok(InitResponse {
            cluster_id: cluster_id.as_bytes().to_vec(),
            key_check_value: key.key_check_value.to_vec(),
            node_id: me,
        })
    }

    /// Checks that a share map names this cluster and exactly `voters`, each with the
    /// share-receiving key its own token holds (asked of each node, this one included).
    async fn check_map_members(
        &self,
        map: &ShareMap,
        cluster_name: &str,
        voters: &[u64],
    ) -> Result<(), VaultError> {
        if map.cluster_name != cluster_name {
            return Err(VaultError::invalid(
                "share_map",
                "other_cluster: the map names another cluster",
            ));
        }
        let mut want: Vec<u64> = voters.to_vec();
        want.sort_unstable();
        if map
            .holders
            .iter()
            .map(|h| h.node_id)
            .ne(want.iter().copied())
        {
            return Err(VaultError::invalid(
                "share_map",
                format!("wrong_holders: the map must name exactly the voters {want:?}"),
            ));
        }
        for holder in &map.holders {
            let key = if holder.node_id == self.node.id() {
                self.node
                    .hsm()
                    .share_receive_key()
                    .await
                    .map_err(hsm_error)?
                    .public
            } else {
                let addr = self
                    .node
                    .admin_addr_of(holder.node_id)
                    .ok_or_else(|| VaultError::unavailable("a voter of the map has no address"))?;
                let info = PeerAdmin::new(&self.node, &addr)?.node_info().await?;
                info.share_receiving_key
                    .as_slice()
                    .try_into()
                    .map_err(|_| VaultError::Internal("a voter answered no share key".into()))?
            };
            if key != holder.receive_key {
                return Err(VaultError::invalid(
                    "share_map",
                    format!(
                        "wrong_key: node {} holds another share-receiving key",
                        holder.node_id
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn set_share_map_inner(
        &self,
        msg: SetShareMapRequest,
    ) -> Result<SetShareMapResponse, VaultError> {
        let signed = parse_signed_map(msg.share_map)?;
        let cluster = self
            .node
            .state()
            .cluster()
            .ok_or_else(|| VaultError::unavailable("the cluster is not initialised"))?;
        let map = signed
            .verify(&cluster.identity_key)
            .map_err(|e| VaultError::invalid("share_map", format!("refused: {e}")))?;
        let voters: Vec<u64> = self
            .node
            .state()
            .membership()
            .membership()
            .voter_ids()
            .collect();
        self.check_map_members(&map, &cluster.cluster_name, &voters)
            .await?;
        match self
            .node
            .write(Command::SetShareMap { map: signed })
            .await?
        {
            Outcome::ShareMapSet { epoch } => Ok(SetShareMapResponse { epoch }),
            other => Err(match other {
                Outcome::Rejected(r) => VaultError::from_rejection(r),
                _ => VaultError::Internal("unexpected outcome of SetShareMap".into()),
            }),
        }
    }

    async fn node_info_inner(&self) -> Result<NodeInfoResponse, VaultError> {
        let hsm = self.node.hsm();
        let enrollment = hsm.enrollment_key().await.map_err(hsm_error)?;
        let share_key = hsm.share_receive_key().await.map_err(hsm_error)?;
        let key = self.node.cluster_key().await.map_err(hsm_error)?;
        let config = self.node.config();
        Ok(NodeInfoResponse {
            node_id: self.node.id(),
            raft_addr: config.peer_addr(),
            client_addr: config.client_addr(),
            admin_addr: config.admin_addr(),
            enrollment_public_key: enrollment.spki_der.clone(),
            enrollment_fingerprint: enrollment.fingerprint.clone(),
            has_cluster_key: key.is_some(),
            key_check_value: key.map(|k| k.key_check_value.to_vec()).unwrap_or_default(),
            cluster_id: self
                .node
                .state()
                .cluster()
                .map(|c| c.cluster_id.as_bytes().to_vec())
                .unwrap_or_default(),
            software_version: env!("CARGO_PKG_VERSION").to_string(),
            share_receiving_key: share_key.public.to_vec(),
            share_receiving_fingerprint: share_key.fingerprint,
        })
    }

    async fn provision_inner(
        &self,
        msg: ProvisionClusterKeyRequest,
    ) -> Result<ProvisionClusterKeyResponse, VaultError> {
        let hsm = self.node.hsm();
        let enrollment = hsm.enrollment_key().await.map_err(hsm_error)?;
        if msg.enrollment_fingerprint != enrollment.fingerprint {
            return Err(VaultError::invalid(
                "enrollment_fingerprint",
                "mismatch: the key was wrapped to another node's enrollment key",
            ));
        }
        let key_id: [u8; 8] = msg
            .key_id
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::invalid("key_id", "wrong_length: must be 8 bytes"))?;
        let kcv: [u8; 3] =
            msg.key_check_value.as_slice().try_into().map_err(|_| {
                VaultError::invalid("key_check_value", "wrong_length: must be 3 bytes")
            })?;
        if let Some(state_cluster) = self.node.state().cluster()
            && state_cluster.cluster_id.as_bytes().as_slice() != msg.cluster_id.as_slice()
        {
            return Err(VaultError::invalid(
                "cluster_id",
                "mismatch: this node is in another cluster",
            ));
        }
        if let Some(existing) = hsm.cluster_key().await.map_err(hsm_error)? {
            if existing.key_check_value == kcv && existing.key_id == key_id {
                // Already provisioned (a retried ceremony): nothing to do.
                return Ok(ProvisionClusterKeyResponse {
                    key_check_value: kcv.to_vec(),
                });
            }
            return Err(VaultError::FailedPrecondition {
                reason: "other_key",
                message: "this node's token holds another cluster key".into(),
            });
        }
        let wrapped = WrappedClusterKey {
            wrapped: msg.wrapped_key,
            key_id,
            key_check_value: kcv,
        };
        let info = hsm.unwrap_cluster_key(&wrapped).await.map_err(hsm_error)?;
        self.node.cluster_key_changed(Some(info));
        self.node.refresh_readiness().await;
        tracing::info!(kcv = %hex::encode(info.key_check_value), "cluster key provisioned");
        Ok(ProvisionClusterKeyResponse {
            key_check_value: info.key_check_value.to_vec(),
        })
    }

    async fn remove_node_inner(
        &self,
        msg: RemoveNodeRequest,
    ) -> Result<RemoveNodeResponse, VaultError> {
        self.require_leader()?;
        let raft = self.node.raft().raft();
        let membership = self
            .node
            .raft()
            .metrics()
            .borrow()
            .membership_config
            .clone();
        let id = msg.node_id;
        let is_voter = membership.membership().voter_ids().any(|v| v == id);
        let is_member = membership.membership().get_node(&id).is_some();
        if !is_member {
            return Err(VaultError::NotFound {
                reason: bkv_proto::contract::reason::NO_SUCH_MEMBER,
                message: "no such member",
            });
        }
        let ids = BTreeSet::from([id]);
        if is_voter {
            raft.change_membership(ChangeMembers::RemoveVoters(ids.clone()), false)
                .await
                .map_err(|e| VaultError::unavailable(format!("membership change: {e}")))?;
        }
        // Learners (and voters that were just demoted, if retained) leave the node list too.
        if self
            .node
            .raft()
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .is_some()
        {
            raft.change_membership(ChangeMembers::RemoveNodes(ids), false)
                .await
                .map_err(|e| VaultError::unavailable(format!("membership change: {e}")))?;
        }
        let m = self
            .node
            .raft()
            .metrics()
            .borrow()
            .membership_config
            .clone();
        Ok(RemoveNodeResponse {
            voters: m.membership().voter_ids().collect(),
            learners: m.membership().learner_ids().collect(),
        })
    }

    async fn erase_shares_inner(
        &self,
        msg: EraseSharesRequest,
    ) -> Result<EraseSharesResponse, VaultError> {
        let me = self.node.id();
        if msg.node_id != me {
            return Err(VaultError::invalid(
                "node_id",
                format!("this is node {me}, not node {}", msg.node_id),
            ));
        }
        if self.node.require_leader("").is_ok() {
            return Err(VaultError::invalid(
                "node_id",
                format!("node {me} leads the cluster: remove it first"),
            ));
        }
        let shares = self
            .node
            .shares()
            .ok_or_else(|| VaultError::unavailable("this node has no share-holder yet"))?;
        // Nothing is evaluated or installed from here on, and the shares opened in memory
        // are forgotten, before the keys go.
        shares.erased();
        let keys = self
            .node
            .hsm()
            .destroy_share_keys()
            .await
            .map_err(hsm_error)?;
        let ledgers = shares.ledgers().erase_all().await?;
        self.node.metrics().set_shares_held(0);
        tracing::warn!(
            keys_destroyed = keys,
            ledgers_erased = ledgers,
            "this node's shares were erased"
        );
        Ok(EraseSharesResponse {
            keys_destroyed: u32::try_from(keys).unwrap_or(u32::MAX),
            ledgers_erased: ledgers,
        })
    }

    fn require_leader(&self) -> Result<(), VaultError> {
        self.node.require_leader("this node is not the leader")
    }

    /// Every unary handler's frame: check the caller's certificate role, run `handle`,
    /// count the call by method and code (refusals included) and answer.
    async fn call<M, T, Fut>(
        &self,
        method: &'static str,
        request: Request<M>,
        allowed: fn(&Role) -> bool,
        handle: impl FnOnce(Role, M) -> Fut,
    ) -> Result<Response<T>, Status>
    where
        Fut: Future<Output = Result<T, VaultError>>,
    {
        let call = self.node.begin_call(method);
        let what = method.trim_start_matches("Admin.");
        let result = match require_role(&request, allowed, what) {
            Ok(role) => handle(role, request.into_inner()).await,
            Err(e) => Err(e),
        };
        call.finish(result)
    }

    /// This node's own view, with the state digest if `with_digest`. The digest encodes the
    /// whole state under its read lock (applies wait meanwhile), on the blocking pool.
    pub async fn local_view(&self, with_digest: bool) -> NodeView {
        let (applied, digest) = if with_digest {
            let state = self.node.state().clone();
            match tokio::task::spawn_blocking(move || state.digest_at()).await {
                Ok((applied, digest)) => (applied, hex::encode(digest)),
                Err(e) => {
                    tracing::warn!(error = %e, "computing the state digest failed");
                    (self.node.state().applied_index(), String::new())
                }
            }
        } else {
            (self.node.state().applied_index(), String::new())
        };
        let metrics = self.node.raft().metrics().borrow().clone();
        let readiness = self.node.readiness().borrow().clone();
        let cluster = self.node.state().cluster();
        let map = cluster.as_ref().and_then(|c| c.share_map.as_ref());
        let id = self.node.id();
        let named = self.node.state().clone();
        let coverage = tokio::task::spawn_blocking(move || named.read(|s| s.share_coverage(id)))
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "counting the accounts with shares failed");
                bkv_core::ShareCoverage::default()
            });
        let in_share_map = map.is_some_and(|m| m.map.holder(self.node.id()).is_some());
        NodeView {
            accounts_with_shares: coverage.held,
            shares_missing: if in_share_map { coverage.missing } else { 0 },
            shares_held: self.node.metrics().shares_held(),
            in_share_map,
            share_map_epoch: map.map_or(0, |m| m.map.epoch),
            share_map: map.map(|m| (&m.signed).into()),
            node_id: self.node.id(),
            is_leader: metrics.current_leader == Some(self.node.id()),
            leader_id: metrics.current_leader.unwrap_or(0),
            term: metrics.current_term,
            last_log_index: metrics.last_log_index.unwrap_or(0),
            commit_index: self.node.raft().committed_index(),
            applied_index: applied,
            key_check_value: cluster
                .map(|c| c.key_check_value.to_vec())
                .unwrap_or_default(),
            state_digest: digest,
            serving: readiness.is_serving(),
            not_serving_reason: match readiness {
                crate::node::Readiness::Serving => String::new(),
                crate::node::Readiness::NotServing(r) => r,
            },
            snapshot_index: metrics.snapshot.map(|s| s.index).unwrap_or(0),
        }
    }

    async fn cluster_status(&self, with_digests: bool) -> ClusterStatusResponse {
        let metrics = self.node.raft().metrics().borrow().clone();
        let membership = metrics.membership_config.membership().clone();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let replication = metrics.replication.clone().unwrap_or_default();
        let mut members = Vec::new();
        let mut asks = Vec::new();
        for (id, node) in membership.nodes() {
            let role = if voters.contains(id) {
                MemberRole::Voter
            } else {
                MemberRole::Learner
            };
            let matched = replication
                .get(id)
                .cloned()
                .flatten()
                .map(|l| l.index)
                .unwrap_or(0);
            members.push(MemberStatus {
                node_id: *id,
                raft_addr: node.raft_addr.clone(),
                role: role.into(),
                matched_index: matched,
                status: None,
                error: String::new(),
                admin_addr: node.admin_addr.clone(),
                client_addr: node.client_addr.clone(),
            });
            if *id == self.node.id() {
                asks.push(None);
            } else {
                let peer = PeerAdmin::new(&self.node, &node.admin_addr);
                asks.push(Some(async move { peer?.node_status(with_digests).await }));
            }
        }
        let mut results = Vec::new();
        for ask in asks {
            results.push(match ask {
                None => Ok(self.local_view(with_digests).await),
                Some(f) => f.await,
            });
        }
        for (member, result) in members.iter_mut().zip(results) {
            match result {
                Ok(view) => member.status = Some(view),
                Err(e) => member.error = e.to_string(),
            }
        }
        if members.is_empty() {
            members.push(MemberStatus {
                node_id: self.node.id(),
                status: Some(self.local_view(with_digests).await),
                admin_addr: self.node.config().admin_addr(),
                client_addr: self.node.config().client_addr(),
                raft_addr: self.node.config().peer_addr(),
                ..Default::default()
            });
        }
        let cluster = self.node.state().cluster();
        ClusterStatusResponse {
            cluster_name: cluster
                .as_ref()
                .map(|c| c.cluster_name.clone())
                .unwrap_or_default(),
            cluster_id: cluster
                .map(|c| c.cluster_id.as_bytes().to_vec())
                .unwrap_or_default(),
            leader_id: metrics.current_leader.unwrap_or(0),
            term: metrics.current_term,
            members,
        }
    }

    async fn snapshot_inner(&self) -> Result<SnapshotResponse, VaultError> {
        let raft = self.node.raft();
        let target = self.node.state().applied_index();
        raft.trigger_snapshot()
            .await
            .map_err(|e| VaultError::Internal(format!("raft: {e}")))?;
        let mut metrics = raft.metrics();
        tokio::time::timeout(
            Duration::from_secs(60),
            metrics.wait_for(|m| m.snapshot.map(|s| s.index).unwrap_or(0) >= target),
        )
        .await
        .map_err(|_| VaultError::unavailable("the snapshot did not complete in time"))?
        .map_err(|_| VaultError::unavailable("raft stopped"))?;
        // What is on disk, not `get_snapshot`: that reads the whole file back (370 MB at a
        // million accounts) on the task that applies entries, and held up every write on the
        // leader for a third of a second (docs/benchmarks-history.md §4).
        let on_disk = raft.snapshot_on_disk();
        let (index, size) = (on_disk.last_log_id.map_or(0, |l| l.index), on_disk.bytes);
        self.node.metrics().snapshot_on_disk(size);
        Ok(SnapshotResponse {
            last_log_index: index,
            size_bytes: size,
        })
    }
}

fn refresh_progress(
    p: &crate::shares::refresh::RefreshProgress,
    done: bool,
) -> RefreshSharesProgress {
    RefreshSharesProgress {
        records_seen: p.records_seen,
        refreshed: p.refreshed,
        skipped: p
            .skipped
            .iter()
            .map(|(reason, n)| ((*reason).to_string(), *n))
            .collect(),
        done,
        elapsed_ms: u64::try_from(p.elapsed.as_millis()).unwrap_or(u64::MAX),
    }
}

fn hsm_error(e: bkv_hsm::HsmError) -> VaultError {
    VaultError::Internal(format!("HSM: {e}"))
}

fn audit_record(line: AuditLine) -> AuditRecord {
    let json = serde_json::to_string(&line).unwrap_or_default();
    AuditRecord {
        seq: line.seq,
        log_index: line.log_index,
        kind: line.kind,
        account_hash: line.account,
        version: line.version.unwrap_or(0),
        charge: line.charge.unwrap_or(0),
        guesses_remaining: line.guesses_remaining.unwrap_or(0),
        at_unix_ms: line.at_unix_ms,
        json,
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn init(&self, request: Request<InitRequest>) -> Result<Response<InitResponse>, Status> {
        self.call("Admin.Init", request, admin_only, |_, m| self.init_inner(m))
            .await
    }

    async fn node_info(
        &self,
        request: Request<NodeInfoRequest>,
    ) -> Result<Response<NodeInfoResponse>, Status> {
        self.call("Admin.NodeInfo", request, admin_or_node, |_, _| {
            self.node_info_inner()
        })
        .await
    }

    async fn provision_cluster_key(
        &self,
        request: Request<ProvisionClusterKeyRequest>,
    ) -> Result<Response<ProvisionClusterKeyResponse>, Status> {
        self.call(
            "Admin.ProvisionClusterKey",
            request,
            admin_or_node,
            |_, m| self.provision_inner(m),
        )
        .await
    }

    type AddNodeStream = BoxStream<AddNodeProgress>;

    async fn add_node(
        &self,
        request: Request<AddNodeRequest>,
    ) -> Result<Response<Self::AddNodeStream>, Status> {
        require_role(&request, admin_only, "AddNode")?;
        self.require_leader().map_err(Status::from)?;
        let msg = request.into_inner();
        if msg.node_id == 0 {
            return Err(VaultError::invalid("node_id", "zero: node ids start at 1").into());
        }
        let (tx, rx) = mpsc::channel(16);
        let node = self.node.clone();
        tokio::spawn(async move {
            let result = ceremony::add_node(&node, msg, tx.clone()).await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "add-node failed");
                let _ = tx.send(Err(Status::from(e))).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        self.call("Admin.RemoveNode", request, admin_only, |_, m| {
            self.remove_node_inner(m)
        })
        .await
    }

    async fn erase_shares(
        &self,
        request: Request<EraseSharesRequest>,
    ) -> Result<Response<EraseSharesResponse>, Status> {
        self.call("Admin.EraseShares", request, admin_only, |_, m| {
            self.erase_shares_inner(m)
        })
        .await
    }

    async fn status(
        &self,
        request: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        self.call("Admin.Status", request, admin_or_node, async |_, m| {
            Ok(self.cluster_status(m.with_digests).await)
        })
        .await
    }

    async fn node_status(
        &self,
        request: Request<NodeStatusRequest>,
    ) -> Result<Response<NodeView>, Status> {
        require_role(&request, admin_or_node, "NodeStatus")?;
        let with_digest = request.get_ref().with_digest;
        Ok(Response::new(self.local_view(with_digest).await))
    }

    async fn transfer_leader(
        &self,
        request: Request<TransferLeaderRequest>,
    ) -> Result<Response<TransferLeaderResponse>, Status> {
        self.call("Admin.TransferLeader", request, admin_or_node, |role, m| {
            ceremony::transfer_leader(&self.node, m.to_node_id, role.is_node())
        })
        .await
    }

    async fn set_share_map(
        &self,
        request: Request<SetShareMapRequest>,
    ) -> Result<Response<SetShareMapResponse>, Status> {
        self.call("Admin.SetShareMap", request, admin_only, |_, m| {
            self.set_share_map_inner(m)
        })
        .await
    }

    type RefreshSharesStream = BoxStream<RefreshSharesProgress>;

    async fn refresh_shares(
        &self,
        request: Request<RefreshSharesRequest>,
    ) -> Result<Response<Self::RefreshSharesStream>, Status> {
        require_role(&request, admin_only, "RefreshShares")?;
        let shares = self
            .node
            .shares()
            .cloned()
            .ok_or_else(|| VaultError::unavailable("this node is not a share-holder"))?;
        if self
            .node
            .state()
            .cluster()
            .and_then(|c| c.share_map)
            .is_none()
        {
            return Err(VaultError::unavailable("no share map is in force yet").into());
        }
        let (tx, rx) = mpsc::channel(16);
        let node = self.node.clone();
        tokio::spawn(async move {
            tracing::info!("share refresh pass started");
            let last = crate::shares::refresh::refresh_pass(&node, &shares, u64::MAX, |p| {
                // Progress the operator is too slow to read is dropped; the last is not.
                let _ = tx.try_send(Ok(refresh_progress(p, false)));
                !tx.is_closed()
            })
            .await;
            node.metrics().share_refresh_pass("operator");
            tracing::info!(
                refreshed = last.refreshed,
                skipped = ?last.skipped,
                elapsed_ms = last.elapsed.as_millis() as u64,
                "share refresh pass done"
            );
            let _ = tx.send(Ok(refresh_progress(&last, true))).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotResponse>, Status> {
        self.call("Admin.Snapshot", request, admin_only, |_, _| {
            self.snapshot_inner()
        })
        .await
    }

    type AuditStream = BoxStream<AuditRecord>;

    async fn audit(
        &self,
        request: Request<AuditRequest>,
    ) -> Result<Response<Self::AuditStream>, Status> {
        require_role(&request, admin_only, "Audit")?;
        let msg = request.into_inner();
        // Streamed from the files in batches, then live: constant memory (audit_log::stream).
        let lines = audit_log::stream(self.audit.clone(), msg.from_seq, msg.follow);
        let records = ReceiverStream::new(lines).map(|line| match line {
            Ok(line) => Ok(audit_record(line)),
            Err(e @ StreamError::Gap { .. }) => Err(Status::data_loss(e.to_string())),
            Err(e @ StreamError::Read(_)) => Err(Status::internal(e.to_string())),
        });
        Ok(Response::new(Box::pin(records)))
    }
}
