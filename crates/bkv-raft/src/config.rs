//! The Raft timing and compaction settings bkv runs with, and the wire limits that go
//! with them.

use openraft::{Config, SnapshotPolicy};

/// Largest gRPC message a node sends or accepts on the Raft service, in bytes.
///
/// Set explicitly on both the client and the server. Snapshot chunks
/// ([`SNAPSHOT_CHUNK_BYTES`]) and append-entries batches (bounded by
/// [`MAX_PAYLOAD_ENTRIES`] and split further by the network when they encode larger than
/// [`MAX_RPC_PAYLOAD_BYTES`]) stay well below it.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Largest encoded openraft payload the network sends in one RPC; an append-entries batch
/// that encodes larger is split by openraft (the network answers `PayloadTooLarge`).
pub const MAX_RPC_PAYLOAD_BYTES: usize = 3 * 1024 * 1024;

/// Size of one snapshot chunk on the wire, in bytes.
pub const SNAPSHOT_CHUNK_BYTES: u64 = 1024 * 1024;

/// Largest number of entries in one append-entries RPC.
pub const MAX_PAYLOAD_ENTRIES: u64 = 256;

const _: () = assert!(MAX_RPC_PAYLOAD_BYTES < MAX_MESSAGE_BYTES);

/// The Raft configuration of a bkv node, before the node's own overrides.
///
/// - heartbeat every 100 ms; election timeout drawn from 300..600 ms. openraft 0.9 lets a
///   follower of a live leader start an election only after the leader lease (the timeout's
///   maximum) plus its own timeout, checked on a tick of 1.5 heartbeats: a lost leader is
///   replaced 0.9 to 1.4 s after its last heartbeat (1.0 to 1.25 s measured on
///   loopback);
/// - a snapshot every 10 000 applied entries, keeping the last 1 000 entries in the log after
///   it so that a briefly lagging follower catches up from the log rather than a snapshot
///   ([`crate::RaftNode`] turns `LogsSinceLast` into its own schedule, which spreads the
///   nodes' snapshots over the interval: [`crate::snapshot_schedule`]);
/// - snapshots travel in 1 MiB chunks, each with a 10 s deadline.
///
/// The node may change any field; call [`Config::validate`] afterwards.
pub fn raft_config() -> Config {
    Config {
        cluster_name: "bkv".to_string(),
        heartbeat_interval: 100,
        election_timeout_min: 300,
        election_timeout_max: 600,
        install_snapshot_timeout: 10_000,
        max_payload_entries: MAX_PAYLOAD_ENTRIES,
        replication_lag_threshold: 5_000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(10_000),
        snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
        max_in_snapshot_log_to_keep: 1_000,
        purge_batch_size: 256,
        ..Config::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_fit_the_wire_limits() {
        let c = raft_config().validate().expect("valid config");
        assert!(c.election_timeout_min > 2 * c.heartbeat_interval);
        assert!(
            c.election_timeout_max <= 1_000,
            "a leader loss must heal well under 2 s"
        );
        // A chunk plus its metadata and framing fits a message with room to spare.
        assert!((c.snapshot_max_chunk_size as usize) * 2 < MAX_MESSAGE_BYTES);
    }
}
