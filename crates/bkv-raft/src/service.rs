//! [`RaftService`]: the server side of `bkv.v1.Raft`, over a node's local openraft
//! instance.
//!
//! Every payload is decoded once here, bounded in size and strictly (no trailing bytes);
//! garbage is answered with INVALID_ARGUMENT and never reaches openraft. Replication RPCs
//! answer the local Raft's `Result` encoded as it is; `Forward` is the write path's
//! (`crate::write::forward`).

use std::fmt;
use std::time::Duration;

use bkv_proto::v1::raft_server::{Raft, RaftServer};
use bkv_proto::v1::{ForwardRequest, ForwardResponse, RaftMessage};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{EntryPayload, Membership};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Response, Status};

use crate::chunk_guard::ChunkGuard;
use crate::codec;
use crate::config::MAX_MESSAGE_BYTES;
use crate::types::{BkvNode, BkvRaft, NodeId, TypeConfig};
use crate::write::{Batcher, forward};

/// The `bkv.v1.Raft` service of one node.
#[derive(Clone)]
pub struct RaftService {
    raft: BkvRaft,
    batcher: Batcher,
    forward_timeout: Duration,
    chunks: ChunkGuard,
}

impl fmt::Debug for RaftService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaftService")
            .field("forward_timeout", &self.forward_timeout)
            .finish_non_exhaustive()
    }
}

impl RaftService {
    /// The service over `raft`; a forwarded write that is not committed within
    /// `forward_timeout` is answered UNAVAILABLE.
    pub fn new(raft: BkvRaft, batcher: Batcher, forward_timeout: Duration) -> Self {
        Self {
            raft,
            batcher,
            forward_timeout,
            chunks: ChunkGuard::default(),
        }
    }

    /// The tonic server for this service, with bkv's message size limits.
    pub fn into_server(self) -> RaftServer<RaftService> {
        RaftServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

fn decode_payload<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Status> {
    codec::decode_bounded(bytes, MAX_MESSAGE_BYTES)
        .map_err(|e| Status::invalid_argument(format!("{what}: {e}")))
}

fn reply<T: Serialize>(result: &T) -> Result<Response<RaftMessage>, Status> {
    let payload = codec::encode(result)
        .map_err(|e| Status::internal(format!("encoding the raft answer: {e}")))?;
    Ok(Response::new(RaftMessage { payload }))
}

/// Refuses a membership openraft would trip over: an empty configuration, or a voter
/// without a node.
fn check_membership(m: &Membership<NodeId, BkvNode>) -> Result<(), Status> {
    let configs = m.get_joint_config();
    if configs.is_empty() || configs.iter().any(|c| c.is_empty()) {
        return Err(Status::invalid_argument("membership: empty configuration"));
    }
    if m.voter_ids().any(|id| m.get_node(&id).is_none()) {
        return Err(Status::invalid_argument("membership: voter without a node"));
    }
    Ok(())
}

#[tonic::async_trait]
impl Raft for RaftService {
    async fn append_entries(
        &self,
        request: tonic::Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> =
            decode_payload(&request.get_ref().payload, "append entries")?;
        for entry in &rpc.entries {
            if let EntryPayload::Membership(m) = &entry.payload {
                check_membership(m)?;
            }
        }
        reply(&self.raft.append_entries(rpc).await)
    }

    async fn vote(
        &self,
        request: tonic::Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc: VoteRequest<NodeId> = decode_payload(&request.get_ref().payload, "vote")?;
        reply(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: tonic::Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> =
            decode_payload(&request.get_ref().payload, "install snapshot")?;
        check_membership(rpc.meta.last_membership.membership())?;
        let (id, offset, len, done) = (
            rpc.meta.snapshot_id.clone(),
            rpc.offset,
            rpc.data.len(),
            rpc.done,
        );
        if !self.chunks.admits(&id, offset) {
            return Err(Status::invalid_argument(
                "install snapshot: chunk offset past the data received",
            ));
        }
        let result = self.raft.install_snapshot(rpc).await;
        if result.is_ok() {
            self.chunks.accepted(&id, offset, len, done);
        }
        reply(&result)
    }

    async fn forward(
        &self,
        request: tonic::Request<ForwardRequest>,
    ) -> Result<Response<ForwardResponse>, Status> {
        forward::serve(&self.batcher, request.get_ref(), self.forward_timeout)
            .await
            .map(Response::new)
    }
}
