//! Each node builds its snapshots at points of its own (`bkv_raft::snapshot_schedule`), not
//! all at the same index: two one-node clusters given the same writes build their first
//! snapshots in different places, each at or after its own point and never before it.
//! Every wait is bounded.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bkv_raft::snapshot_schedule::{next_point, phase};
use bkv_raft::{BkvNode, DiscardAudit, NodeId, NodeOptions, RaftNode, raft_config};
use common::{bootstrap_vault, stage};
use tempfile::TempDir;

/// Entries between two snapshots of a node.
const EVERY: u64 = 40;
const WAIT: Duration = Duration::from_secs(10);

async fn one_node(dir: &Path, id: NodeId) -> anyhow::Result<RaftNode> {
    let mut opts = NodeOptions::new(id, dir, Arc::new(DiscardAudit));
    opts.config = openraft::Config {
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(EVERY),
        ..raft_config()
    };
    let node = RaftNode::open(opts).await?;
    node.initialize_single(BkvNode::new("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"))
        .await?;
    node.raft()
        .wait(Some(WAIT))
        .current_leader(id, "self elected")
        .await?;
    bootstrap_vault(&node.writer()).await?;
    Ok(node)
}

/// Writes registrations until the node has applied `index`.
async fn fill_to(node: &RaftNode, index: u64, next: &mut u32) -> anyhow::Result<()> {
    let w = node.writer();
    // Bounded: one entry per write at least.
    for _ in 0..index {
        if node.state().applied_index() >= index {
            return Ok(());
        }
        w.write(stage(*next)).await?;
        *next += 1;
    }
    anyhow::ensure!(
        node.state().applied_index() >= index,
        "did not reach {index}"
    );
    Ok(())
}

fn snapshot_index(node: &RaftNode) -> Option<u64> {
    node.metrics().borrow().snapshot.map(|l| l.index)
}

/// Waits (bounded) for the node's first snapshot and checks that it was built at or after
/// `point` and at most at the index applied now; returns its index.
async fn first_snapshot(node: &RaftNode, point: u64) -> anyhow::Result<u64> {
    node.raft()
        .wait(Some(WAIT))
        .metrics(|m| m.snapshot.is_some(), "a build at the node's point")
        .await?;
    let index = snapshot_index(node).unwrap_or_default();
    assert!(
        (point..=node.state().applied_index()).contains(&index),
        "node {} built at {index}, its point is {point}",
        node.id()
    );
    Ok(index)
}

#[tokio::test]
async fn nodes_build_their_snapshots_at_points_of_their_own() -> anyhow::Result<()> {
    // Node 2's point in each interval of 40 is 9, node 1's is 24.
    let (early, late) = (2, 1);
    let (early_point, late_point) = (phase(early, EVERY), phase(late, EVERY));
    assert_eq!((early_point, late_point), (9, 24));
    let (dir_a, dir_b) = (TempDir::new()?, TempDir::new()?);
    let a = one_node(dir_a.path(), early).await?;
    let b = one_node(dir_b.path(), late).await?;
    let (mut next_a, mut next_b) = (0, 0);

    // Both past node 2's point, both short of node 1's.
    let between = early_point + 6;
    fill_to(&a, between, &mut next_a).await?;
    fill_to(&b, between, &mut next_b).await?;
    let first_a = first_snapshot(&a, early_point).await?;
    // Given as long again, node 1 builds nothing before its own point.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(snapshot_index(&b), None, "node 1 built before its point");

    fill_to(&b, late_point + 6, &mut next_b).await?;
    first_snapshot(&b, late_point).await?;

    // Node 2's next build waits for its next point, an interval on.
    let second = next_point(first_a, EVERY, early_point);
    assert_eq!(second, early_point + EVERY);
    fill_to(&a, second - 1, &mut next_a).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        snapshot_index(&a),
        Some(first_a),
        "built again before its point"
    );
    fill_to(&a, second + 2, &mut next_a).await?;
    a.raft()
        .wait(Some(WAIT))
        .metrics(
            |m| m.snapshot.is_some_and(|l| l.index >= second),
            "node 2 builds at its next point",
        )
        .await?;
    a.shutdown().await;
    b.shutdown().await;
    Ok(())
}
