//! What a share ciphertext is bound to: the cluster, the account, the receiving node, the
//! record's guess limit and reset key, and the share's commitment. It is the AES-GCM
//! associated data and part of the HKDF info, so a ciphertext opens only for the node,
//! account and commitment it was made for, and only under the limit and reset key the
//! client chose (a node whose replicated state was tampered with cannot be made to count
//! against another limit or to accept resets signed by another key).

use super::Commitment;
use crate::ids::AccountId;

/// The first bytes of every share context.
pub const SHARE_CONTEXT_LABEL: &[u8] = b"bkv/v2/share";

/// The binding of one share ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareContext {
    /// The cluster's name (account tokens' audience).
    pub cluster_name: String,
    /// The account.
    pub account: AccountId,
    /// The receiving voter's node id (its share index `x_i`).
    pub node_id: u64,
    /// The record's guess limit.
    pub guess_limit: u32,
    /// The record's reset public key.
    pub reset_key: [u8; 32],
    /// The share's commitment `K_i`.
    pub commitment: Commitment,
}

impl ShareContext {
    /// `"bkv/v2/share" || I2OSP(len(cluster_name), 2) || cluster_name ||
    /// I2OSP(len(account), 2) || account || I2OSP(node_id, 8) || I2OSP(guess_limit, 4) ||
    /// reset_key (32) || K_i (32)`, integers big-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let name = self.cluster_name.as_bytes();
        let account = self.account.as_bytes();
        let mut out = Vec::with_capacity(
            SHARE_CONTEXT_LABEL.len() + 4 + name.len() + account.len() + 8 + 4 + 64,
        );
        out.extend_from_slice(SHARE_CONTEXT_LABEL);
        // Neither length can reach 2^16 (where i2osp2 would panic): a client builds a
        // context only for the cluster a verified share map names, and ShareMap::check
        // refuses names over 255 bytes; a node only for its own cluster, whose name init
        // bounds to 64 bytes; an AccountId is at most 128 bytes.
        out.extend_from_slice(&super::suite::i2osp2(name.len()));
        out.extend_from_slice(name);
        out.extend_from_slice(&super::suite::i2osp2(account.len()));
        out.extend_from_slice(account);
        out.extend_from_slice(&self.node_id.to_be_bytes());
        out.extend_from_slice(&self.guess_limit.to_be_bytes());
        out.extend_from_slice(&self.reset_key);
        out.extend_from_slice(self.commitment.as_bytes());
        out
    }
}
