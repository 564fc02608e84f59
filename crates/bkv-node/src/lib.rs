//! bkv-node: one vault node. It fronts its own HSM partition, replicates the vault's state
//! with Raft, and serves the client (`bkv.v1.Vault`), admin (`bkv.v1.Admin`) and node-to-node
//! (`bkv.v1.Raft`) gRPC services on separate listeners.

pub mod config;
pub mod tls;
