//! The operator client: every `bkv.v1.Admin` RPC under mutual TLS with an admin
//! certificate of the cluster CA.
//!
//! Calls about one node (init, node info, node status, snapshot, audit) go to the first
//! endpoint; `status` asks the endpoints in turn until one answers; membership changes and
//! leader transfers go to the leader, found through `status`.

use std::time::Duration;

use bkv_core::share_map::threshold_for;
use bkv_core::{ShareHolder, ShareMap};
use bkv_proto::v1::admin_client::AdminClient as RawAdminClient;
use bkv_proto::v1::{
    AddNodeProgress, AddNodeRequest, AuditRecord, AuditRequest, ClusterStatusRequest,
    ClusterStatusResponse, EraseSharesRequest, EraseSharesResponse, InitRequest, InitResponse,
    MemberRole, NodeInfoRequest, NodeInfoResponse, NodeStatusRequest, NodeView,
    RefreshSharesProgress, RefreshSharesRequest, RemoveNodeRequest, RemoveNodeResponse,
    SetShareMapRequest, SignedShareMap as SignedShareMapProto, SnapshotRequest, SnapshotResponse,
    TransferLeaderRequest, TransferLeaderResponse,
};
use ed25519_dalek::{Signer as _, SigningKey};
use tonic::transport::{Channel, ClientTlsConfig, Identity};

use crate::{AdminConfig, AdminError};
use bkv_client::endpoint::{self, EndpointError};

/// A client of the admin API.
///
/// ```no_run
/// use bkv_admin::{AdminClient, AdminConfig};
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let config = AdminConfig::new(
///     vec!["127.0.0.1:7102".into()],
///     std::fs::read("pki/ca.pem")?,
///     std::fs::read("pki/admin.pem")?,
///     std::fs::read("pki/admin.key")?,
/// );
/// let admin = AdminClient::connect(config).await?;
/// let status = admin.status().await?;
/// println!("leader {} term {}", status.leader_id, status.term);
/// println!("leader's admin address: {}", admin.leader().await?);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AdminClient {
    targets: Vec<(String, Channel)>,
    tls: ClientTlsConfig,
    call_timeout: Duration,
}

/// A server stream of the admin API (AddNode progress, audit records).
#[derive(Debug)]
pub struct AdminStream<T> {
    endpoint: String,
    inner: tonic::Streaming<T>,
}

impl<T> AdminStream<T> {
    /// The next message; `None` at the end of the stream.
    pub async fn next(&mut self) -> Result<Option<T>, AdminError> {
        self.inner
            .message()
            .await
            .map_err(|s| status_error(&self.endpoint, &s))
    }
}

fn status_error(endpoint: &str, status: &tonic::Status) -> AdminError {
    AdminError::Status {
        endpoint: endpoint.to_string(),
        code: status.code(),
        message: status.message().to_string(),
    }
}

impl AdminClient {
    /// Sets up mutual-TLS channels to every endpoint (connected on first use).
    pub async fn connect(config: AdminConfig) -> Result<Self, AdminError> {
        if config.endpoints.is_empty() {
            return Err(EndpointError::Malformed(String::new()).into());
        }
        let identity = Identity::from_pem(&config.cert_pem, config.key_pem.as_slice());
        let tls = endpoint::tls(&config.ca_cert_pem, Some(identity));
        let mut targets = Vec::with_capacity(config.endpoints.len());
        for e in &config.endpoints {
            let url = endpoint::https_url(e)?;
            let channel = endpoint::channel(&url, tls.clone(), config.call_timeout)?;
            targets.push((url, channel));
        }
        Ok(Self {
            targets,
            tls,
            call_timeout: config.call_timeout,
        })
    }

    /// A client for `address` (`host:port` or URL) with the same credentials.
    pub fn at(&self, address: &str) -> Result<Self, AdminError> {
        let url = endpoint::https_url(address)?;
        let channel = endpoint::channel(&url, self.tls.clone(), self.call_timeout)?;
        Ok(Self {
            targets: vec![(url, channel)],
            tls: self.tls.clone(),
            call_timeout: self.call_timeout,
        })
    }

    /// The endpoints, normalized to `https://host:port`.
    pub fn endpoints(&self) -> Vec<String> {
        self.targets.iter().map(|(u, _)| u.clone()).collect()
    }

    fn first(&self) -> (&str, RawAdminClient<Channel>) {
        // `connect` and `at` never build a client without a target.
        let (url, channel) = &self.targets[0];
        (url, RawAdminClient::new(channel.clone()))
    }

    async fn unary<T, Fut>(&self, endpoint: &str, fut: Fut) -> Result<T, AdminError>
    where
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        match tokio::time::timeout(self.call_timeout, fut).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(status_error(endpoint, &s)),
            Err(_) => Err(AdminError::Timeout {
                endpoint: endpoint.to_string(),
                after: self.call_timeout,
            }),
        }
    }

    /// Initialises a new cluster on the first endpoint's node. A guess limit of 0 takes
    /// the node's default.
    pub async fn init(
        &self,
        cluster_name: &str,
        default_guess_limit: u32,
        max_guess_limit: u32,
        identity: &SigningKey,
    ) -> Result<InitResponse, AdminError> {
        // The first share map: this node alone, with the key its token holds.
        let info = self.node_info().await?;
        let holder = share_holder(&info)?;
        let map = ShareMap {
            cluster_name: cluster_name.to_string(),
            epoch: 1,
            threshold: 1,
            holders: vec![holder],
        };
        let (url, mut c) = self.first();
        let request = InitRequest {
            cluster_name: cluster_name.to_string(),
            default_guess_limit,
            max_guess_limit,
            identity_public_key: identity.verifying_key().to_bytes().to_vec(),
            share_map: Some(sign_map(&map, identity)),
        };
        self.unary(url, c.init(request)).await
    }

    /// Puts a new share map in force, signed with the cluster identity key: every voter of
    /// the cluster, each with the share-receiving key its node reports, at the next epoch.
    /// Run after a voter is added or removed. When the map in force already names exactly
    /// the voters with the same keys, nothing changes (safe to re-run). While the nodes know
    /// no leader or leadership moves (an election under way, as right after the leader
    /// removed itself), it starts again from the cluster's status, for up to 20 s in all.
    pub async fn publish_share_map(
        &self,
        identity: &SigningKey,
    ) -> Result<PublishedShareMap, AdminError> {
        let until = tokio::time::Instant::now() + LEADER_WAIT;
        loop {
            match self.publish_share_map_once(identity, until).await {
                Err(e) if e.is_transient() && tokio::time::Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                done => return done,
            }
        }
    }

    /// One try of [`Self::publish_share_map`]: reads the status and the voters' keys, and
    /// proposes the map through the leader. Starting it again is safe: a map that was put in
    /// force is found unchanged.
    async fn publish_share_map_once(
        &self,
        identity: &SigningKey,
        until: tokio::time::Instant,
    ) -> Result<PublishedShareMap, AdminError> {
        let wait = until.saturating_duration_since(tokio::time::Instant::now());
        let (status, leader) = self.status_with_leader(wait).await?;
        let leader = self.at(&leader)?;
        let leader_view = leader.node_status().await?;
        let cluster_name = status.cluster_name.clone();
        let mut holders = Vec::new();
        for member in &status.members {
            if member.role != MemberRole::Voter as i32 {
                continue;
            }
            let info = self.at(&member.admin_addr)?.node_info().await?;
            if info.node_id != member.node_id {
                return Err(AdminError::Invalid(format!(
                    "{} answers as node {}, not node {}",
                    member.admin_addr, info.node_id, member.node_id
                )));
            }
            holders.push(share_holder(&info)?);
        }
        holders.sort_by_key(|h| h.node_id);
        if let Some(current) = &leader_view.share_map {
            let current = ShareMap::parse(&current.encoded).map_err(|e| {
                AdminError::Invalid(format!("the leader's share map does not parse: {e}"))
            })?;
            if current.holders == holders {
                return Ok(PublishedShareMap {
                    map: current,
                    unchanged: true,
                });
            }
        }
        let map = ShareMap {
            cluster_name,
            epoch: leader_view.share_map_epoch + 1,
            threshold: u16::try_from(threshold_for(holders.len()))
                .map_err(|_| AdminError::Invalid("too many voters".into()))?,
            holders,
        };
        let (url, mut c) = leader.first();
        let request = SetShareMapRequest {
            share_map: Some(sign_map(&map, identity)),
        };
        self.unary(url, c.set_share_map(request)).await?;
        Ok(PublishedShareMap {
            map,
            unchanged: false,
        })
    }

    /// The first endpoint's node identity (enrollment key and fingerprint).
    pub async fn node_info(&self) -> Result<NodeInfoResponse, AdminError> {
        let (url, mut c) = self.first();
        self.unary(url, c.node_info(NodeInfoRequest {})).await
    }

    /// The first endpoint's own view, without fan-out, and without its state digest.
    pub async fn node_status(&self) -> Result<NodeView, AdminError> {
        self.node_view(false).await
    }

    /// [`Self::node_status`] with the state digest, which holds up the node's applies while
    /// it encodes its whole state (about 0.7 s per million accounts).
    pub async fn node_status_with_digest(&self) -> Result<NodeView, AdminError> {
        self.node_view(true).await
    }

    async fn node_view(&self, with_digest: bool) -> Result<NodeView, AdminError> {
        let (url, mut c) = self.first();
        self.unary(url, c.node_status(NodeStatusRequest { with_digest }))
            .await
    }

    /// Erases the first endpoint's node's shares (it must be node `node_id`, removed from
    /// the cluster): see `Admin.EraseShares`.
    pub async fn erase_shares(&self, node_id: u64) -> Result<EraseSharesResponse, AdminError> {
        let (url, mut c) = self.first();
        self.unary(url, c.erase_shares(EraseSharesRequest { node_id }))
            .await
    }

    /// Builds a snapshot on the first endpoint's node.
    pub async fn snapshot(&self) -> Result<SnapshotResponse, AdminError> {
        let (url, mut c) = self.first();
        self.unary(url, c.snapshot(SnapshotRequest {})).await
    }

    /// Runs a share refresh pass on the first endpoint; its progress, the last message with
    /// `done` set.
    pub async fn refresh_shares(&self) -> Result<AdminStream<RefreshSharesProgress>, AdminError> {
        let (url, mut c) = self.first();
        let inner = self
            .unary(url, c.refresh_shares(RefreshSharesRequest {}))
            .await?;
        Ok(AdminStream {
            endpoint: url.to_string(),
            inner,
        })
    }

    /// The first endpoint's audit events from `from_seq`; with `follow`, the stream stays
    /// open for new events.
    pub async fn audit(
        &self,
        from_seq: u64,
        follow: bool,
    ) -> Result<AdminStream<AuditRecord>, AdminError> {
        let (url, mut c) = self.first();
        let inner = self
            .unary(url, c.audit(AuditRequest { from_seq, follow }))
            .await?;
        Ok(AdminStream {
            endpoint: url.to_string(),
            inner,
        })
    }

    /// The cluster's status from the first endpoint that answers, without state digests.
    pub async fn status(&self) -> Result<ClusterStatusResponse, AdminError> {
        self.cluster_status(false).await
    }

    /// [`Self::status`] with every member's state digest, which holds up each node's
    /// applies while it encodes its whole state (about 0.7 s per million accounts).
    pub async fn status_with_digests(&self) -> Result<ClusterStatusResponse, AdminError> {
        self.cluster_status(true).await
    }

    async fn cluster_status(
        &self,
        with_digests: bool,
    ) -> Result<ClusterStatusResponse, AdminError> {
        let mut last = None;
        for (url, channel) in &self.targets {
            let mut c = RawAdminClient::new(channel.clone());
            match self
                .unary(url, c.status(ClusterStatusRequest { with_digests }))
                .await
            {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| EndpointError::Malformed(String::new()).into()))
    }

    /// The leader's admin address (`host:port`), from [`Self::status`].
    pub async fn leader(&self) -> Result<String, AdminError> {
        let status = self.status().await?;
        leader_admin_addr(&status)
    }

    /// The cluster status and the leader's admin address, asking again for up to `wait`
    /// while the nodes know no leader among the members (an election under way, as right
    /// after the leader removed itself).
    async fn status_with_leader(
        &self,
        wait: Duration,
    ) -> Result<(ClusterStatusResponse, String), AdminError> {
        let until = tokio::time::Instant::now() + wait;
        loop {
            let status = self.status().await?;
            match leader_admin_addr(&status) {
                Ok(leader) => return Ok((status, leader)),
                Err(AdminError::NoLeader(_)) if tokio::time::Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A client for the leader's admin endpoint.
    pub async fn leader_client(&self) -> Result<Self, AdminError> {
        let address = self.leader().await?;
        self.at(&address)
    }

    /// Adds a node through the leader: `fingerprint` is the enrollment fingerprint the
    /// operator confirmed. Streams the ceremony's progress.
    pub async fn add_node(
        &self,
        node_id: u64,
        admin_addr: &str,
        fingerprint: &str,
        learner_only: bool,
    ) -> Result<AdminStream<AddNodeProgress>, AdminError> {
        let leader = self.leader_client().await?;
        let (url, mut c) = leader.first();
        let request = AddNodeRequest {
            node_id,
            admin_addr: admin_addr.to_string(),
            enrollment_fingerprint: fingerprint.to_string(),
            learner_only,
        };
        let inner = leader.unary(url, c.add_node(request)).await?;
        Ok(AdminStream {
            endpoint: url.to_string(),
            inner,
        })
    }

    /// Removes a node, through the leader.
    pub async fn remove_node(&self, node_id: u64) -> Result<RemoveNodeResponse, AdminError> {
        let leader = self.leader_client().await?;
        let (url, mut c) = leader.first();
        leader
            .unary(url, c.remove_node(RemoveNodeRequest { node_id }))
            .await
    }

    /// Hands leadership to voter `to`, through the current leader.
    pub async fn transfer_leader(&self, to: u64) -> Result<TransferLeaderResponse, AdminError> {
        let leader = self.leader_client().await?;
        let (url, mut c) = leader.first();
        leader
            .unary(
                url,
                c.transfer_leader(TransferLeaderRequest { to_node_id: to }),
            )
            .await
    }
}

/// A node's entry in a share map, from its NodeInfo.
fn share_holder(info: &NodeInfoResponse) -> Result<ShareHolder, AdminError> {
    let receive_key: [u8; 65] = info
        .share_receiving_key
        .as_slice()
        .try_into()
        .map_err(|_| {
            AdminError::Invalid(format!(
                "node {} reports no share-receiving key",
                info.node_id
            ))
        })?;
    Ok(ShareHolder {
        node_id: info.node_id,
        receive_key,
    })
}

/// How long [`AdminClient::publish_share_map`] keeps trying while there is no leader or
/// leadership moves: after a leader removes itself, the other voters elect one within a few
/// election timeouts, and on a loaded machine a second election can follow the first.
const LEADER_WAIT: Duration = Duration::from_secs(20);

/// What [`AdminClient::publish_share_map`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedShareMap {
    /// The map in force afterwards.
    pub map: ShareMap,
    /// True when the map in force already named exactly the voters, with the same
    /// share-receiving keys, so nothing was signed or proposed.
    pub unchanged: bool,
}

/// A share map signed with the identity key.
fn sign_map(map: &ShareMap, identity: &SigningKey) -> SignedShareMapProto {
    let encoded = map.encode();
    SignedShareMapProto::from(&bkv_core::SignedShareMap {
        signature: identity.sign(&encoded).to_bytes(),
        encoded,
    })
}

/// The leader's admin address in a status answer.
pub fn leader_admin_addr(status: &ClusterStatusResponse) -> Result<String, AdminError> {
    if status.leader_id == 0 {
        return Err(AdminError::NoLeader(
            "the node asked knows no leader".into(),
        ));
    }
    let member = status
        .members
        .iter()
        .find(|m| m.node_id == status.leader_id)
        .ok_or_else(|| {
            AdminError::NoLeader(format!(
                "leader {} is not in the membership list",
                status.leader_id
            ))
        })?;
    if member.admin_addr.is_empty() {
        return Err(AdminError::NoLeader(format!(
            "leader {} has no admin address",
            status.leader_id
        )));
    }
    Ok(member.admin_addr.clone())
}

#[cfg(test)]
mod tests;
