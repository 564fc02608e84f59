//! The node answers with the vault's one error type (see `bkv-vault`; docs/DESIGN.md §4.6).

pub use bkv_vault::VaultError;
