//! The share map: which voters hold OPRF key shares, with the key each one receives its
//! shares under, and the threshold. Signed by the cluster identity key, an Ed25519 key the
//! operator holds outside the nodes and clients pin, so that a node cannot hand a client keys
//! of its own to split to.
//!
//! Canonical encoding (what is signed and what clients parse):
//! `"bkv/v2/share-map" || I2OSP(len(cluster_name),2) || cluster_name || I2OSP(epoch,8) ||
//! I2OSP(threshold,2) || I2OSP(n,2) || n × (I2OSP(node_id,8) || receive_key (65))`, node ids
//! strictly increasing, `threshold = floor(n/2)+1`, each receive key a SEC1 uncompressed
//! P-256 point (`0x04 || X || Y`).

use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::bytes;

/// Domain tag at the start of every encoded share map.
pub const SHARE_MAP_TAG: &[u8] = b"bkv/v2/share-map";

/// Length of a share-receiving public key (SEC1 uncompressed P-256).
pub const RECEIVE_KEY_LEN: usize = 65;

/// Most share-holders a map may name.
pub const MAX_HOLDERS: usize = 64;

/// The threshold of `n` share-holders: a majority, `floor(n/2) + 1`.
pub const fn threshold_for(n: usize) -> usize {
    n / 2 + 1
}

/// One share-holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareHolder {
    /// The voter's node id, which is also its share index.
    pub node_id: u64,
    /// Its share-receiving public key (SEC1 uncompressed P-256), held in its token.
    #[serde(with = "bytes::array")]
    pub receive_key: [u8; RECEIVE_KEY_LEN],
}

/// Who holds shares, at which epoch, for which cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareMap {
    /// The cluster name (account tokens' audience).
    pub cluster_name: String,
    /// Increases with every new map.
    pub epoch: u64,
    /// Evaluations needed for an OPRF output: `floor(n/2)+1`.
    pub threshold: u16,
    /// The share-holders, by increasing node id.
    pub holders: Vec<ShareHolder>,
}

/// A share map as signed: its canonical bytes and the identity key's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedShareMap {
    /// [`ShareMap::encode`]'s bytes.
    #[serde(with = "bytes")]
    pub encoded: Vec<u8>,
    /// Ed25519 signature of `encoded` by the cluster identity key.
    #[serde(with = "bytes::array")]
    pub signature: [u8; 64],
}

/// Why a share map is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareMapError {
    /// The bytes are not a canonical encoding.
    #[error("share map encoding: {0}")]
    Encoding(&'static str),
    /// The map breaks a rule (threshold, order, size).
    #[error("share map: {0}")]
    Invalid(&'static str),
    /// The signature does not verify under the cluster identity key.
    #[error("share map signature does not verify under the cluster identity key")]
    Signature,
    /// The identity key is not an Ed25519 public key.
    #[error("the cluster identity key is not an Ed25519 public key")]
    IdentityKey,
}

impl ShareMap {
    /// The canonical bytes (module docs).
    pub fn encode(&self) -> Vec<u8> {
        let name = self.cluster_name.as_bytes();
        let mut out =
            Vec::with_capacity(SHARE_MAP_TAG.len() + 2 + name.len() + 12 + self.holders.len() * 73);
        out.extend_from_slice(SHARE_MAP_TAG);
        // Lengths were checked by `check` (name at most 255 bytes, at most MAX_HOLDERS).
        out.extend_from_slice(&(name.len() as u16).to_be_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.threshold.to_be_bytes());
        out.extend_from_slice(&(self.holders.len() as u16).to_be_bytes());
        for h in &self.holders {
            out.extend_from_slice(&h.node_id.to_be_bytes());
            out.extend_from_slice(&h.receive_key);
        }
        out
    }

    /// Reads canonical bytes and checks the map's rules.
    pub fn parse(bytes: &[u8]) -> Result<Self, ShareMapError> {
        let mut r = bytes
            .strip_prefix(SHARE_MAP_TAG)
            .ok_or(ShareMapError::Encoding("tag"))?;
        let mut take = |n: usize, what: &'static str| -> Result<&[u8], ShareMapError> {
            if r.len() < n {
                return Err(ShareMapError::Encoding(what));
            }
            let (head, tail) = r.split_at(n);
            r = tail;
            Ok(head)
        };
        let be16 = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
        let name_len = usize::from(be16(take(2, "cluster name length")?));
        let name = std::str::from_utf8(take(name_len, "cluster name")?)
            .map_err(|_| ShareMapError::Encoding("cluster name is not UTF-8"))?
            .to_string();
        let epoch = u64::from_be_bytes(
            take(8, "epoch")?
                .try_into()
                .map_err(|_| ShareMapError::Encoding("epoch"))?,
        );
        let threshold = be16(take(2, "threshold")?);
        let n = usize::from(be16(take(2, "holder count")?));
        if n > MAX_HOLDERS {
            return Err(ShareMapError::Invalid("too many share-holders"));
        }
        let mut holders = Vec::with_capacity(n);
        for _ in 0..n {
            let node_id = u64::from_be_bytes(
                take(8, "node id")?
                    .try_into()
                    .map_err(|_| ShareMapError::Encoding("node id"))?,
            );
            let receive_key: [u8; RECEIVE_KEY_LEN] = take(RECEIVE_KEY_LEN, "receive key")?
                .try_into()
                .map_err(|_| ShareMapError::Encoding("receive key"))?;
            holders.push(ShareHolder {
                node_id,
                receive_key,
            });
        }
        if !r.is_empty() {
            return Err(ShareMapError::Encoding("trailing bytes"));
        }
        let map = Self {
            cluster_name: name,
            epoch,
            threshold,
            holders,
        };
        map.check()?;
        Ok(map)
    }

    /// Checks the map's rules: a cluster name of 1 to 255 bytes, epoch at least 1, 1 to
    /// [`MAX_HOLDERS`] holders with nonzero, strictly increasing node ids and uncompressed
    /// points, and the majority threshold.
    pub fn check(&self) -> Result<(), ShareMapError> {
        if self.cluster_name.is_empty() || self.cluster_name.len() > 255 {
            return Err(ShareMapError::Invalid("cluster name of 1 to 255 bytes"));
        }
        if self.epoch == 0 {
            return Err(ShareMapError::Invalid("epoch 0"));
        }
        if self.holders.is_empty() || self.holders.len() > MAX_HOLDERS {
            return Err(ShareMapError::Invalid("1 to 64 share-holders"));
        }
        if usize::from(self.threshold) != threshold_for(self.holders.len()) {
            return Err(ShareMapError::Invalid("threshold is not floor(n/2)+1"));
        }
        let mut last = 0u64;
        for h in &self.holders {
            if h.node_id <= last {
                return Err(ShareMapError::Invalid(
                    "node ids must be nonzero and strictly increasing",
                ));
            }
            last = h.node_id;
            if h.receive_key[0] != 0x04 {
                return Err(ShareMapError::Invalid(
                    "receive key is not an uncompressed point",
                ));
            }
        }
        Ok(())
    }

    /// The holder with this node id.
    pub fn holder(&self, node_id: u64) -> Option<&ShareHolder> {
        self.holders.iter().find(|h| h.node_id == node_id)
    }
}

impl SignedShareMap {
    /// Checks the signature under the cluster identity key, then parses the map.
    pub fn verify(&self, identity_key: &[u8; 32]) -> Result<ShareMap, ShareMapError> {
        let key = VerifyingKey::from_bytes(identity_key).map_err(|_| ShareMapError::IdentityKey)?;
        key.verify_strict(&self.encoded, &Signature::from_bytes(&self.signature))
            .map_err(|_| ShareMapError::Signature)?;
        ShareMap::parse(&self.encoded)
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    fn map(n: u64) -> ShareMap {
        ShareMap {
            cluster_name: "bkv-local".into(),
            epoch: 3,
            threshold: u16::try_from(threshold_for(n as usize)).unwrap(),
            holders: (1..=n)
                .map(|id| ShareHolder {
                    node_id: id,
                    receive_key: [4; 65],
                })
                .collect(),
        }
    }

    fn sign(key: &SigningKey, map: &ShareMap) -> SignedShareMap {
        let encoded = map.encode();
        SignedShareMap {
            signature: key.sign(&encoded).to_bytes(),
            encoded,
        }
    }

    #[test]
    fn a_signed_map_verifies_and_parses_back() {
        let key = SigningKey::from_bytes(&[9; 32]);
        for n in [1, 2, 3, 5] {
            let m = map(n);
            let signed = sign(&key, &m);
            assert_eq!(signed.verify(&key.verifying_key().to_bytes()), Ok(m));
        }
        assert_eq!(
            (threshold_for(1), threshold_for(3), threshold_for(5)),
            (1, 2, 3)
        );
    }

    #[test]
    fn another_key_a_changed_byte_or_a_broken_rule_is_refused() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let signed = sign(&key, &map(3));
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key().to_bytes();
        assert_eq!(signed.verify(&other), Err(ShareMapError::Signature));
        for i in 0..signed.encoded.len() {
            let mut changed = signed.clone();
            changed.encoded[i] ^= 1;
            assert!(changed.verify(&key.verifying_key().to_bytes()).is_err());
        }
        let mut bad = map(3);
        bad.threshold = 1;
        assert!(
            sign(&key, &bad)
                .verify(&key.verifying_key().to_bytes())
                .is_err()
        );
        let mut unordered = map(3);
        unordered.holders.swap(0, 1);
        assert!(ShareMap::parse(&unordered.encode()).is_err());
        let mut trailing = map(3).encode();
        trailing.push(0);
        assert_eq!(
            ShareMap::parse(&trailing),
            Err(ShareMapError::Encoding("trailing bytes"))
        );
        assert!(ShareMap::parse(&map(3).encode()[..40]).is_err());
    }
}
