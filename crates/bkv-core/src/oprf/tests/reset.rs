//! Reset authorization: signatures verify only for their own key and message, strictly.

use curve25519_dalek::scalar::Scalar;

use super::super::{ResetKey, reset_message, verify_reset};
use crate::ids::{AccountId, ChargeNumber, RecordVersion};
use crate::protocol::ExportKey;

fn message(version: u64, charge: u64) -> Vec<u8> {
    reset_message(
        "bkv-local",
        &AccountId::parse("alice").expect("valid"),
        RecordVersion(version),
        ChargeNumber(charge),
    )
}

#[test]
fn reset_messages_are_laid_out_as_documented() {
    let mut expected = b"bkv/v2/reset".to_vec();
    expected.extend_from_slice(b"\x00\x09bkv-local");
    expected.extend_from_slice(b"\x00\x05alice");
    expected.extend_from_slice(&7000u64.to_be_bytes());
    expected.extend_from_slice(&3u64.to_be_bytes());
    assert_eq!(message(7000, 3), expected);
}

#[test]
fn a_reset_signature_verifies_only_for_its_key_and_message() {
    let key = ResetKey::derive(&ExportKey::take_from(&mut [5u8; 64]).expect("64 bytes"));
    let same = ResetKey::derive(&ExportKey::take_from(&mut [5u8; 64]).expect("64 bytes"));
    let other = ResetKey::derive(&ExportKey::take_from(&mut [6u8; 64]).expect("64 bytes"));
    assert_eq!(key.public(), same.public(), "derivation is deterministic");
    assert_ne!(key.public(), other.public());

    let m = message(7000, 3);
    let sig = key.sign(&m);
    assert!(verify_reset(&key.public(), &m, &sig));
    assert!(!verify_reset(&other.public(), &m, &sig));
    assert!(!verify_reset(&key.public(), &message(7000, 4), &sig));
    assert!(!verify_reset(&key.public(), &message(7001, 3), &sig));
    for bit in 0..512 {
        let mut flipped = sig;
        flipped[bit / 8] ^= 1 << (bit % 8);
        assert!(!verify_reset(&key.public(), &m, &flipped), "bit {bit}");
    }
    // S + l: the same signature with a non-canonical S, which verify_strict refuses.
    let s = Scalar::from_canonical_bytes(sig[32..].try_into().expect("32"));
    assert!(bool::from(s.is_some()));
    let mut big_s = sig;
    let mut carry = 0u16;
    let order = super::unhex32("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
    for i in 0..32 {
        let v = u16::from(big_s[32 + i]) + u16::from(order[i]) + carry;
        big_s[32 + i] = v as u8;
        carry = v >> 8;
    }
    assert_eq!(carry, 0, "S + l < 2^254");
    assert!(!verify_reset(&key.public(), &m, &big_s));
    // A small-order public key never verifies.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert!(!verify_reset(&identity, &m, &sig));
}
