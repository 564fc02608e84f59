//! Errors of the HSM boundary. None of them ever carries a PIN, key bytes or plaintext: they
//! name a PKCS#11 call and its return code, a token label, a file path or a variable name.

use bkv_core::SealError;
use cryptoki::error::{Error as CkError, RvError};

/// Why an HSM operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    /// The PKCS#11 module could not be loaded or initialised.
    #[error("cannot load PKCS#11 module {path}: {reason}")]
    ModuleLoad {
        /// The module path.
        path: String,
        /// What the loader said.
        reason: String,
    },
    /// No initialised token carries this label.
    #[error("no token labelled {label:?}")]
    TokenNotFound {
        /// The label looked for.
        label: String,
    },
    /// A token label must be 1 to 32 bytes without leading or trailing blanks.
    #[error("invalid token label {label:?}")]
    InvalidLabel {
        /// The label given.
        label: String,
    },
    /// More than one token carries this label; bkv refuses to guess.
    #[error("more than one token labelled {label:?}")]
    DuplicateToken {
        /// The ambiguous label.
        label: String,
    },
    /// The token refused the PIN.
    #[error("the token refused the PIN")]
    WrongPin,
    /// The token has locked the PIN after too many wrong tries.
    #[error("the token's PIN is locked")]
    PinLocked,
    /// A PIN could not be read from its file or environment variable.
    #[error("cannot read PIN from {source_name}: {reason}")]
    PinSource {
        /// The file path or environment variable name (never the content).
        source_name: String,
        /// What went wrong.
        reason: String,
    },
    /// A security-officer step was asked for but no SO PIN was configured.
    #[error("this step needs the security officer PIN, which is not configured")]
    SoPinMissing,
    /// The token already holds a cluster key (a different one, when unwrapping).
    #[error("the token already holds a cluster key")]
    ClusterKeyExists,
    /// A key the operation needs is not in the token.
    #[error("key missing from the token: {0}")]
    KeyMissing(&'static str),
    /// More than one object matches a label that must be unique.
    #[error("more than one object in the token: {0}")]
    DuplicateKey(&'static str),
    /// The peer's enrollment key is in the token but not marked trusted, so the token
    /// refuses to wrap the cluster key under it.
    #[error("the peer's enrollment key is not trusted by this token")]
    NotTrusted,
    /// No enrollment key with this fingerprint has been imported.
    #[error("no peer enrollment key with this fingerprint")]
    UnknownPeer,
    /// A peer's public key is not an acceptable RSA SubjectPublicKeyInfo.
    #[error("bad peer public key: {0}")]
    BadPublicKey(&'static str),
    /// The unwrapped cluster key's check value differs from the one announced; the
    /// unwrapped object has been destroyed.
    #[error("key check value mismatch after unwrapping the cluster key")]
    KcvMismatch,
    /// The request is outside what the partition accepts (e.g. too large).
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// A PKCS#11 call failed.
    #[error("{call} failed: {rv}")]
    Pkcs11 {
        /// The PKCS#11 function.
        call: &'static str,
        /// The return code (or the wrapper's error), never data.
        rv: String,
    },
    /// The HSM worker threads are gone (the partition is shutting down or a worker died).
    #[error("HSM workers are gone")]
    WorkerGone,
}

impl HsmError {
    /// Maps a cryptoki error from `call`.
    pub(crate) fn p11(call: &'static str, err: CkError) -> Self {
        let rv = match &err {
            CkError::Pkcs11(rv, _) => format!("{rv:?}"),
            other => other.to_string(),
        };
        Self::Pkcs11 { call, rv }
    }

    /// A closure for `map_err` that maps a cryptoki error from `call`.
    pub(crate) fn at(call: &'static str) -> impl FnOnce(CkError) -> Self {
        move |err| Self::p11(call, err)
    }
}

/// The PKCS#11 return code of a cryptoki error, if it has one.
pub(crate) fn rv_of(err: &CkError) -> Option<RvError> {
    match err {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

impl From<HsmError> for SealError {
    fn from(err: HsmError) -> Self {
        SealError::Hsm(err.to_string())
    }
}
