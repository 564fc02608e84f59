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
//! - `Activate`, `ResetGuesses`, `Destroy` and `DeleteThrough` are keyed by their arguments
//!   (account, version, charge, the barrier's position) and state the end result, not a
//!   step. A deletion is bounded by a `Barrier` committed first: an unbounded one, committed
//!   again after the client had registered anew, would remove that new registration (the
//!   chaos suite's c120 caught this once);
//! - `Barrier` changes nothing;
//! - `Bootstrap` refuses a second bootstrap.

use std::fmt;
use std::time::Duration;

use bkv_core::{Outcome, Request};
use bkv_proto::contract;
use bkv_proto::v1::ForwardRequest;
use tokio::time::Instant;
use tonic::Code;

use super::MAX_FORWARD_REQUEST_BYTES;
use super::batcher::{Batcher, Written};
use super::error::WriteError;
use super::leader::LeaderHint;
use crate::codec;
use crate::config::MAX_MESSAGE_BYTES;
use crate::peers::PeerChannels;
use crate::types::{BkvNode, BkvRaft, NodeId};

/// Longest pause between attempts while no leader is known or the leader is unreachable
/// (an attempt starts sooner when the metrics show a change).
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Shortest pause between attempts, so that a burst of metrics changes cannot spin.
const MIN_RETRY_PAUSE: Duration = Duration::from_millis(10);

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
            let leader = {
                let m = metrics.borrow_and_update();
                if let Err(fatal) = &m.running_state {
                    return Err(WriteError::from_fatal(fatal.clone()));
                }
                LeaderHint::from_metrics(&m)
            };
            let attempt = match leader {
                LeaderHint { id: Some(id), .. } if id == self.id => {
                    match self.batcher.commit(request.clone(), len, remaining).await {
                        Ok(written) => Attempt::Done(written),
                        // Leadership moved since the metrics were read.
                        Err(e @ WriteError::NoLeader(_)) => Attempt::Retry(e),
                        Err(e) => Attempt::Fail(e),
                    }
                }
                LeaderHint {
                    node: Some(node), ..
                } => self.forward(&node, &encoded, remaining).await,
                _ => Attempt::Retry(WriteError::NoLeader(leader)),
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

    async fn forward(&self, leader: &BkvNode, encoded: &[u8], remaining: Duration) -> Attempt {
        let hint = || LeaderHint::of(&self.raft);
        let Ok(mut client) = self.peers.raft_client(&leader.raft_addr) else {
            return Attempt::Retry(WriteError::Timeout(hint()));
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
                if status.metadata().get(contract::LEADER_ID).is_some() {
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
