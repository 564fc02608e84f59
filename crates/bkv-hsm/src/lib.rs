//! `bkv-hsm`: the only crate of bkv that talks PKCS#11. It opens a node's HSM partition (a
//! SoftHSM2 token found by label), seals and unseals blobs with AES-256-GCM inside the token
//! under the cluster key, runs the enrollment ceremony that carries the cluster key from one
//! token to another without it ever leaving an HSM in plaintext, and holds the node's own
//! share keys for the threshold OPRF (protocol v2).
//!
//! # What a token holds
//!
//! Every key object is a private token object (SoftHSM writes non-private objects to its
//! files in plaintext), and every secret or private key is sensitive. Keys are found by
//! label.
//!
//! | Label | Object | May do | Leaves the token |
//! |---|---|---|---|
//! | `bkv-cluster-key` | AES-256, the same on every node | AES-GCM seal and unseal of records, tickets, the OPAQUE setup, the watermark (never of a purpose [`bkv_core::SealPurpose::OprfShare`] blob) | only wrapped under a trusted enrollment key (`CKA_WRAP_WITH_TRUSTED`) |
//! | `bkv-enrollment-key` | RSA-3072 pair, this token's own | unwrap (RSA-OAEP), and only into a key with the cluster key's protections (`CKA_UNWRAP_TEMPLATE`) | never (public half: SPKI + fingerprint) |
//! | `bkv-peer-enrollment-key` | RSA public keys of peers, `CKA_TRUSTED` set by the security officer | wrap the cluster key for that peer | - |
//! | `bkv-share-receive-key` | P-256 pair, this token's own | the private half derives (CKM_ECDH1_DERIVE) and does nothing else: no sign, decrypt or unwrap | never (public half: SEC1 point + fingerprint) |
//! | `bkv-share-seal-key` | AES-256, this token's own | AES-GCM seal and unseal of this node's OPRF key shares, purpose `OprfShare` only | never: not extractable, so never wrapped |
//! | data objects (by label) | small private values | read and written by the node (the durability watermark) | read by the node |
//!
//! The only object that is not a token object: the ECDH result Z, derived as a session object
//! (`bkv-share-ecdh-z`, generic secret, not sensitive so that it can be read), read into a
//! zeroizing buffer and destroyed before [`Partition::share_ecdh`] returns. The cluster key
//! never opens a share blob and the share-sealing key never opens anything else: the two
//! keys have different ids, and each refuses the other's purpose.
//!
//! # Layout
//!
//! [`Partition`] is the async API; a pool of worker threads (`worker`) owns the PKCS#11
//! sessions; `ops` is what a worker does with the cluster and enrollment keys and `shares`
//! with the share keys; `officer` is the security-officer step; `template` holds every key
//! object's attributes; `blob` the sealed format; `spki` the RSA public-key encoding and
//! `ec_point` the P-256 one; `module` the process-wide PKCS#11 contexts; [`provision`] makes
//! tokens; `testing` (feature `testing`) gives tests fresh tokens.

pub mod blob;
mod config;
mod data;
mod ec_point;
mod error;
mod info;
mod module;
mod officer;
mod ops;
mod partition;
mod pin;
pub mod provision;
mod shares;
mod spki;
mod template;
#[cfg(feature = "testing")]
pub mod testing;
mod worker;

pub use blob::{HEADER_LEN as SEALED_HEADER_LEN, TAG_LEN as SEALED_TAG_LEN};
pub use config::{DEFAULT_MODULE, DEFAULT_WORKERS, HsmConfig};
pub use ec_point::{P256_POINT_LEN, P256Point};
pub use error::HsmError;
pub use info::{ClusterKeyInfo, EnrollmentKey, ShareReceiveKey, WrappedClusterKey};
pub use module::token_labels;
pub use partition::Partition;
pub use pin::Pin;
pub use template::{
    CLUSTER_KEY_LABEL, ENROLLMENT_KEY_LABEL, PEER_KEY_LABEL, SHARE_ECDH_SECRET_LABEL,
    SHARE_RECEIVE_KEY_LABEL, SHARE_SEAL_KEY_LABEL,
};

/// The process-wide PKCS#11 context of a module (loaded and initialised on first use).
pub fn pkcs11_context(module: &std::path::Path) -> Result<cryptoki::context::Pkcs11, HsmError> {
    module::context(module)
}
