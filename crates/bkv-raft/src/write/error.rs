//! [`WriteError`]: why a write was not committed, read from openraft's errors in one place
//! ([`WriteError::from_commit`]), and answered to a forwarding node in one place
//! (`From<WriteError> for Status`).

use bkv_proto::contract;
use openraft::error::{ClientWriteError, Fatal, RaftError};
use tonic::Status;
use tonic::metadata::MetadataValue;

use super::leader::LeaderHint;
use crate::types::{BkvNode, NodeId};

/// The error of a failed `client_write`, shared by every command of the entry.
pub type ProposeError = RaftError<NodeId, ClientWriteError<NodeId, BkvNode>>;

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// No leader was known (election in progress, or no quorum to elect one), or the node
    /// asked is not the leader. Retried by the writer until its deadline; then answer
    /// UNAVAILABLE.
    #[error("no leader")]
    NoLeader(LeaderHint),
    /// The leader took the write but could not commit it before the deadline (it cannot
    /// reach a majority). The write may still commit later. Answer UNAVAILABLE.
    #[error("the write was not committed in time (no quorum)")]
    NoQuorum(LeaderHint),
    /// The leader could not be reached or did not answer before the deadline. The write
    /// may still commit later. Answer UNAVAILABLE.
    #[error("no answer from the leader in time")]
    Timeout(LeaderHint),
    /// This node's Raft is shutting down. Answer UNAVAILABLE.
    #[error("raft is shutting down")]
    Stopped,
    /// This node's Raft stopped on a storage error or a panic: the node must stop serving.
    #[error("raft failed: {0}")]
    Fatal(Fatal<NodeId>),
    /// The encoded request is larger than any node accepts. Answer INVALID_ARGUMENT.
    #[error("request of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Encoded length.
        len: usize,
        /// Largest allowed.
        max: usize,
    },
    /// The leader's answer could not be read, or Raft answered what a vault write never
    /// gets (version skew or a bug). Not retried.
    #[error("bad answer from the leader: {0}")]
    BadAnswer(String),
}

impl WriteError {
    /// Reads a failed `client_write`: what every command of its entry failed with.
    pub fn from_commit(e: ProposeError) -> Self {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                Self::NoLeader(LeaderHint {
                    id: f.leader_id,
                    node: f.leader_node,
                })
            }
            RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                Self::BadAnswer(format!("membership error: {e}"))
            }
            RaftError::Fatal(f) => Self::from_fatal(f),
        }
    }

    /// A stopped Raft: shutting down, or failed.
    pub fn from_fatal(f: Fatal<NodeId>) -> Self {
        match f {
            Fatal::Stopped => Self::Stopped,
            other => Self::Fatal(other),
        }
    }

    /// Whether this is a transient lack of service (UNAVAILABLE to the client) rather than
    /// a failure of this node.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::NoLeader(_) | Self::NoQuorum(_) | Self::Timeout(_) | Self::Stopped
        )
    }

    /// The leader hint to send with UNAVAILABLE, if any.
    pub fn leader_hint(&self) -> Option<&LeaderHint> {
        match self {
            Self::NoLeader(h) | Self::NoQuorum(h) | Self::Timeout(h) => Some(h),
            _ => None,
        }
    }
}

impl From<WriteError> for Status {
    /// The answer to a forwarding node. UNAVAILABLE names the leader (id in
    /// [`contract::LEADER_ID`], client address in [`contract::LEADER`]) when known, so the
    /// forwarding node retries there.
    fn from(e: WriteError) -> Status {
        let message = e.to_string();
        let mut status = match &e {
            WriteError::TooLarge { .. } => return Status::invalid_argument(message),
            WriteError::BadAnswer(_) => return Status::internal(message),
            WriteError::Fatal(_) => {
                tracing::error!(error = %e, "raft is stopped; refusing forwarded write");
                Status::unavailable("raft is stopped on this node")
            }
            _ => Status::unavailable(message),
        };
        if let Some(hint) = e.leader_hint() {
            // A decimal number is always a valid metadata value.
            if let Some(v) = hint
                .id
                .and_then(|id| MetadataValue::try_from(id.to_string()).ok())
            {
                status.metadata_mut().insert(contract::LEADER_ID, v);
            }
            // An address with characters not allowed in metadata is left out.
            if let Some(v) = hint
                .client_addr()
                .and_then(|a| MetadataValue::try_from(a).ok())
            {
                status.metadata_mut().insert(contract::LEADER, v);
            }
        }
        status
    }
}
