//! The openraft type configuration of bkv: what goes into the log, what applying an entry
//! answers, and how a node is addressed.

use std::fmt;
use std::io::Cursor;

use bkv_core::{Outcome, Request};
use serde::{Deserialize, Serialize};

/// A Raft node id. Node ids are chosen by the operator and never reused.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The openraft type configuration of bkv.
    pub TypeConfig:
        D            = Proposal,
        R            = EntryResponse,
        NodeId       = NodeId,
        Node         = BkvNode,
        Entry        = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The openraft instance of a bkv node.
pub type BkvRaft = openraft::Raft<TypeConfig>;
/// openraft's log entry of bkv.
pub type LogEntry = openraft::Entry<TypeConfig>;
/// A log id (leader term and node, index).
pub type LogId = openraft::LogId<NodeId>;
/// A vote.
pub type Vote = openraft::Vote<NodeId>;
/// A cluster membership with its log id.
pub type StoredMembership = openraft::StoredMembership<NodeId, BkvNode>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, BkvNode>;
/// A snapshot with its data.
pub type Snapshot = openraft::Snapshot<TypeConfig>;
/// A storage error.
pub type StorageError = openraft::StorageError<NodeId>;
/// Raft metrics of a bkv node.
pub type RaftMetrics = openraft::RaftMetrics<NodeId, BkvNode>;

/// Where a node can be reached: one address per listener, each `host:port`.
///
/// Stored in the membership, so every node knows every other node's addresses.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BkvNode {
    /// The node-to-node listener (Raft and forwarding, mutual TLS).
    pub raft_addr: String,
    /// The client API listener (`bkv.v1.Vault`).
    pub client_addr: String,
    /// The operators' listener (`bkv.v1.Admin`).
    pub admin_addr: String,
}

impl BkvNode {
    /// A node with its three addresses.
    pub fn new(
        raft_addr: impl Into<String>,
        client_addr: impl Into<String>,
        admin_addr: impl Into<String>,
    ) -> Self {
        Self {
            raft_addr: raft_addr.into(),
            client_addr: client_addr.into(),
            admin_addr: admin_addr.into(),
        }
    }
}

impl fmt::Debug for BkvNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BkvNode(raft={}, client={}, admin={})",
            self.raft_addr, self.client_addr, self.admin_addr
        )
    }
}

impl fmt::Display for BkvNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What a normal log entry carries: vault commands, applied in order.
///
/// The leader's [`Batcher`](crate::batcher::Batcher) puts the commands that arrive while
/// earlier entries are written into one entry (group commit); with one client an entry
/// carries one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The commands, in the order they are applied.
    pub requests: Vec<Request>,
}

impl Proposal {
    /// An entry with one command.
    pub fn one(request: Request) -> Self {
        Self {
            requests: vec![request],
        }
    }
}

/// Positions reserved per log entry: command `i` of the entry at index `n` is applied at
/// position `n * POSITIONS_PER_ENTRY + i` (see [`command_position`]).
pub const POSITIONS_PER_ENTRY: u64 = 1000;

/// The position at which command `i` of the entry at `log_index` is applied to the vault
/// state: `log_index * 1000 + i`, so entry 4711's third command is at 4711002.
///
/// Positions increase strictly along the log, as `VaultState::apply` requires, also with
/// several commands per entry. The leader never puts more than 1000 commands in an entry;
/// should an entry carry more, every command from the 1000th on is applied at the entry's
/// last position, where the state machine refuses a second change (`StaleLogIndex`): such
/// commands can fail, never apply twice.
pub fn command_position(log_index: u64, i: usize) -> u64 {
    let i = (i as u64).min(POSITIONS_PER_ENTRY - 1);
    log_index
        .saturating_mul(POSITIONS_PER_ENTRY)
        .saturating_add(i)
}

/// What applying one log entry answers.
///
/// A normal entry answers the state machine's [`Outcome`] of each of its commands, in
/// order; blank and membership entries answer none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryResponse {
    /// The outcomes of the entry's vault commands; empty for blank and membership entries.
    pub outcomes: Vec<Outcome>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_positions_increase_along_the_log_and_saturate_inside_an_entry() {
        assert_eq!(command_position(4711, 0), 4_711_000);
        assert_eq!(command_position(4711, 2), 4_711_002);
        assert_eq!(command_position(4711, 999), 4_711_999);
        // Beyond the positions of an entry: all at the last one, below the next entry's.
        assert_eq!(command_position(4711, 1000), 4_711_999);
        assert_eq!(command_position(4711, usize::MAX), 4_711_999);
        assert!(command_position(4711, usize::MAX) < command_position(4712, 0));
        assert_eq!(command_position(u64::MAX, 0), u64::MAX);
    }
}
