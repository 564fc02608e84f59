//! Tests of the shared formats: lengths promised by the proto, sealing of K and transport.

use proptest::prelude::*;

use super::*;
use crate::ids::RecordVersion;

fn account(s: &str) -> AccountId {
    AccountId::parse(s).unwrap()
}

fn export_key(byte: u8) -> ExportKey {
    ExportKey::take_from(&mut [byte; 64]).unwrap()
}

fn session_key(byte: u8) -> SessionKey {
    SessionKey::take_from(&mut [byte; 64]).unwrap()
}

#[test]
fn opaque_message_lengths_match_the_proto() {
    assert_eq!(REGISTRATION_REQUEST_LEN, 32);
    assert_eq!(REGISTRATION_RESPONSE_LEN, 64);
    assert_eq!(CREDENTIAL_REQUEST_LEN, 96);
    assert_eq!(CREDENTIAL_FINALIZATION_LEN, 64);
    assert_eq!(REGISTRATION_UPLOAD_LEN, 192);
    assert_eq!(CREDENTIAL_RESPONSE_LEN, 320);
    assert_eq!(SEALED_BACKUP_KEY_LEN, 60);
}

#[test]
fn sealed_key_opens_only_with_its_export_key_and_account() {
    let alice = account("alice");
    let k = BackupKey::generate();
    let sealed = seal_backup_key(&export_key(1), &alice, &k).unwrap();
    assert_eq!(sealed.as_bytes().len(), SEALED_BACKUP_KEY_LEN);
    assert!(!sealed.as_bytes().windows(32).any(|w| w == k.expose()));
    assert_eq!(
        open_backup_key(&export_key(1), &alice, sealed.as_bytes()).ok(),
        Some(k)
    );
    assert_eq!(
        open_backup_key(&export_key(2), &alice, sealed.as_bytes()).err(),
        Some(FormatError::Rejected)
    );
    assert_eq!(
        open_backup_key(&export_key(1), &account("bob"), sealed.as_bytes()).err(),
        Some(FormatError::Rejected)
    );
    let mut tampered = sealed.as_bytes().to_vec();
    tampered[20] ^= 1;
    assert_eq!(
        open_backup_key(&export_key(1), &alice, &tampered).err(),
        Some(FormatError::Rejected)
    );
    assert!(matches!(
        open_backup_key(&export_key(1), &alice, &[0u8; 27]),
        Err(FormatError::TooShort { .. })
    ));
    assert!(matches!(
        open_backup_key(&export_key(1), &alice, &[0u8; MAX_SEALED_KEY_LEN + 1]),
        Err(FormatError::TooLarge { .. })
    ));
}

#[test]
fn two_sealings_of_one_key_differ() {
    let alice = account("alice");
    let k = BackupKey::generate();
    let a = seal_backup_key(&export_key(1), &alice, &k).unwrap();
    let b = seal_backup_key(&export_key(1), &alice, &k).unwrap();
    assert_ne!(a, b, "nonces are random");
}

#[test]
fn transport_is_bound_to_session_account_and_version() {
    let alice = account("alice");
    let sealed = SealedKey::parse(vec![7u8; 60]).unwrap();
    let v = RecordVersion(42);
    let t = seal_for_transport(&session_key(3), &alice, v, &sealed).unwrap();
    assert_eq!(t.len(), 60 + AEAD_OVERHEAD);
    assert_eq!(
        open_transported(&session_key(3), &alice, v, &t).ok(),
        Some(sealed.clone())
    );
    for (key, acct, version) in [
        (session_key(4), alice.clone(), v),
        (session_key(3), account("bob"), v),
        (session_key(3), alice.clone(), RecordVersion(43)),
    ] {
        assert_eq!(
            open_transported(&key, &acct, version, &t),
            Err(FormatError::Rejected)
        );
    }
    // The AAD is account || version as 8 bytes big-endian: "alice" + version 42 must not equal
    // "alice\0..." with another version; different lengths of account already differ.
    assert!(open_transported(&session_key(3), &alice, v, &t[..t.len() - 1]).is_err());
}

#[test]
fn sealed_key_sizes_are_bounded() {
    assert!(SealedKey::parse(vec![0; MIN_SEALED_KEY_LEN]).is_ok());
    assert!(SealedKey::parse(vec![0; MAX_SEALED_KEY_LEN]).is_ok());
    assert!(matches!(
        SealedKey::parse(vec![0; MIN_SEALED_KEY_LEN - 1]),
        Err(FormatError::TooShort { .. })
    ));
    assert!(matches!(
        SealedKey::parse(vec![0; MAX_SEALED_KEY_LEN + 1]),
        Err(FormatError::TooLarge { .. })
    ));
    assert_eq!(
        format!("{:?}", SealedKey::parse(vec![0; 60]).unwrap()),
        "SealedKey(60 bytes)"
    );
}

#[test]
fn credential_request_hash_is_sha256() {
    assert_eq!(
        hex::encode(credential_request_hash(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn identifiers_and_context_are_fixed() {
    let alice = account("alice");
    let ids = identifiers(&alice);
    assert_eq!(ids.client, Some(&b"alice"[..]));
    assert_eq!(ids.server, None);
    assert_eq!(CONTEXT, b"bkv/v2");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn opening_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
        let alice = account("alice");
        prop_assert!(open_backup_key(&export_key(1), &alice, &bytes).is_err());
        prop_assert!(open_transported(&session_key(1), &alice, RecordVersion(1), &bytes).is_err());
    }
}
