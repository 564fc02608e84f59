//! [`Writer`]: the path of every client write. It commits a vault command through Raft,
//! locally when this node leads, otherwise by forwarding it to the leader over the Raft
//! service, and retries across leader changes until a deadline.
//!
//! # Why retrying is safe
//!
//! A retried write may be committed twice: a write whose answer was lost (leader crash,
//! timeout, dropped connection) may still have been committed, and the retry then proposes
//! the same command again. Every bkv command is idempotent by design, so the second entry
//! changes nothing and answers the same outcome:
//! - `Stage` is keyed by the client's request id (a retried id returns the staged version);
//! - `ChargeGuess` by the attempt id and the hash of the credential request (the same pair
//!   returns the same charge; it never charges twice);
//! - `Activate`, `ResetGuesses`, `Destroy` and `Delete` are keyed by their arguments
//!   (account, version, charge) and state the end result, not a step;
//! - `Bootstrap` refuses a second bootstrap.

use std::fmt;
use std::time::Duration;

use bkv_core::{Outcome, Request};
use bkv_proto::v1::ForwardRequest;
use openraft::error::{ClientWriteError, Fatal, RaftError};
use tokio::time::Instant;
use tonic::Code;

use crate::batcher::{Batcher, CommitError};
use crate::codec;
use crate::config::MAX_MESSAGE_BYTES;
use crate::peers::PeerChannels;
use crate::service::{LEADER_ID_KEY, MAX_FORWARD_REQUEST_BYTES, leader_hint};
use crate::types::{BkvNode, BkvRaft, NodeId};

/// Longest pause between attempts while no leader is known or the leader is unreachable
/// (an attempt starts sooner when the metrics show a change).
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Shortest pause between attempts, so that a burst of metrics changes cannot spin.
const MIN_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// A committed and applied write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The log index of the entry the command was applied in (an entry may carry several
    /// commands, see [`Batcher`]).
    pub log_index: u64,
    /// What the state machine answered.
    pub outcome: Outcome,
}

/// Who leads, as far as this node knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderHint {
    /// The leader's node id.
    pub id: Option<NodeId>,
    /// The leader's client address.
    pub client_addr: Option<String>,
}

impl LeaderHint {
    fn of(raft: &BkvRaft) -> Self {
        let (id, node) = leader_hint(raft);
        Self {
            id,
            client_addr: node.map(|n| n.client_addr),
        }
    }
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// No leader was known (election in progress, or no quorum to elect one) until the
    /// deadline. Answer UNAVAILABLE.
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
    /// The leader's answer could not be read (version skew or a bug). Not retried.
    #[error("bad answer from the leader: {0}")]
    BadAnswer(String),
}

impl WriteError {
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

/// What one forwarding attempt gave.
enum Attempt {
    Done(Written),
    /// Try again (with this error if the deadline passes first).
    Retry(WriteError),
    Fail(WriteError),
}

/// Commits vault commands through Raft from any node. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    id: NodeId,
    raft: BkvRaft,
    batcher: Batcher,
    peers: PeerChannels,
    deadline: Duration,
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("id", &self.id)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// A writer of node `id`, giving up on a write after `deadline`. Local writes go through
    /// `batcher`, the node's group commit.
    pub fn new(
        id: NodeId,
        raft: BkvRaft,
        batcher: Batcher,
        peers: PeerChannels,
        deadline: Duration,
    ) -> Self {
        Self {
            id,
            raft,
            batcher,
            peers,
            deadline,
        }
    }

    /// Commits `request` and returns the state machine's outcome and the log index.
    ///
    /// Retries across leader changes until the writer's deadline (see the module docs for
    /// why that is safe).
    pub async fn write(&self, request: Request) -> Result<Written, WriteError> {
        // Every entry must fit one replication message and one forward, wherever it is
        // proposed.
        let encoded =
            codec::encode(&request).map_err(|e| WriteError::BadAnswer(format!("encoding: {e}")))?;
        let len = encoded.len();
        if len > MAX_FORWARD_REQUEST_BYTES {
            return Err(WriteError::TooLarge {
                len,
                max: MAX_FORWARD_REQUEST_BYTES,
            });
        }
        let deadline = Instant::now() + self.deadline;
        let mut metrics = self.raft.metrics();
        let mut last = WriteError::NoLeader(LeaderHint::default());
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(last);
            }
            let remaining = deadline - now;
            let (leader, node) = {
                let m = metrics.borrow_and_update();
                if let Err(fatal) = &m.running_state {
                    return Err(fatal_error(fatal.clone()));
                }
                let leader = m.current_leader;
                let node =
                    leader.and_then(|id| m.membership_config.membership().get_node(&id).cloned());
                (leader, node)
            };
            let attempt = match (leader, node) {
                (Some(id), _) if id == self.id => {
                    self.write_locally(&request, len, remaining).await
                }
                (Some(_), Some(node)) => self.forward(&node, &encoded, remaining).await,
                _ => Attempt::Retry(WriteError::NoLeader(LeaderHint::of(&self.raft))),
            };
            match attempt {
                Attempt::Done(w) => return Ok(w),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(e) => {
                    last = e;
                    // Wait for news about the leader, or a short pause.
                    let pause = RETRY_PAUSE.min(deadline.saturating_duration_since(Instant::now()));
                    if let Ok(Err(_)) = tokio::time::timeout(pause, metrics.changed()).await {
                        return Err(WriteError::Stopped);
                    }
                    tokio::time::sleep(MIN_RETRY_PAUSE.min(pause)).await;
                }
            }
        }
    }

    async fn write_locally(&self, request: &Request, len: usize, remaining: Duration) -> Attempt {
        let commit = self.batcher.commit(request.clone(), len);
        match tokio::time::timeout(remaining, commit).await {
            Err(_) => Attempt::Fail(WriteError::NoQuorum(LeaderHint::of(&self.raft))),
            Ok(Ok(written)) => Attempt::Done(written),
            Ok(Err(e @ CommitError::Outcomes { .. })) => {
                Attempt::Fail(WriteError::BadAnswer(e.to_string()))
            }
            Ok(Err(CommitError::Raft(RaftError::APIError(ClientWriteError::ForwardToLeader(
                _,
            ))))) => Attempt::Retry(WriteError::NoLeader(LeaderHint::of(&self.raft))),
            Ok(Err(CommitError::Raft(RaftError::APIError(
                ClientWriteError::ChangeMembershipError(e),
            )))) => Attempt::Fail(WriteError::BadAnswer(format!("membership error: {e}"))),
            Ok(Err(CommitError::Raft(RaftError::Fatal(f)))) => Attempt::Fail(fatal_error(f)),
        }
    }

    async fn forward(&self, leader: &BkvNode, encoded: &[u8], remaining: Duration) -> Attempt {
        let hint = || LeaderHint::of(&self.raft);
        let mut client = match self.peers.raft_client(&leader.raft_addr) {
            Ok(c) => c,
            Err(e) => {
                return Attempt::Retry(WriteError::Timeout(LeaderHint {
                    client_addr: Some(e.addr),
                    ..hint()
                }));
            }
        };
        let call = client.forward(ForwardRequest {
            request: encoded.to_vec(),
        });
        let status = match tokio::time::timeout(remaining, call).await {
            Err(_) => return Attempt::Fail(WriteError::Timeout(hint())),
            Ok(Ok(resp)) => {
                let resp = resp.into_inner();
                return match codec::decode_bounded::<Outcome>(&resp.outcome, MAX_MESSAGE_BYTES) {
                    Ok(outcome) => Attempt::Done(Written {
                        log_index: resp.log_index,
                        outcome,
                    }),
                    Err(e) => Attempt::Fail(WriteError::BadAnswer(format!("outcome: {e}"))),
                };
            }
            Ok(Err(status)) => status,
        };
        match status.code() {
            // Not the leader any more (with a hint), no quorum there, or not reachable.
            Code::Unavailable => {
                if status.metadata().get(LEADER_ID_KEY).is_some() {
                    Attempt::Retry(WriteError::NoLeader(hint()))
                } else {
                    Attempt::Retry(WriteError::Timeout(hint()))
                }
            }
            Code::Cancelled | Code::DeadlineExceeded | Code::Unknown | Code::Aborted => {
                Attempt::Retry(WriteError::Timeout(hint()))
            }
            _ => Attempt::Fail(WriteError::BadAnswer(format!(
                "{:?}: {}",
                status.code(),
                status.message()
            ))),
        }
    }
}

fn fatal_error(f: Fatal<NodeId>) -> WriteError {
    match f {
        Fatal::Stopped => WriteError::Stopped,
        other => WriteError::Fatal(other),
    }
}
