//! Reset authorization: a guess counter goes back to zero only with the client's signature,
//! made with a key derived from its OPAQUE export key (so only someone who knows the
//! password can make one), over the cluster, the account, the record version and the charge
//! the successful login ran under. Every node checks it when it applies the reset, so a node
//! that makes one up gets it refused everywhere.
//!
//! Message: `"bkv/v2/reset" || I2OSP(len(cluster_name),2) || cluster_name ||
//! I2OSP(len(account),2) || account || I2OSP(version,8) || I2OSP(charge,8)`; Ed25519
//! (RFC 8032, verified strictly), 64-byte signature.

use crate::ids::{AccountId, ChargeNumber, RecordVersion};

/// Domain tag of reset messages.
pub const RESET_TAG: &[u8] = b"bkv/v2/reset";

/// The message a reset signature covers.
pub fn reset_message(
    cluster_name: &str,
    account: &AccountId,
    version: RecordVersion,
    charge: ChargeNumber,
) -> Vec<u8> {
    let name = cluster_name.as_bytes();
    let account = account.as_bytes();
    let mut m = Vec::with_capacity(RESET_TAG.len() + 4 + name.len() + account.len() + 16);
    m.extend_from_slice(RESET_TAG);
    // Cluster names and account ids are far shorter than 64 KiB (checked where they are
    // parsed), so the lengths fit two bytes.
    m.extend_from_slice(&(name.len() as u16).to_be_bytes());
    m.extend_from_slice(name);
    m.extend_from_slice(&(account.len() as u16).to_be_bytes());
    m.extend_from_slice(account);
    m.extend_from_slice(&version.get().to_be_bytes());
    m.extend_from_slice(&charge.get().to_be_bytes());
    m
}

/// Whether `signature` is a valid reset signature by `reset_key` for this reset.
pub fn reset_signature_valid(
    reset_key: &[u8; 32],
    cluster_name: &str,
    account: &AccountId,
    version: RecordVersion,
    charge: ChargeNumber,
    signature: &[u8; 64],
) -> bool {
    let message = reset_message(cluster_name, account, version, charge);
    crate::oprf::verify_reset(reset_key, &message, signature)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    #[test]
    fn only_the_signed_reset_verifies() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let public = key.verifying_key().to_bytes();
        let alice = AccountId::parse("alice").unwrap();
        let (v, c) = (RecordVersion(7000), ChargeNumber(3));
        let sig = key.sign(&reset_message("bkv", &alice, v, c)).to_bytes();
        assert!(reset_signature_valid(&public, "bkv", &alice, v, c, &sig));
        let bob = AccountId::parse("bob").unwrap();
        assert!(!reset_signature_valid(&public, "bkv", &bob, v, c, &sig));
        assert!(!reset_signature_valid(&public, "other", &alice, v, c, &sig));
        assert!(!reset_signature_valid(
            &public,
            "bkv",
            &alice,
            RecordVersion(7001),
            c,
            &sig
        ));
        assert!(!reset_signature_valid(
            &public,
            "bkv",
            &alice,
            v,
            ChargeNumber(4),
            &sig
        ));
        let mut forged = sig;
        forged[5] ^= 1;
        assert!(!reset_signature_valid(
            &public, "bkv", &alice, v, c, &forged
        ));
        assert!(!reset_signature_valid(&[0; 32], "bkv", &alice, v, c, &sig));
    }
}
