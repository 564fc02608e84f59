//! What a share ciphertext is bound to: the cluster, the account, the receiving node and
//! the share's commitment. It is the AES-GCM associated data and part of the HKDF info, so a
//! ciphertext opens only for the node, account and commitment it was made for.

use super::Commitment;
use crate::ids::{AccountId, ClusterId};

/// The first bytes of every share context.
pub const SHARE_CONTEXT_LABEL: &[u8] = b"bkv/v2/share";

/// The binding of one share ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareContext {
    /// The cluster the account registers with.
    pub cluster_id: ClusterId,
    /// The account.
    pub account: AccountId,
    /// The receiving voter's node id (its share index `x_i`).
    pub node_id: u64,
    /// The share's commitment `K_i`.
    pub commitment: Commitment,
}

impl ShareContext {
    /// `"bkv/v2/share" || cluster_id (16) || I2OSP(len(account), 2) || account ||
    /// I2OSP(node_id, 8) || K_i (32)`, integers big-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let account = self.account.as_bytes();
        let mut out = Vec::with_capacity(SHARE_CONTEXT_LABEL.len() + 16 + 2 + account.len() + 40);
        out.extend_from_slice(SHARE_CONTEXT_LABEL);
        out.extend_from_slice(self.cluster_id.as_bytes());
        // An account id is at most 128 bytes.
        out.extend_from_slice(&super::suite::i2osp2(account.len()));
        out.extend_from_slice(account);
        out.extend_from_slice(&self.node_id.to_be_bytes());
        out.extend_from_slice(self.commitment.as_bytes());
        out
    }
}
