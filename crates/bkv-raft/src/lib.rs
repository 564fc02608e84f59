//! bkv-raft: Raft for bkv.
//!
//! openraft's type configuration ([`TypeConfig`]), the sled log store ([`SledLogStore`]),
//! the sled-backed state machine ([`SledStateMachine`]) over `bkv_core::VaultState`, the gRPC
//! network ([`GrpcNetworkFactory`]) and service ([`RaftService`]), and the write path every
//! client write takes ([`Writer`]).

pub mod codec;
pub mod config;
pub mod log_store;
pub mod types;

pub use config::raft_config;
pub use log_store::SledLogStore;
pub use types::{BkvNode, BkvRaft, EntryResponse, NodeId, TypeConfig};
