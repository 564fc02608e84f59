//! bkv-vault: the vault's request handling, written once.
//!
//! [`VaultService`] is the client API `bkv.v1.Vault`: it checks the account token, parses
//! every message at the edge, commits the vault's commands (registration, activation, the
//! guess charge, resets, destruction, deletion), runs the server side of OPAQUE, seals
//! tickets, and turns outcomes into answers through the one [`VaultError`] to
//! `tonic::Status` conversion. It runs over a [`Backend`]: a `bkv-node` is one (Raft, its
//! HSM, its metrics), and `bkv-devkit`'s in-memory replica is another, so the SDK's tests,
//! the single-process bound and the core story test run the node's own service.

mod backend;
mod error;
pub mod holder;
pub mod service;

pub use backend::{Backend, CallReport, Serving, VaultEvent};
pub use error::VaultError;
pub use service::VaultService;
