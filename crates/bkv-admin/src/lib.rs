//! bkv-admin: the operator client of bkv.
//!
//! [`AdminClient`] speaks every `bkv.v1.Admin` RPC (init, add-node with the key ceremony,
//! remove-node, status, transfer-leader, snapshot, audit) under mutual TLS with an admin
//! certificate of the cluster CA. The `bkv admin` commands and the multi-process tests are
//! built on it.

mod client;
mod config;
mod error;

pub use client::{AdminClient, AdminStream, PublishedShareMap, leader_admin_addr};
pub use config::AdminConfig;
pub use error::AdminError;
