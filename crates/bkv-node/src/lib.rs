//! bkv-node: one vault node. It fronts its own HSM partition, replicates the vault's state
//! with Raft, and serves the client (`bkv.v1.Vault`), admin (`bkv.v1.Admin`) and node-to-node
//! (`bkv.v1.Raft`) gRPC services on separate listeners, plus a small HTTP port for health and
//! metrics.

pub mod admin;
pub mod audit_log;
pub mod ceremony;
pub mod config;
pub mod connections;
pub mod error;
#[cfg(feature = "failpoints")]
pub mod failpoints;
pub mod http;
pub mod in_flight;
#[cfg(feature = "failpoints")]
pub mod lies;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod node;
#[cfg(feature = "failpoints")]
pub mod planted;
pub mod sealer;
pub mod server;
pub mod shares;
pub mod tls;
pub mod vault;
pub mod watermark;
