//! [`FakeAdmin`]: a fake node's admin service for tests of the admin client and the CLI.
//! It checks the caller's certificate role like a node would, answers from a shared
//! [`FakeMembership`], and runs AddNode only on the node that the membership names as
//! leader.

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bkv_core::identity::Role;
use bkv_proto::v1::admin_server::{Admin, AdminServer};
use bkv_proto::v1::{
    AddNodePhase, AddNodeProgress, AddNodeRequest, AuditRecord, AuditRequest, ClusterStatusRequest,
    ClusterStatusResponse, EraseSharesRequest, EraseSharesResponse, InitRequest, InitResponse,
    MemberRole, MemberStatus, NodeInfoRequest, NodeInfoResponse, NodeStatusRequest, NodeView,
    ProvisionClusterKeyRequest, ProvisionClusterKeyResponse, RefreshSharesProgress,
    RefreshSharesRequest, RemoveNodeRequest, RemoveNodeResponse, SetShareMapRequest,
    SetShareMapResponse, SnapshotRequest, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse,
};
use futures::Stream;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// Key check value every fake node reports.
pub const FAKE_KCV: [u8; 3] = [0xab, 0xcd, 0xef];

/// The membership the fake nodes share.
#[derive(Debug, Default)]
pub struct FakeMembership {
    /// The leader's id; 0 for none.
    pub leader_id: u64,
    /// Term.
    pub term: u64,
    /// Members: node id, admin address, client address, voter?
    pub members: Vec<(u64, String, String, bool)>,
    /// The share map epoch in force.
    pub share_map_epoch: u64,
    /// The signed share map last set (not verified: the fake checks no maps).
    pub share_map: Option<bkv_proto::v1::SignedShareMap>,
    /// When set, the next SetShareMap finds that leadership just moved to this node: the
    /// node asked answers UNAVAILABLE "not the leader" and the leader becomes this one (an
    /// election between a client's status call and its write).
    pub leader_moves_on_share_map: Option<u64>,
}

/// A fake admin service of node `id`.
#[derive(Debug, Clone)]
pub struct FakeAdmin {
    id: u64,
    membership: Arc<Mutex<FakeMembership>>,
    enrollment_key: Vec<u8>,
    calls: Arc<Mutex<Vec<String>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn role<T>(request: &Request<T>) -> Option<Role> {
    let certs = request.peer_certs()?;
    let (_, cert) = X509Certificate::from_der(certs.first()?.as_ref()).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        GeneralName::URI(u) => Role::from_uri(u),
        _ => None,
    })
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl FakeAdmin {
    /// Node `id`'s admin service over the shared `membership`.
    pub fn new(id: u64, membership: Arc<Mutex<FakeMembership>>) -> Self {
        // A stand-in enrollment key: fixed bytes per node, so fingerprints are stable.
        let enrollment_key = (0..398u32).map(|i| (i as u8) ^ (id as u8)).collect();
        Self {
            id,
            membership,
            enrollment_key,
            calls: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The tonic service.
    pub fn service(&self) -> AdminServer<Self> {
        AdminServer::new(self.clone())
    }

    /// The fingerprint of this node's enrollment key (lowercase hex SHA-256).
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(&self.enrollment_key))
    }

    /// The RPCs this node received, by name.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }

    fn enter<T>(&self, name: &str, request: &Request<T>) -> Result<(), Status> {
        lock(&self.calls).push(name.to_string());
        match role(request) {
            Some(Role::Admin(_)) => Ok(()),
            Some(Role::Node(_)) if name == "NodeInfo" => Ok(()),
            Some(r) => Err(Status::permission_denied(format!(
                "{r} may not call {name}"
            ))),
            None => Err(Status::unauthenticated("no bkv role")),
        }
    }

    fn require_leader(&self) -> Result<(), Status> {
        if lock(&self.membership).leader_id == self.id {
            Ok(())
        } else {
            // As a real node answers: UNAVAILABLE, so that clients look for the leader again.
            Err(Status::unavailable("this node is not the leader"))
        }
    }

    fn view(&self, m: &FakeMembership) -> NodeView {
        NodeView {
            node_id: self.id,
            is_leader: m.leader_id == self.id,
            leader_id: m.leader_id,
            term: m.term,
            last_log_index: 42,
            commit_index: 42,
            applied_index: 41,
            key_check_value: FAKE_KCV.to_vec(),
            state_digest: "0123456789abcdef0123456789abcdef".into(),
            serving: true,
            not_serving_reason: String::new(),
            snapshot_index: 0,
            shares_held: 0,
            accounts_with_shares: 0,
            shares_missing: 0,
            in_share_map: true,
            share_map_epoch: m.share_map_epoch,
            share_map: m.share_map.clone(),
        }
    }
}

/// The share-receiving key a fake node reports: a fixed uncompressed point per node (not on
/// the curve; the fake does not check maps).
fn fake_receive_key(id: u64) -> [u8; 65] {
    let mut key = [id as u8; 65];
    key[0] = 0x04;
    key
}

#[tonic::async_trait]
impl Admin for FakeAdmin {
    async fn init(&self, request: Request<InitRequest>) -> Result<Response<InitResponse>, Status> {
        self.enter("Init", &request)?;
        if request.get_ref().cluster_name.is_empty() {
            return Err(Status::invalid_argument("cluster_name is empty"));
        }
        Ok(Response::new(InitResponse {
            cluster_id: vec![0x11; 16],
            key_check_value: FAKE_KCV.to_vec(),
            node_id: self.id,
        }))
    }

    async fn node_info(
        &self,
        request: Request<NodeInfoRequest>,
    ) -> Result<Response<NodeInfoResponse>, Status> {
        self.enter("NodeInfo", &request)?;
        Ok(Response::new(NodeInfoResponse {
            node_id: self.id,
            raft_addr: format!("127.0.0.1:{}", 7000 + self.id),
            client_addr: String::new(),
            admin_addr: String::new(),
            enrollment_public_key: self.enrollment_key.clone(),
            enrollment_fingerprint: self.fingerprint(),
            has_cluster_key: false,
            key_check_value: Vec::new(),
            cluster_id: Vec::new(),
            software_version: "fake".into(),
            share_receiving_key: fake_receive_key(self.id).to_vec(),
            share_receiving_fingerprint: String::new(),
        }))
    }

    async fn provision_cluster_key(
        &self,
        request: Request<ProvisionClusterKeyRequest>,
    ) -> Result<Response<ProvisionClusterKeyResponse>, Status> {
        self.enter("ProvisionClusterKey", &request)?;
        Err(Status::unimplemented("fake"))
    }

    type AddNodeStream = BoxStream<AddNodeProgress>;

    async fn add_node(
        &self,
        request: Request<AddNodeRequest>,
    ) -> Result<Response<Self::AddNodeStream>, Status> {
        self.enter("AddNode", &request)?;
        self.require_leader()?;
        let r = request.into_inner();
        let step = |phase: AddNodePhase, message: &str, matched: u64, leader: u64| {
            Ok(AddNodeProgress {
                phase: phase as i32,
                message: message.to_string(),
                matched_index: matched,
                leader_index: leader,
            })
        };
        let steps = vec![
            step(
                AddNodePhase::Enrolled,
                &format!("node {} enrolled ({})", r.node_id, r.enrollment_fingerprint),
                0,
                0,
            ),
            step(
                AddNodePhase::KeyProvisioned,
                "cluster key provisioned",
                0,
                0,
            ),
            step(AddNodePhase::CatchingUp, "replicating", 20, 42),
            step(AddNodePhase::CatchingUp, "replicating", 42, 42),
            step(AddNodePhase::Done, "promoted to voter", 42, 42),
        ];
        lock(&self.membership).members.push((
            r.node_id,
            r.admin_addr,
            String::new(),
            !r.learner_only,
        ));
        Ok(Response::new(Box::pin(tokio_stream::iter(steps))))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        self.enter("RemoveNode", &request)?;
        self.require_leader()?;
        let id = request.get_ref().node_id;
        let mut m = lock(&self.membership);
        m.members.retain(|(n, ..)| *n != id);
        Ok(Response::new(RemoveNodeResponse {
            voters: m.members.iter().filter(|x| x.3).map(|x| x.0).collect(),
            learners: m.members.iter().filter(|x| !x.3).map(|x| x.0).collect(),
        }))
    }

    async fn status(
        &self,
        request: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        self.enter("Status", &request)?;
        let m = lock(&self.membership);
        let members = m
            .members
            .iter()
            .map(|(id, admin, client, voter)| MemberStatus {
                node_id: *id,
                raft_addr: format!("127.0.0.1:{}", 7000 + id),
                role: if *voter {
                    MemberRole::Voter as i32
                } else {
                    MemberRole::Learner as i32
                },
                matched_index: 42,
                status: (*id == self.id).then(|| self.view(&m)),
                error: if *id == self.id {
                    String::new()
                } else {
                    "not asked (fake)".into()
                },
                admin_addr: admin.clone(),
                client_addr: client.clone(),
            })
            .collect();
        Ok(Response::new(ClusterStatusResponse {
            cluster_name: "bkv-test".into(),
            cluster_id: vec![0x11; 16],
            leader_id: m.leader_id,
            term: m.term,
            members,
        }))
    }

    async fn node_status(
        &self,
        request: Request<NodeStatusRequest>,
    ) -> Result<Response<NodeView>, Status> {
        self.enter("NodeStatus", &request)?;
        let m = lock(&self.membership);
        Ok(Response::new(self.view(&m)))
    }

    async fn transfer_leader(
        &self,
        request: Request<TransferLeaderRequest>,
    ) -> Result<Response<TransferLeaderResponse>, Status> {
        self.enter("TransferLeader", &request)?;
        self.require_leader()?;
        let to = request.get_ref().to_node_id;
        let mut m = lock(&self.membership);
        m.leader_id = to;
        m.term += 1;
        Ok(Response::new(TransferLeaderResponse { leader_id: to }))
    }

    async fn set_share_map(
        &self,
        request: Request<SetShareMapRequest>,
    ) -> Result<Response<SetShareMapResponse>, Status> {
        self.enter("SetShareMap", &request)?;
        {
            let mut m = lock(&self.membership);
            if let Some(next) = m.leader_moves_on_share_map.take() {
                m.leader_id = next;
                m.term += 1;
            }
        }
        self.require_leader()?;
        let mut m = lock(&self.membership);
        m.share_map_epoch += 1;
        m.share_map = request.into_inner().share_map;
        Ok(Response::new(SetShareMapResponse {
            epoch: m.share_map_epoch,
        }))
    }

    async fn erase_shares(
        &self,
        request: Request<EraseSharesRequest>,
    ) -> Result<Response<EraseSharesResponse>, Status> {
        self.enter("EraseShares", &request)?;
        if request.get_ref().node_id != self.id {
            return Err(Status::invalid_argument(format!(
                "node_id: this is node {}",
                self.id
            )));
        }
        Ok(Response::new(EraseSharesResponse {
            keys_destroyed: 3,
            ledgers_erased: 0,
        }))
    }

    type RefreshSharesStream = BoxStream<RefreshSharesProgress>;

    async fn refresh_shares(
        &self,
        request: Request<RefreshSharesRequest>,
    ) -> Result<Response<Self::RefreshSharesStream>, Status> {
        self.enter("RefreshShares", &request)?;
        let step = |refreshed: u64, done: bool| {
            Ok(RefreshSharesProgress {
                records_seen: refreshed + 1,
                refreshed,
                skipped: [("holder_unreachable".to_string(), 1)].into(),
                done,
                elapsed_ms: 10 * refreshed,
            })
        };
        let steps = vec![step(64, false), step(100, true)];
        Ok(Response::new(Box::pin(tokio_stream::iter(steps))))
    }

    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotResponse>, Status> {
        self.enter("Snapshot", &request)?;
        Ok(Response::new(SnapshotResponse {
            last_log_index: 41,
            size_bytes: 4096,
        }))
    }

    type AuditStream = BoxStream<AuditRecord>;

    async fn audit(
        &self,
        request: Request<AuditRequest>,
    ) -> Result<Response<Self::AuditStream>, Status> {
        self.enter("Audit", &request)?;
        let from = request.get_ref().from_seq.max(1);
        let records: Vec<Result<AuditRecord, Status>> = (from..=3)
            .map(|seq| {
                Ok(AuditRecord {
                    seq,
                    log_index: seq + 10,
                    kind: "registered".into(),
                    account_hash: "feed".into(),
                    version: 11,
                    charge: 0,
                    guesses_remaining: 0,
                    at_unix_ms: 1_700_000_000_000 + seq,
                    json: format!(r#"{{"seq":{seq},"kind":"registered"}}"#),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(records))))
    }
}
