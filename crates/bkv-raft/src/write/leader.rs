//! [`LeaderHint`]: who leads, as far as this node knows: the one place the leader is read
//! from Raft's metrics, for the writer, the forward handler and the node's answers.

use crate::types::{BkvNode, BkvRaft, NodeId};

/// Who leads, as far as this node knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderHint {
    /// The leader's node id.
    pub id: Option<NodeId>,
    /// The leader's addresses, when it is in the membership.
    pub node: Option<BkvNode>,
}

impl LeaderHint {
    /// The current leader of `raft`.
    pub fn of(raft: &BkvRaft) -> Self {
        let metrics = raft.metrics();
        let metrics = metrics.borrow();
        Self::from_metrics(&metrics)
    }

    /// The leader that `metrics` name.
    pub fn from_metrics(metrics: &crate::types::RaftMetrics) -> Self {
        let id = metrics.current_leader;
        let node = id.and_then(|id| {
            metrics
                .membership_config
                .membership()
                .get_node(&id)
                .cloned()
        });
        Self { id, node }
    }

    /// The leader's client address (`host:port`), when known.
    pub fn client_addr(&self) -> Option<&str> {
        self.node.as_ref().map(|n| n.client_addr.as_str())
    }
}
