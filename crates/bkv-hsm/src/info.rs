//! Plain values the partition hands out about its keys: ids, check values, fingerprints and
//! the wrapped cluster key of the enrollment ceremony. None of them is secret.

use std::fmt;

use crate::P256Point;

/// Identity of the cluster key, the same on every node's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClusterKeyInfo {
    /// 8 random bytes chosen at generation, stored as CKA_ID and carried through the
    /// ceremony.
    pub key_id: [u8; 8],
    /// Key check value: the first 3 bytes of AES-ECB(key, zero block), computed in the token.
    pub key_check_value: [u8; 3],
}

impl fmt::Display for ClusterKeyInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "key id {} kcv {}",
            hex::encode(self.key_id),
            hex::encode(self.key_check_value)
        )
    }
}

/// The public half of this token's enrollment key pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentKey {
    /// DER SubjectPublicKeyInfo of the RSA-3072 public key.
    pub spki_der: Vec<u8>,
    /// SHA-256 of `spki_der`, lower-case hex: what the operator confirms.
    pub fingerprint: String,
}

/// The cluster key wrapped (RSA-OAEP) under a peer's trusted enrollment key, with the id
/// and check value the peer must find after unwrapping it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedClusterKey {
    /// RSA-OAEP (SHA-1, MGF1-SHA-1) ciphertext of the key; only the peer's token opens it.
    pub wrapped: Vec<u8>,
    /// The cluster key's id.
    pub key_id: [u8; 8],
    /// The cluster key's check value.
    pub key_check_value: [u8; 3],
}

/// The public half of this token's share-receiving key pair: what clients encrypt OPRF key
/// shares to (ECDH on P-256 with an ephemeral key of theirs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareReceiveKey {
    /// The public point, SEC1 uncompressed (`0x04 || X || Y`), checked to be on P-256.
    pub public: [u8; 65],
    /// SHA-256 of `public`, lower-case hex: what the operator confirms.
    pub fingerprint: String,
}

impl ShareReceiveKey {
    /// The key of a checked point.
    pub(crate) fn new(point: &P256Point) -> Self {
        Self {
            public: point.to_bytes(),
            fingerprint: point.fingerprint(),
        }
    }
}
