//! When a node builds its snapshots: every `every` log indexes, as openraft's
//! `SnapshotPolicy::LogsSinceLast` does, but at indexes of its own.
//!
//! With openraft's policy every node of a cluster reaches the threshold at the same index,
//! so all of them encode and write their state at once: at a million accounts that is 8 to
//! 9 s in which the cluster ran at half its rate on the benchmark machine
//! (docs/benchmarks-history.md §4), and on nodes that share disks or cores the builds slow
//! each other down. Here node `id` builds when its applied index passes a point `p` with
//! `p % every == phase(id, every)`: still one snapshot per `every` indexes, but the nodes'
//! points are spread over the interval. The points depend only on the index, so a restart,
//! a snapshot installed from the leader or a missed trigger does not shift them.

use std::time::Duration;

use crate::types::{BkvRaft, NodeId};

/// Where in each interval of `every` indexes node `id` builds its snapshot: `id` times the
/// golden ratio, modulo 1, scaled to the interval. Any number of consecutive ids land
/// spread over the interval (the three nodes 1, 2, 3 at 0.62, 0.24 and 0.85 of it).
pub fn phase(id: NodeId, every: u64) -> u64 {
    if every == 0 {
        return 0;
    }
    // 2^64 / golden ratio: multiplying by it and keeping the low 64 bits is id * 0.618...
    // modulo 1, as a fraction of 2^64 (Fibonacci hashing).
    const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
    let fraction = id.wrapping_mul(GOLDEN);
    ((u128::from(fraction) * u128::from(every)) >> 64) as u64
}

/// The first snapshot point above `snapshot_index` (the index of the node's snapshot, 0 for
/// none): the smallest `p > snapshot_index` with `p % every == phase`. At most `every` ahead.
pub fn next_point(snapshot_index: u64, every: u64, phase: u64) -> u64 {
    if every == 0 {
        return u64::MAX;
    }
    let phase = phase % every;
    let base = snapshot_index - snapshot_index % every + phase;
    if base > snapshot_index {
        base
    } else {
        base.saturating_add(every)
    }
}

/// Builds this node's snapshots on its schedule until the Raft stops or `stop` fires (or
/// its sender is dropped). Asks once per point; if a whole interval of applies passes after
/// asking with no new snapshot (a build refused or failed), asks again.
pub(crate) async fn run(
    raft: BkvRaft,
    id: NodeId,
    every: u64,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    tokio::select! {
        () = schedule(raft, id, every) => {}
        _ = &mut stop => {}
    }
}

async fn schedule(raft: BkvRaft, id: NodeId, every: u64) {
    let phase = phase(id, every);
    let mut metrics = raft.metrics();
    // The point last asked for, and the applied index when it was.
    let mut asked: Option<(u64, u64)> = None;
    loop {
        let (applied, snapshot) = {
            let m = metrics.borrow_and_update();
            (
                m.last_applied.map_or(0, |l| l.index),
                m.snapshot.map_or(0, |l| l.index),
            )
        };
        let point = next_point(snapshot, every, phase);
        let ask = applied >= point
            && match asked {
                Some((p, at)) if p == point => applied >= at.saturating_add(every),
                _ => true,
            };
        if ask {
            if let Err(fatal) = raft.trigger().snapshot().await {
                tracing::warn!(error = %fatal, "snapshot schedule: raft stopped");
                return;
            }
            tracing::debug!(point, applied, "snapshot asked for");
            asked = Some((point, applied));
        }
        // Metrics change on every apply; the pause keeps this loop from waking for each.
        tokio::time::sleep(Duration::from_millis(50)).await;
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_three_nodes_of_a_cluster_build_a_fifth_of_an_interval_apart_or_more() {
        let every = 20_000;
        let mut phases: Vec<u64> = (1..=3).map(|id| phase(id, every)).collect();
        phases.sort_unstable();
        // 0.24, 0.62 and 0.85 of the interval: 0.38, 0.24 and 0.38 of it between them,
        // going round.
        let gaps = [
            phases[1] - phases[0],
            phases[2] - phases[1],
            every - phases[2] + phases[0],
        ];
        assert!(gaps.iter().all(|g| *g >= every / 5), "{phases:?}");
    }

    #[test]
    fn points_follow_the_phase() {
        assert_eq!(next_point(0, 100, 30), 30);
        assert_eq!(next_point(29, 100, 30), 30);
        assert_eq!(next_point(30, 100, 30), 130);
        assert_eq!(next_point(31, 100, 30), 130);
        assert_eq!(next_point(0, 100, 0), 100);
        assert_eq!(next_point(1_000, 100, 0), 1_100);
        assert_eq!(next_point(5, 0, 0), u64::MAX);
    }

    proptest! {
        #[test]
        fn the_next_point_is_above_the_snapshot_on_phase_and_within_an_interval(
            snapshot in 0u64..1 << 48,
            every in 1u64..1 << 20,
            id in 1u64..1 << 16,
        ) {
            let ph = phase(id, every);
            prop_assert!(ph < every);
            let p = next_point(snapshot, every, ph);
            prop_assert!(p > snapshot);
            prop_assert!(p - snapshot <= every);
            prop_assert_eq!(p % every, ph);
        }
    }
}
