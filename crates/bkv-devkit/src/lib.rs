//! bkv-devkit: what tests, the `bkv` CLI and local clusters need and apps never link.
//!
//! - [`pki`]: the dev PKI (cluster CA, node and admin certificates, account-token issuer
//!   key) that `bkv dev pki` and `cluster/up` write.
//! - [`issue_token`]: account tokens from the dev issuer key.
//! - [`MemoryReplica`]: the vault's state machine in one process, served by the node's own
//!   vault service (`bkv-vault`), for tests and the single-process bound.
//! - [`testing`]: TLS gRPC servers on loopback over a dev PKI in a temp dir, and stand-ins
//!   for vault and admin nodes, so that the layers above the node (SDK retries, failover,
//!   error mapping, CLI exit codes) can be tested without a cluster.

pub mod pki;
mod replica;
mod soft_holder;
pub mod testing;
mod token;

pub use replica::{MemoryReplica, ReplicaOptions};
pub use soft_holder::{SoftHolder, SoftKeys};
pub use token::issue_token;
