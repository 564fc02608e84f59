//! bkv-client: the client side of the Backup Key Vault.
//!
//! - [`VaultClient`]: the Rust SDK for apps: [`VaultClient::register`],
//!   [`VaultClient::recover`], [`VaultClient::status`], [`VaultClient::delete`] over TLS
//!   with failover and safe retries, typed [`VaultError`]s.
//! - [`AdminClient`]: the operator API under mutual TLS.
//! - [`pki`]: the dev PKI (cluster CA, node and admin certificates, token issuer key).
//! - [`flow`]: the sans-I/O OPAQUE flows ([`flow::Registration`], [`flow::Recovery`]) that
//!   the SDK drives, with the client's Argon2id parameters in [`KsfParams`].
//!
//! The `bkv` command-line tool is built on these.

mod admin;
mod admin_config;
mod admin_error;
mod answers;
mod config;
mod endpoint;
mod error;
mod failover;
pub mod flow;
mod ksf;
pub mod pki;
#[cfg(feature = "testing")]
pub mod testing;
mod token_source;
mod vault;
mod vault_error;

pub use admin::{AdminClient, AdminStream, leader_admin_addr};
pub use admin_config::AdminConfig;
pub use admin_error::AdminError;
pub use answers::{AccountStatus, RecordState, Recovered, Registered};
pub use bkv_core::protocol::BackupKey;
pub use config::{ClientConfig, RetryPolicy, Routing};
pub use endpoint::{EndpointError, authority, https_url};
pub use error::ClientError;
pub use flow::{Recovery, RecoverySession, RegisterUpload, Registration};
pub use ksf::KsfParams;
pub use secrecy::SecretString;
pub use token_source::{TokenSource, unverified_subject};
pub use vault::VaultClient;
pub use vault_error::{LEADER_METADATA, VaultError, error_detail, leader_hint};

/// The generated gRPC types of `bkv.v1`, as the admin client returns them.
pub use bkv_proto::v1 as proto;
