//! Rollback and wipe detection: the node keeps a monotonic watermark of what its disk has
//! durably held (committed log index on disk, vote term) in a private data object of its HSM
//! token, outside the data directory. At start a data directory holding less than the
//! watermark was rolled back (restored from an old copy) or wiped, and the node refuses to
//! start: it neither votes nor serves until an operator repairs it (OPERATIONS.md).
//!
//! Why it matters: a node that forgets a vote can vote twice in a term, and one that forgets
//! log entries it acknowledged can let a committed guess charge be lost: both could give an
//! attacker guesses beyond the limit.
//!
//! What it cannot catch: a rollback of the token files together with the data directory
//! (SoftHSM's token is ordinary files), and the last second before a crash (the watermark is
//! written about once a second, always behind what is on disk).

use std::time::Duration;

use bkv_hsm::{HsmError, Partition};
use bkv_raft::DurableState;
use serde::{Deserialize, Serialize};

/// The data object's label in the token.
pub const LABEL: &str = "bkv-watermark";

/// What the token remembers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// The node this token serves.
    pub node_id: u64,
    /// Committed log index this node's disk had reached.
    pub log_index: u64,
    /// Vote term this node's disk had reached.
    pub vote_term: u64,
}

/// Why the watermark could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WatermarkError {
    /// The HSM failed.
    #[error("HSM: {0}")]
    Hsm(#[from] HsmError),
    /// The object does not decode.
    #[error("the watermark in the token does not decode")]
    Corrupt,
    /// The token's watermark belongs to another node id.
    #[error("this token's watermark belongs to node {0}: is node_id right for this token?")]
    OtherNode(u64),
}

const FORMAT: u8 = 1;

fn encode(w: &Watermark) -> Vec<u8> {
    let mut out = vec![FORMAT];
    // Encoding three integers cannot fail.
    out.extend(postcard::to_stdvec(w).unwrap_or_default());
    out
}

fn decode(bytes: &[u8]) -> Result<Watermark, WatermarkError> {
    match bytes.split_first() {
        Some((&FORMAT, body)) => postcard::from_bytes(body).map_err(|_| WatermarkError::Corrupt),
        _ => Err(WatermarkError::Corrupt),
    }
}

/// The least the data directory must hold, from the token; `None` on a fresh token.
///
/// A stop in the middle of a write (the token's new object made, the old one not yet
/// destroyed) leaves two watermarks. Both were written by this node and a watermark only
/// grows, so the larger is the newer: it is the one used, and the next write removes the
/// other. (Refusing to start instead had left a node that was merely stopped at the wrong
/// moment unable to start again without the rollback repair.)
pub async fn read(hsm: &Partition, node_id: u64) -> Result<Option<DurableState>, WatermarkError> {
    let values = hsm.read_data_all(LABEL).await?;
    let mut least: Option<DurableState> = None;
    for bytes in &values {
        let w = decode(bytes)?;
        if w.node_id != node_id {
            return Err(WatermarkError::OtherNode(w.node_id));
        }
        let d = least.get_or_insert_default();
        d.last_log_index = d.last_log_index.max(w.log_index);
        d.vote_term = d.vote_term.max(w.vote_term);
    }
    if values.len() > 1 {
        tracing::warn!(
            objects = values.len(),
            "more than one durability watermark in the token (a stop inside a write); \
             using the largest, the next write removes the others"
        );
    }
    Ok(least)
}

/// Forgets the watermark (the repair procedure, after the node was removed from the cluster
/// and its data directory wiped).
pub async fn reset(hsm: &Partition) -> Result<(), WatermarkError> {
    Ok(hsm.delete_data(LABEL).await?)
}

/// Keeps the watermark up with what the disk durably holds (`durable()`, normally
/// `bkv_raft::RaftNode::watermark`), about once a `period`, until the task is dropped. Only ever moves
/// forward.
pub async fn keep_up(
    hsm: Partition,
    durable: impl Fn() -> DurableState,
    node_id: u64,
    start: Option<DurableState>,
    period: Duration,
) {
    let mut written = start.unwrap_or_default();
    loop {
        tokio::time::sleep(period).await;
        if let Err(e) = step(&hsm, durable(), node_id, &mut written).await {
            tracing::warn!(error = %e, "cannot update the durability watermark");
        }
    }
}

/// One update: writes the watermark if the disk (`now`) has moved past it.
pub async fn step(
    hsm: &Partition,
    now: DurableState,
    node_id: u64,
    written: &mut DurableState,
) -> Result<(), WatermarkError> {
    let next = DurableState {
        last_log_index: now.last_log_index.max(written.last_log_index),
        vote_term: now.vote_term.max(written.vote_term),
    };
    if next == *written {
        return Ok(());
    }
    let w = Watermark {
        node_id,
        log_index: next.last_log_index,
        vote_term: next.vote_term,
    };
    hsm.write_data(LABEL, &encode(&w)).await?;
    *written = next;
    tracing::debug!(
        log_index = w.log_index,
        vote_term = w.vote_term,
        "watermark written"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use bkv_hsm::testing::TestToken;

    use super::*;

    #[tokio::test]
    async fn two_watermarks_left_by_a_stop_read_as_the_larger_and_the_next_write_leaves_one() {
        let token = TestToken::new();
        let hsm = token.open().await;
        assert_eq!(read(&hsm, 2).await.expect("fresh token"), None);
        let mut written = DurableState::default();
        let first = DurableState {
            last_log_index: 100,
            vote_term: 3,
        };
        step(&hsm, first, 2, &mut written).await.expect("write");
        // A stop inside the next write: the new object is there, the old one too.
        let newer = Watermark {
            node_id: 2,
            log_index: 250,
            vote_term: 4,
        };
        hsm.write_data_without_replacing(LABEL, &encode(&newer))
            .await
            .expect("create");
        let expect = DurableState {
            last_log_index: 250,
            vote_term: 4,
        };
        assert_eq!(read(&hsm, 2).await.expect("read"), Some(expect));
        // The node goes on from there; its next write leaves one object.
        let mut written = expect;
        let later = DurableState {
            last_log_index: 300,
            vote_term: 4,
        };
        step(&hsm, later, 2, &mut written).await.expect("write");
        assert_eq!(hsm.read_data_all(LABEL).await.expect("read").len(), 1);
        assert_eq!(read(&hsm, 2).await.expect("read"), Some(later));
        // Another node's watermark beside this one's is still refused.
        let other = Watermark {
            node_id: 5,
            ..newer
        };
        hsm.write_data_without_replacing(LABEL, &encode(&other))
            .await
            .expect("create");
        assert!(matches!(
            read(&hsm, 2).await,
            Err(WatermarkError::OtherNode(5))
        ));
    }

    #[test]
    fn watermarks_round_trip_and_garbage_is_refused() {
        let w = Watermark {
            node_id: 3,
            log_index: 1234,
            vote_term: 7,
        };
        assert_eq!(decode(&encode(&w)).ok(), Some(w));
        assert!(decode(&[]).is_err());
        assert!(decode(&[2, 0, 0]).is_err());
        assert!(decode(&[1]).is_err());
    }
}
