//! The public half of a protocol v2 record, kept in the replicated state beside the
//! HSM-sealed OPAQUE record: who holds the account's OPRF key shares (with each share's
//! commitment and its ciphertext to that node), the threshold, the reset public key, and the
//! client's Argon2id parameters.
//!
//! Nothing here helps test a password: a commitment is `k_i·G`, a ciphertext opens only in
//! its node's token, the reset key is derived from the OPAQUE export key (itself behind the
//! threshold OPRF), and the KSF parameters are public by design.

use serde::{Deserialize, Serialize};

use crate::bytes;
use crate::protocol::KsfParams;

/// Length of a share commitment (compressed ristretto255).
pub const COMMITMENT_LEN: usize = 32;

/// Length of a share ciphertext (ECIES P-256: ephemeral point 65 || nonce 12 || ct 32 ||
/// tag 16).
pub const SHARE_CIPHERTEXT_LEN: usize = 125;

/// One node's share of the account's OPRF key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredShare {
    /// The share-holder, whose node id is the share's index.
    pub node_id: u64,
    /// `K_i = k_i·G`.
    pub commitment: [u8; COMMITMENT_LEN],
    /// `k_i` encrypted to the node's share-receiving key.
    #[serde(with = "bytes")]
    pub ciphertext: Vec<u8>,
}

/// The public OPRF half of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OprfRecord {
    /// The share map epoch the shares were made for.
    pub map_epoch: u64,
    /// Evaluations that combine into the OPRF output.
    pub threshold: u16,
    /// One share per holder of that map, by increasing node id.
    pub shares: Vec<StoredShare>,
    /// Ed25519 public key that signs this record's resets.
    pub reset_key: [u8; 32],
    /// The client's Argon2id parameters.
    pub ksf: KsfParams,
}

impl OprfRecord {
    /// The share held by `node_id`, if it holds one.
    pub fn share_of(&self, node_id: u64) -> Option<&StoredShare> {
        self.shares.iter().find(|s| s.node_id == node_id)
    }

    /// The share-holders' node ids, in order.
    pub fn holders(&self) -> impl Iterator<Item = u64> + '_ {
        self.shares.iter().map(|s| s.node_id)
    }

    /// `SHA-256("bkv/v2/shares" || (I2OSP(node_id, 8) || commitment) for each share)`: which
    /// generation of shares the record holds (a share refresh names the one it replaces).
    pub fn shares_digest(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(b"bkv/v2/shares");
        for share in &self.shares {
            hash.update(share.node_id.to_be_bytes());
            hash.update(share.commitment);
        }
        hash.finalize().into()
    }
}
