//! The HSM as bkv-core sees it: a sealer that encrypts and authenticates bytes under the
//! cluster key (AES-256-GCM inside the token), bound to a purpose and an AAD.
//!
//! `bkv-hsm` implements [`Sealer`] over PKCS#11; unit tests of the layers above may use a
//! software fake. The AAD builders here are the one place that decides what each kind of
//! blob is bound to.

use std::future::Future;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::ids::{AccountId, ClusterId, RequestId};

/// What a sealed blob is for. Written in the blob header and bound into the AAD, so a blob
/// made for one purpose can never be opened as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum SealPurpose {
    /// A vault record: OPAQUE password file, the client's `sealed_key`, and policy.
    Record = 1,
    /// The cluster's OPAQUE `ServerSetup`.
    ServerSetup = 2,
    /// A recovery ticket: OPAQUE server login state plus account, version, charge, expiry.
    Ticket = 3,
    /// The node's applied-state watermark (rollback detection).
    Watermark = 4,
    /// A node's own OPRF key share, kept in its data directory. Sealed only under that
    /// node's share-sealing key, never under the cluster key.
    OprfShare = 5,
    /// Test and benchmark data; never used by the vault itself.
    Test = 255,
}

impl SealPurpose {
    /// The purpose for a header byte, if it names one.
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Record,
            2 => Self::ServerSetup,
            3 => Self::Ticket,
            4 => Self::Watermark,
            5 => Self::OprfShare,
            255 => Self::Test,
            _ => return None,
        })
    }
}

/// Why sealing or unsealing failed. Never carries plaintext or key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The blob is too short or its header is not a bkv sealed blob of a known version.
    #[error("sealed blob is malformed: {0}")]
    Malformed(&'static str),
    /// The blob was sealed for another purpose.
    #[error("sealed blob is for another purpose")]
    WrongPurpose,
    /// The blob was sealed with another AAD (another account, version or cluster).
    #[error("sealed blob is bound to other associated data")]
    WrongAad,
    /// The blob names a key that this HSM does not hold (another cluster key).
    #[error("sealed blob is under a key this HSM does not hold")]
    UnknownKey,
    /// Authentication failed inside the HSM: the blob was altered. Never retried.
    #[error("sealed blob rejected: authentication failed")]
    Rejected,
    /// The HSM has no cluster key yet.
    #[error("no cluster key in the HSM")]
    NoClusterKey,
    /// The HSM failed (session lost, device error). The message names the PKCS#11 call and
    /// return code only.
    #[error("HSM failure: {0}")]
    Hsm(String),
}

/// Seals and unseals bytes under the cluster key. Implemented by `bkv-hsm`.
pub trait Sealer: Send + Sync {
    /// Encrypts and authenticates `plaintext`, bound to `purpose` and `aad`.
    fn seal(
        &self,
        purpose: SealPurpose,
        aad: &[u8],
        plaintext: &[u8],
    ) -> impl Future<Output = Result<Vec<u8>, SealError>> + Send;

    /// Checks and decrypts a blob made by [`Sealer::seal`] with the same purpose and AAD.
    fn unseal(
        &self,
        purpose: SealPurpose,
        aad: &[u8],
        blob: &[u8],
    ) -> impl Future<Output = Result<Zeroizing<Vec<u8>>, SealError>> + Send;
}

/// Builds AADs: a domain label, then each part length-prefixed, so that no two different
/// lists of parts give the same bytes.
#[derive(Debug, Clone)]
pub struct Aad(Vec<u8>);

impl Aad {
    /// Starts an AAD under a domain label.
    pub fn new(label: &str) -> Self {
        let mut aad = Self(Vec::with_capacity(96));
        aad.push(label.as_bytes());
        aad
    }

    /// Appends one length-prefixed part.
    pub fn push(&mut self, part: &[u8]) -> &mut Self {
        // Parts are ids and labels of at most a few hundred bytes; u32 cannot overflow.
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(part);
        self
    }

    /// The AAD bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// AAD of a record blob: bound to the cluster, the account and the registration's
    /// request id (the version is not known until the `Stage` entry is committed; the
    /// request id is unique to the registration and stored next to the blob).
    pub fn record(cluster: &ClusterId, account: &AccountId, request: &RequestId) -> Vec<u8> {
        let mut aad = Self::new("bkv/record/v1");
        aad.push(cluster.as_bytes())
            .push(account.as_bytes())
            .push(request.as_bytes());
        aad.into_bytes()
    }

    /// AAD of the sealed OPAQUE server setup: bound to the cluster.
    pub fn server_setup(cluster: &ClusterId) -> Vec<u8> {
        let mut aad = Self::new("bkv/server-setup/v1");
        aad.push(cluster.as_bytes());
        aad.into_bytes()
    }

    /// AAD of a recovery ticket: bound to the cluster and the account.
    pub fn ticket(cluster: &ClusterId, account: &AccountId) -> Vec<u8> {
        let mut aad = Self::new("bkv/ticket/v1");
        aad.push(cluster.as_bytes()).push(account.as_bytes());
        aad.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aad_parts_are_unambiguous() {
        let mut a = Aad::new("x");
        a.push(b"ab").push(b"c");
        let mut b = Aad::new("x");
        b.push(b"a").push(b"bc");
        assert_ne!(a.into_bytes(), b.into_bytes());
    }

    #[test]
    fn purposes_round_trip_through_their_byte() {
        for p in [
            SealPurpose::Record,
            SealPurpose::ServerSetup,
            SealPurpose::Ticket,
            SealPurpose::Watermark,
            SealPurpose::OprfShare,
            SealPurpose::Test,
        ] {
            assert_eq!(SealPurpose::from_byte(p as u8), Some(p));
        }
        assert_eq!(SealPurpose::from_byte(0), None);
    }
}
