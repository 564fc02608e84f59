//! bkv-client: the client side of the Backup Key Vault.
//!
//! For now the sans-I/O protocol flows: [`flow::Registration`] (register a backup key
//! under a password) and [`flow::Recovery`] (get it back), with the client's choice of
//! Argon2id parameters in [`KsfParams`]. The gRPC SDK and the `bkv` CLI build on them.

mod error;
pub mod flow;
mod ksf;

pub use bkv_core::protocol::BackupKey;
pub use error::ClientError;
pub use flow::{Recovery, RecoverySession, RegisterUpload, Registration};
pub use ksf::KsfParams;
pub use secrecy::SecretString;
