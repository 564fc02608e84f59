//! The node answers with the vault's one error type (see `bkv-vault`).

pub use bkv_vault::VaultError;
