//! The Raft network over gRPC: [`GrpcNetworkFactory`] and [`GrpcNetwork`].
//!
//! openraft's request and response types travel postcard-encoded in `RaftMessage.payload`;
//! a response is `Result<Resp, RaftError<..>>` as the remote Raft returned it. Errors map
//! onto openraft's: a peer that cannot be connected to is `Unreachable` (openraft backs off),
//! other transport failures are `NetworkError`, an error the remote Raft returned is a
//! `RemoteError`, and a call past its deadline is a `Timeout`.

use std::fmt;
use std::time::Duration;

use bkv_proto::v1::RaftMessage;
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, RPCTypes};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Code;

use crate::codec;
use crate::config::{MAX_MESSAGE_BYTES, MAX_RPC_PAYLOAD_BYTES};
use crate::peers::{PeerAddrError, PeerChannels};
use crate::types::{BkvNode, NodeId, TypeConfig};

/// Makes a [`GrpcNetwork`] per target node; all of them share the node's [`PeerChannels`].
#[derive(Clone, Debug)]
pub struct GrpcNetworkFactory {
    id: NodeId,
    peers: PeerChannels,
}

impl GrpcNetworkFactory {
    /// The network of node `id`, reaching peers through `peers`.
    pub fn new(id: NodeId, peers: PeerChannels) -> Self {
        Self { id, peers }
    }
}

impl RaftNetworkFactory<TypeConfig> for GrpcNetworkFactory {
    type Network = GrpcNetwork;

    async fn new_client(&mut self, target: NodeId, node: &BkvNode) -> GrpcNetwork {
        GrpcNetwork {
            id: self.id,
            target,
            node: node.clone(),
            peers: self.peers.clone(),
        }
    }
}

/// The Raft RPCs of one node to one target, over the target's Raft listener.
pub struct GrpcNetwork {
    id: NodeId,
    target: NodeId,
    node: BkvNode,
    peers: PeerChannels,
}

impl fmt::Debug for GrpcNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcNetwork")
            .field("id", &self.id)
            .field("target", &self.target)
            .field("addr", &self.node.raft_addr)
            .finish()
    }
}

/// How one gRPC exchange failed, before it is typed for openraft.
enum Failure {
    /// No connection (refused, unresolvable, TLS handshake failed, address unusable).
    Unreachable(Box<dyn std::error::Error + Send + Sync>),
    /// Another transport or protocol failure.
    Network(Box<dyn std::error::Error + Send + Sync>),
    /// No answer before the deadline.
    Timeout(Duration),
}

impl From<PeerAddrError> for Failure {
    fn from(e: PeerAddrError) -> Self {
        Failure::Unreachable(Box::new(e))
    }
}

/// A payload that failed to encode or decode.
#[derive(Debug, thiserror::Error)]
#[error("raft payload: {0}")]
struct PayloadError(#[from] codec::CodecError);

impl GrpcNetwork {
    /// Sends one encoded request and returns the encoded answer.
    async fn exchange(
        &self,
        action: RPCTypes,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<Vec<u8>, Failure> {
        let mut client = self.peers.raft_client(&self.node.raft_addr)?;
        let msg = RaftMessage { payload };
        let call = async move {
            match action {
                RPCTypes::AppendEntries => client.append_entries(msg).await,
                RPCTypes::Vote => client.vote(msg).await,
                RPCTypes::InstallSnapshot => client.install_snapshot(msg).await,
            }
        };
        match tokio::time::timeout(ttl, call).await {
            Err(_) => Err(Failure::Timeout(ttl)),
            Ok(Ok(resp)) => Ok(resp.into_inner().payload),
            Ok(Err(status)) if status.code() == Code::Unavailable => {
                Err(Failure::Unreachable(Box::new(status)))
            }
            Ok(Err(status)) => Err(Failure::Network(Box::new(status))),
        }
    }

    /// One typed RPC on an encoded request: exchange, decode, and map failures to
    /// openraft's errors.
    async fn rpc<Resp, E>(
        &self,
        action: RPCTypes,
        payload: Vec<u8>,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BkvNode, RaftError<NodeId, E>>>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        // openraft drops the call at `hard_ttl`; give up a little earlier so that the
        // failure is reported as a timeout.
        let ttl = option.soft_ttl();
        let answer = self
            .exchange(action, payload, ttl)
            .await
            .map_err(|f| self.rpc_error(action, f))?;
        let result: Result<Resp, RaftError<NodeId, E>> =
            codec::decode_bounded(&answer, MAX_MESSAGE_BYTES)
                .map_err(|e| NetworkError::new(&PayloadError(e)))?;
        result.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }

    fn rpc_error<E: std::error::Error>(
        &self,
        action: RPCTypes,
        failure: Failure,
    ) -> RPCError<NodeId, BkvNode, RaftError<NodeId, E>> {
        match failure {
            Failure::Unreachable(e) => {
                RPCError::Unreachable(Unreachable::from(AnyError::from_dyn(&*e, None)))
            }
            Failure::Network(e) => {
                RPCError::Network(NetworkError::from(AnyError::from_dyn(&*e, None)))
            }
            Failure::Timeout(timeout) => RPCError::Timeout(Timeout {
                action,
                id: self.id,
                target: self.target,
                timeout,
            }),
        }
    }
}

/// Encodes a request; a failure (not expected for openraft's plain data) is a network error.
fn encode<Req: Serialize>(req: &Req) -> Result<Vec<u8>, NetworkError> {
    codec::encode(req).map_err(|e| NetworkError::new(&PayloadError(e)))
}

impl RaftNetwork<TypeConfig> for GrpcNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BkvNode, RaftError<NodeId>>> {
        let payload = encode(&rpc)?;
        let n = rpc.entries.len() as u64;
        if payload.len() > MAX_RPC_PAYLOAD_BYTES && n > 1 {
            // openraft retries at once with fewer entries.
            return Err(PayloadTooLarge::new_entries_hint(n / 2).into());
        }
        self.rpc(RPCTypes::AppendEntries, payload, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BkvNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.rpc(RPCTypes::InstallSnapshot, encode(&rpc)?, &option)
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BkvNode, RaftError<NodeId>>> {
        self.rpc(RPCTypes::Vote, encode(&rpc)?, &option).await
    }

    /// Retries an unreachable peer after 100, 200, 400 ms, then every 500 ms, so that a
    /// restarted node is picked up quickly without flooding a dead one.
    fn backoff(&self) -> Backoff {
        let steps = [100, 200, 400].into_iter().chain(std::iter::repeat(500));
        Backoff::new(steps.map(Duration::from_millis))
    }
}
