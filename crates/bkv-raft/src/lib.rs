//! bkv-raft: Raft for bkv.
//!
//! openraft's type configuration ([`TypeConfig`]), the sled log store ([`SledLogStore`]),
//! the sled-backed state machine ([`SledStateMachine`]) over `bkv_core::VaultState`, the gRPC
//! network ([`GrpcNetworkFactory`]) and service ([`RaftService`]), and the write path every
//! client write takes ([`write`]: [`Writer`]).

pub mod audit;
mod chunk_guard;
pub mod codec;
pub mod config;
pub mod log_store;
pub mod network;
pub mod node;
pub mod peers;
pub mod service;
pub mod sled_gate;
pub mod snapshot;
pub mod snapshot_schedule;
pub mod state_handle;
pub mod state_machine;
pub mod storage;
pub mod types;
pub mod write;

pub use audit::{AuditEntry, AuditRecord, AuditSink, DiscardAudit};
pub use config::raft_config;
pub use log_store::{DurableState, SledLogStore};
pub use network::{GrpcNetwork, GrpcNetworkFactory};
pub use node::{InitError, NodeOptions, OpenError, RaftNode};
pub use peers::{PeerChannels, PeerOptions};
pub use service::RaftService;
pub use state_handle::StateHandle;
pub use state_machine::{SledSnapshotBuilder, SledStateMachine, SnapshotOnDisk};
pub use types::{BkvNode, BkvRaft, EntryResponse, NodeId, Proposal, TypeConfig, command_position};
pub use write::{
    BatchOptions, Batcher, LeaderHint, MAX_FORWARD_REQUEST_BYTES, WriteError, Writer, Written,
    batcher,
};
