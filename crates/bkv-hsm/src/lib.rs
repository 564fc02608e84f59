//! `bkv-hsm`: the only crate of bkv that talks PKCS#11. It opens a node's HSM partition (a
//! SoftHSM2 token found by label), seals and unseals blobs with AES-256-GCM inside the token
//! under the cluster key, and runs the enrollment ceremony that carries the cluster key from
//! one token to another without it ever leaving an HSM in plaintext.
//!
//! Layout: [`Partition`] is the async API; a pool of worker threads (`worker`) owns the
//! PKCS#11 sessions; `ops` is what a worker does; `officer` is the security-officer step;
//! `template` holds every key object's attributes; `blob` the sealed format; `spki` the
//! public-key encoding; `module` the process-wide PKCS#11 contexts; [`provision`] makes
//! tokens; `testing` (feature `testing`) gives tests fresh tokens.

pub mod blob;
mod config;
mod data;
mod error;
mod info;
mod module;
mod officer;
mod ops;
mod partition;
mod pin;
pub mod provision;
mod spki;
mod template;
#[cfg(feature = "testing")]
pub mod testing;
mod worker;

pub use blob::{HEADER_LEN as SEALED_HEADER_LEN, TAG_LEN as SEALED_TAG_LEN};
pub use config::{DEFAULT_MODULE, DEFAULT_WORKERS, HsmConfig};
pub use error::HsmError;
pub use info::{ClusterKeyInfo, EnrollmentKey, WrappedClusterKey};
pub use module::token_labels;
pub use partition::Partition;
pub use pin::Pin;
pub use template::{CLUSTER_KEY_LABEL, ENROLLMENT_KEY_LABEL, PEER_KEY_LABEL};

/// The process-wide PKCS#11 context of a module (loaded and initialised on first use).
pub fn pkcs11_context(module: &std::path::Path) -> Result<cryptoki::context::Pkcs11, HsmError> {
    module::context(module)
}
