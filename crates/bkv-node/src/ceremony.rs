//! What the leader does to add a node (docs/DESIGN.md §6.3), and leadership transfer.
//!
//! Adding a node: fetch its enrollment key and check the fingerprint the operator confirmed;
//! import the key as trusted (security-officer session); wrap the cluster key to it; have the
//! new node unwrap it and compare check values; add it as a learner; wait until it has caught
//! up; promote it to voter. Every step is safe to repeat, so a failed ceremony is simply run
//! again.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bkv_proto::v1::admin_client::AdminClient;
use bkv_proto::v1::{
    AddNodePhase, AddNodeProgress, AddNodeRequest, NodeInfoRequest, NodeInfoResponse,
    NodeStatusRequest, NodeView, ProvisionClusterKeyRequest, TransferLeaderRequest,
    TransferLeaderResponse,
};
use bkv_raft::BkvNode;
use openraft::ChangeMembers;
use tokio::sync::mpsc;
use tonic::Status;
use tonic::transport::{Channel, Endpoint};

use crate::error::VaultError;
use crate::node::Node;

/// Longest a learner may take to catch up before the ceremony gives up (it stays a learner;
/// running add-node again resumes).
const CATCH_UP_LIMIT: Duration = Duration::from_secs(600);
/// A learner within this many entries of the leader counts as caught up.
const CAUGHT_UP_SLACK: u64 = 10;

/// A client of another node's admin service, authenticated with this node's certificate.
#[derive(Debug, Clone)]
pub struct PeerAdmin {
    client: AdminClient<Channel>,
}

impl PeerAdmin {
    /// A lazily connected client to `addr` (`host:port`).
    pub fn new(node: &Node, addr: &str) -> Result<Self, VaultError> {
        let endpoint = Endpoint::from_shared(format!("https://{addr}"))
            .map_err(|e| VaultError::invalid("admin_addr", format!("bad_address: {e}")))?
            .tls_config(node.tls().peer_client())
            .map_err(|e| VaultError::Internal(format!("TLS: {e}")))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10));
        Ok(Self {
            client: AdminClient::new(endpoint.connect_lazy()),
        })
    }

    /// The peer's identity and keys.
    pub async fn node_info(mut self) -> Result<NodeInfoResponse, VaultError> {
        self.client
            .node_info(NodeInfoRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(peer_error)
    }

    /// The peer's own view, with its state digest if `with_digest`.
    pub async fn node_status(mut self, with_digest: bool) -> Result<NodeView, VaultError> {
        self.client
            .node_status(NodeStatusRequest { with_digest })
            .await
            .map(tonic::Response::into_inner)
            .map_err(peer_error)
    }
}

fn peer_error(s: Status) -> VaultError {
    VaultError::unavailable(format!("peer answered {:?}: {}", s.code(), s.message()))
}

async fn progress(
    tx: &mpsc::Sender<Result<AddNodeProgress, Status>>,
    phase: AddNodePhase,
    message: String,
    matched_index: u64,
    leader_index: u64,
) {
    tracing::info!(phase = ?phase, %message, "add-node");
    // The operator may have gone away; the ceremony goes on regardless.
    let _ = tx
        .send(Ok(AddNodeProgress {
            phase: phase.into(),
            message,
            matched_index,
            leader_index,
        }))
        .await;
}

/// Adds a node; streams progress to `tx`. Runs on the leader.
pub async fn add_node(
    node: &Node,
    msg: AddNodeRequest,
    tx: mpsc::Sender<Result<AddNodeProgress, Status>>,
) -> Result<(), VaultError> {
    let id = msg.node_id;
    let cluster = node
        .state()
        .cluster()
        .ok_or_else(|| VaultError::unavailable("the cluster is not initialised"))?;
    let peer = PeerAdmin::new(node, &msg.admin_addr)?;
    let mut client = peer.client.clone();

    // 1. Enrollment: who is it, and is it the key the operator confirmed?
    let info = client
        .node_info(NodeInfoRequest {})
        .await
        .map_err(peer_error)?
        .into_inner();
    if info.node_id != id {
        return Err(VaultError::invalid(
            "node_id",
            format!(
                "mismatch: the node at {} has id {}",
                msg.admin_addr, info.node_id
            ),
        ));
    }
    let expected = msg.enrollment_fingerprint.trim().to_ascii_lowercase();
    if expected.is_empty() || info.enrollment_fingerprint != expected {
        return Err(VaultError::invalid(
            "enrollment_fingerprint",
            "mismatch: the node's enrollment key is not the one confirmed",
        ));
    }
    if !info.cluster_id.is_empty() && info.cluster_id != cluster.cluster_id.as_bytes() {
        return Err(VaultError::FailedPrecondition {
            reason: "other_cluster",
            message: "the node belongs to another cluster".into(),
        });
    }
    let membership = node.raft().metrics().borrow().membership_config.clone();
    let already_voter = membership.membership().voter_ids().any(|v| v == id);
    progress(
        &tx,
        AddNodePhase::Enrolled,
        format!("node {id} enrolled, fingerprint {expected}"),
        0,
        0,
    )
    .await;

    // 2. The cluster key, wrapped to the node's enrollment key.
    let same_key = info.has_cluster_key && info.key_check_value == cluster.key_check_value;
    if info.has_cluster_key && !same_key {
        return Err(VaultError::FailedPrecondition {
            reason: "other_key",
            message: "the node's token holds another cluster key".into(),
        });
    }
    if !same_key {
        let hsm = node.hsm();
        hsm.trust_enrollment_key(&info.enrollment_public_key)
            .await
            .map_err(|e| VaultError::Internal(format!("HSM trust: {e}")))?;
        let wrapped = hsm
            .wrap_cluster_key_for(&info.enrollment_fingerprint)
            .await
            .map_err(|e| VaultError::Internal(format!("HSM wrap: {e}")))?;
        let answer = client
            .provision_cluster_key(ProvisionClusterKeyRequest {
                cluster_id: cluster.cluster_id.as_bytes().to_vec(),
                wrapped_key: wrapped.wrapped.clone(),
                key_check_value: wrapped.key_check_value.to_vec(),
                key_id: wrapped.key_id.to_vec(),
                enrollment_fingerprint: info.enrollment_fingerprint.clone(),
            })
            .await
            .map_err(peer_error)?
            .into_inner();
        if answer.key_check_value != cluster.key_check_value {
            return Err(VaultError::Internal(
                "the node reports another key check value".into(),
            ));
        }
    }
    progress(
        &tx,
        AddNodePhase::KeyProvisioned,
        format!(
            "cluster key provisioned, check value {}",
            hex::encode(cluster.key_check_value)
        ),
        0,
        0,
    )
    .await;

    // 3. Learner, then catch up.
    let raft = node.raft().raft();
    if membership.membership().get_node(&id).is_none() {
        let member = BkvNode::new(info.raft_addr, info.client_addr, info.admin_addr);
        raft.add_learner(id, member, false)
            .await
            .map_err(|e| VaultError::unavailable(format!("add learner: {e}")))?;
    }
    let started = Instant::now();
    let mut metrics = node.raft().metrics();
    loop {
        let m = metrics.borrow_and_update().clone();
        if m.current_leader != Some(node.id()) {
            return Err(VaultError::unavailable(
                "leadership changed during add-node; run it again",
            ));
        }
        let leader_index = m.last_log_index.unwrap_or(0);
        let matched = m
            .replication
            .as_ref()
            .and_then(|r| r.get(&id).cloned().flatten())
            .map(|l| l.index)
            .unwrap_or(0);
        progress(
            &tx,
            AddNodePhase::CatchingUp,
            format!("replicating: {matched} of {leader_index}"),
            matched,
            leader_index,
        )
        .await;
        if matched + CAUGHT_UP_SLACK >= leader_index && matched > 0 {
            break;
        }
        if started.elapsed() > CATCH_UP_LIMIT {
            return Err(VaultError::unavailable(
                "the learner did not catch up in time",
            ));
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), metrics.changed()).await;
    }

    // 4. Voter.
    if !msg.learner_only && !already_voter {
        raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map_err(|e| VaultError::unavailable(format!("promote to voter: {e}")))?;
    }
    let what = if msg.learner_only {
        "caught up as a learner"
    } else {
        "voter"
    };
    progress(
        &tx,
        AddNodePhase::Done,
        format!("node {id} is a {what}"),
        0,
        0,
    )
    .await;
    Ok(())
}

/// Hands leadership to `to`.
///
/// openraft 0.9 has no leadership transfer message, so the leader stops sending heartbeats,
/// and the target starts an election as soon as the followers' leader lease has run out,
/// well before any other follower's election timeout fires. `from_node` tells a call from the
/// leader (to the target) from an operator's call.
pub async fn transfer_leader(
    node: &Node,
    to: u64,
    from_node: bool,
) -> Result<TransferLeaderResponse, VaultError> {
    let metrics = node.raft().metrics().borrow().clone();
    let membership = metrics.membership_config.membership().clone();
    if !membership.voter_ids().any(|v| v == to) {
        return Err(VaultError::invalid("to_node_id", "not_a_voter"));
    }
    let me = node.id();
    let raft = node.raft().raft();
    let lease = Duration::from_millis(node.config().raft.election_timeout_max_ms);
    if metrics.current_leader == Some(to) {
        return Ok(TransferLeaderResponse { leader_id: to });
    }
    if to == me {
        if !from_node {
            return Err(VaultError::invalid(
                "to_node_id",
                "send transfer-leader to the current leader",
            ));
        }
        // The leader has stopped heartbeats: wait out the followers' lease, then campaign.
        tokio::time::sleep(lease + Duration::from_millis(50)).await;
        raft.trigger()
            .elect()
            .await
            .map_err(|e| VaultError::Internal(format!("raft: {e}")))?;
        let mut m = node.raft().metrics();
        let won = tokio::time::timeout(
            lease * 3,
            m.wait_for(|m| m.current_leader.is_some() && m.current_term > metrics.current_term),
        )
        .await;
        let leader = node.raft().metrics().borrow().current_leader;
        return match (won, leader) {
            (Ok(Ok(_)), Some(l)) => Ok(TransferLeaderResponse { leader_id: l }),
            _ => Err(VaultError::unavailable(
                "the election did not finish in time",
            )),
        };
    }
    node.require_leader("send transfer-leader to the leader")?;
    let target = membership
        .get_node(&to)
        .cloned()
        .ok_or_else(|| VaultError::invalid("to_node_id", "unknown"))?;
    let mut client = PeerAdmin::new(node, &target.admin_addr)?.client;
    raft.runtime_config().heartbeat(false);
    raft.runtime_config().elect(false);
    let result = client
        .transfer_leader(TransferLeaderRequest { to_node_id: to })
        .await;
    raft.runtime_config().heartbeat(true);
    raft.runtime_config().elect(true);
    let answer = result.map_err(peer_error)?.into_inner();
    Ok(answer)
}
