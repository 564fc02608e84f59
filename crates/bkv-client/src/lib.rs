//! bkv-client: the client side of the Backup Key Vault.
//!
//! - [`VaultClient`]: the Rust SDK for apps: [`VaultClient::register`],
//!   [`VaultClient::recover`], [`VaultClient::status`], [`VaultClient::delete`] over TLS
//!   with failover and safe retries, typed [`VaultError`]s.
//! - [`backup`]: end-to-end encrypted backups with the backup key: the streaming format
//!   (docs/BACKUP_FORMAT.md), the 64-digit recovery code, and the journey (enable backup
//!   with a password or a recovery code, restore the key on a new device).
//! - [`flow`]: the sans-I/O OPAQUE flows ([`flow::Registration`], [`flow::Recovery`]) that
//!   the SDK drives, with the client's Argon2id parameters in [`KsfParams`].
//!
//! This crate is what an app links. The operator client is `bkv-admin`, the `bkv`
//! command-line tool is `bkv-cli`, and the dev PKI, dev token issuer and in-memory test
//! vault are in `bkv-devkit`.

mod answers;
pub mod backup;
mod config;
pub mod endpoint;
mod error;
mod failover;
pub mod flow;
mod token_source;
mod vault;
mod vault_error;

pub use answers::{AccountStatus, RecordState, Recovered, Registered, Reshared};
pub use bkv_core::protocol::BackupKey;
pub use bkv_core::protocol::KsfParams;
pub use config::{ClientConfig, RetryPolicy, Routing};
pub use endpoint::{EndpointError, authority, https_url};
pub use error::ClientError;
pub use flow::{Login, Recovery, RecoverySession, RegisterUpload, Registration};
pub use secrecy::SecretString;
pub use token_source::{TokenSource, unverified_subject};
pub use vault::VaultClient;
pub use vault_error::{ErrorDetails, LEADER_METADATA, VaultError, error_details, leader_hint};

/// The generated gRPC types of `bkv.v1`.
pub use bkv_proto::v1 as proto;
