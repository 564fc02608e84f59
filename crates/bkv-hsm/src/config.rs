//! What a node needs to open its HSM partition: the PKCS#11 module, the token's label, the
//! PINs and the size of the worker pool.

use std::path::PathBuf;

use crate::Pin;

/// Where SoftHSM2 installs its module on Debian and Ubuntu.
pub const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Default number of HSM worker threads (each owns one logged-in session).
pub const DEFAULT_WORKERS: usize = 2;

/// Configuration of a [`crate::Partition`].
#[derive(Debug, Clone)]
pub struct HsmConfig {
    /// Path of the PKCS#11 module (`libsofthsm2.so`).
    pub module: PathBuf,
    /// Label of the token; the token is always found by label, never by slot number.
    pub token_label: String,
    /// The user PIN.
    pub user_pin: Pin,
    /// The security officer PIN, needed only to mark a peer's enrollment key trusted.
    pub so_pin: Option<Pin>,
    /// Number of worker threads (at least 1).
    pub workers: usize,
}

impl HsmConfig {
    /// A configuration with the default module and worker count, and no SO PIN.
    pub fn new(token_label: impl Into<String>, user_pin: Pin) -> Self {
        Self {
            module: PathBuf::from(DEFAULT_MODULE),
            token_label: token_label.into(),
            user_pin,
            so_pin: None,
            workers: DEFAULT_WORKERS,
        }
    }
}
