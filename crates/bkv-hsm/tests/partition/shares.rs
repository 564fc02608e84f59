//! The node's own share keys: the share-receiving P-256 key pair (ECDH in the token, checked
//! against software ECDH) and the share-sealing key (shares at rest, never opened by the
//! cluster key, never opening a cluster-key blob).

use std::time::Duration;

use bkv_core::{SealError, SealPurpose};
use bkv_hsm::testing::{self, TestToken};
use bkv_hsm::{
    HsmError, P256Point, Partition, SEALED_HEADER_LEN, SEALED_TAG_LEN, SHARE_ECDH_SECRET_LABEL,
    SHARE_RECEIVE_KEY_LABEL, SHARE_SEAL_KEY_LABEL, ShareReceiveKey,
};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use sha2::{Digest, Sha256};

/// A software ephemeral key, derived from `i` so that failures can be replayed.
fn ephemeral(i: u64) -> (p256::SecretKey, [u8; 65]) {
    for ctr in 0u8..16 {
        let seed = Sha256::digest(format!("bkv-hsm shares test ephemeral {i}/{ctr}"));
        // Fails only for a seed >= the group order or zero: about 2^-32 of seeds.
        if let Ok(sk) = p256::SecretKey::from_slice(&seed) {
            let point = sk.public_key().to_encoded_point(false);
            let bytes: [u8; 65] = point.as_bytes().try_into().expect("65-byte SEC1 point");
            return (sk, bytes);
        }
    }
    unreachable!("sixteen seeds out of range in a row")
}

/// Z = x(e * Pub) computed in software.
fn software_z(e: &p256::SecretKey, token_key: &ShareReceiveKey) -> [u8; 32] {
    let public = p256::PublicKey::from_sec1_bytes(&token_key.public).expect("token point");
    let shared = p256::ecdh::diffie_hellman(e.to_nonzero_scalar(), public.as_affine());
    (*shared.raw_secret_bytes()).into()
}

/// Every object the user sees in a worker's session (token objects and that session's
/// session objects).
async fn object_count(p: &Partition) -> usize {
    testing::with_session(p, |s| s.find_objects(&[]).expect("find all").len())
        .await
        .expect("worker")
}

/// The objects carrying `label`, as the user sees them.
async fn labelled(p: &Partition, label: &'static str) -> usize {
    testing::with_session(p, move |s| {
        s.find_objects(&[Attribute::Label(label.into())])
            .expect("find")
            .len()
    })
    .await
    .expect("worker")
}

/// The boolean attributes of the one object of `class` labelled `label`, and what the
/// token says about reading its secret parts.
async fn key_flags(
    p: &Partition,
    class: ObjectClass,
    label: &'static str,
    secret_parts: &'static [AttributeType],
) -> (Vec<(AttributeType, bool)>, Vec<AttributeInfo>) {
    testing::with_session(p, move |s| {
        let found = s
            .find_objects(&[Attribute::Class(class), Attribute::Label(label.into())])
            .expect("find");
        assert_eq!(found.len(), 1, "one {label} of class {class}");
        let h = found[0];
        let mut flags = Vec::new();
        for t in [
            AttributeType::Token,
            AttributeType::Private,
            AttributeType::Sensitive,
            AttributeType::AlwaysSensitive,
            AttributeType::Extractable,
            AttributeType::NeverExtractable,
            AttributeType::Derive,
            AttributeType::Sign,
            AttributeType::SignRecover,
            AttributeType::Decrypt,
            AttributeType::Encrypt,
            AttributeType::Unwrap,
            AttributeType::Wrap,
            AttributeType::Verify,
            AttributeType::Copyable,
            AttributeType::Modifiable,
        ] {
            let Ok(attrs) = s.get_attributes(h, &[t]) else {
                continue;
            };
            for a in attrs {
                let v = match a {
                    Attribute::Token(b)
                    | Attribute::Private(b)
                    | Attribute::Sensitive(b)
                    | Attribute::AlwaysSensitive(b)
                    | Attribute::Extractable(b)
                    | Attribute::NeverExtractable(b)
                    | Attribute::Derive(b)
                    | Attribute::Sign(b)
                    | Attribute::SignRecover(b)
                    | Attribute::Decrypt(b)
                    | Attribute::Encrypt(b)
                    | Attribute::Unwrap(b)
                    | Attribute::Wrap(b)
                    | Attribute::Verify(b)
                    | Attribute::Copyable(b)
                    | Attribute::Modifiable(b) => b,
                    _ => continue,
                };
                flags.push((t, v));
            }
        }
        let infos = s.get_attribute_info(h, secret_parts).expect("info");
        (flags, infos)
    })
    .await
    .expect("worker")
}

fn flag(flags: &[(AttributeType, bool)], t: AttributeType) -> Option<bool> {
    flags.iter().find(|(a, _)| *a == t).map(|(_, b)| *b)
}

/// Asserts each `(attribute, value)` of `expected`.
fn assert_flags(flags: &[(AttributeType, bool)], expected: &[(AttributeType, bool)], what: &str) {
    for (t, v) in expected {
        assert_eq!(flag(flags, *t), Some(*v), "{what}: {t:?} in {flags:?}");
    }
}

#[tokio::test]
async fn share_receive_key_is_made_once_and_found_after_reopening() {
    let token = TestToken::new();
    let p = token.open().await;
    assert_eq!(p.find_share_receive_key().await.expect("find"), None);
    let key = p.share_receive_key().await.expect("make");
    assert_eq!(key.public[0], 0x04);
    p256::PublicKey::from_sec1_bytes(&key.public).expect("on P-256");
    assert_eq!(key.fingerprint, hex::encode(Sha256::digest(key.public)));
    assert_eq!(
        P256Point::parse(&key.public).expect("parses").fingerprint(),
        key.fingerprint
    );
    assert_eq!(
        p.share_receive_key().await.expect("again"),
        key,
        "made once"
    );
    assert_eq!(
        p.find_share_receive_key().await.expect("find"),
        Some(key.clone())
    );
    // Concurrent first calls on another token make one pair, not several.
    let other = TestToken::new();
    let q = other.open().await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move { q.share_receive_key().await }));
    }
    let mut keys = Vec::new();
    for t in tasks {
        keys.push(t.await.expect("task").expect("make"));
    }
    assert!(
        keys.windows(2).all(|w| w[0] == w[1]),
        "one key for all callers"
    );
    assert_eq!(labelled(&q, SHARE_RECEIVE_KEY_LABEL).await, 2, "one pair");
    assert_ne!(keys[0], key, "each token has its own key");
    drop(p);
    // After reopening the token, the same key is found and still derives.
    let p = token.open().await;
    assert_eq!(
        p.find_share_receive_key().await.expect("find"),
        Some(key.clone())
    );
    let (e, e_pub) = ephemeral(0);
    let z = p.share_ecdh(&e_pub).await.expect("ecdh");
    assert_eq!(*z, software_z(&e, &key));
}

#[tokio::test]
async fn share_keys_are_sensitive_private_and_single_purpose() {
    let token = TestToken::new();
    let p = token.open().await;
    let key = p.share_receive_key().await.expect("make");
    p.seal_share(b"aad", b"share").await.expect("seal share");

    // Phase 1: the private half derives and does nothing else; its value is unreadable.
    let (flags, infos) = key_flags(
        &p,
        ObjectClass::PRIVATE_KEY,
        SHARE_RECEIVE_KEY_LABEL,
        &[AttributeType::Value],
    )
    .await;
    use AttributeType as A;
    assert_flags(
        &flags,
        &[
            (A::Token, true),
            (A::Private, true),
            (A::Sensitive, true),
            (A::AlwaysSensitive, true),
            (A::Extractable, false),
            (A::NeverExtractable, true),
            (A::Derive, true),
            (A::Sign, false),
            (A::SignRecover, false),
            (A::Decrypt, false),
            (A::Unwrap, false),
            (A::Modifiable, false),
        ],
        "share-receiving private key",
    );
    assert!(matches!(infos[..], [AttributeInfo::Sensitive]), "{infos:?}");

    // Phase 2: the public half is a private token object on P-256 holding the exported point,
    // DER-wrapped as PKCS#11 says.
    let public = key.public;
    let (params, point, flags) = testing::with_session(&p, move |s| {
        let h = s
            .find_objects(&[
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::Label(SHARE_RECEIVE_KEY_LABEL.into()),
            ])
            .expect("find")[0];
        let attrs = s
            .get_attributes(h, &[A::EcParams, A::EcPoint, A::Private, A::KeyType])
            .expect("attributes");
        let (mut params, mut point, mut private, mut kind) = (None, None, None, None);
        for a in attrs {
            match a {
                Attribute::EcParams(v) => params = Some(v),
                Attribute::EcPoint(v) => point = Some(v),
                Attribute::Private(b) => private = Some(b),
                Attribute::KeyType(k) => kind = Some(k),
                _ => {}
            }
        }
        (params, point, (private, kind))
    })
    .await
    .expect("worker");
    assert_eq!(
        params.as_deref(),
        Some(&[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07][..])
    );
    let mut der = vec![0x04, 0x41];
    der.extend_from_slice(&public);
    assert_eq!(
        point,
        Some(der),
        "CKA_EC_POINT is the DER OCTET STRING of the point"
    );
    assert_eq!(flags, (Some(true), Some(KeyType::EC)));

    // Phase 3: the share-sealing key seals and nothing else, and never leaves the token.
    let (flags, infos) = key_flags(
        &p,
        ObjectClass::SECRET_KEY,
        SHARE_SEAL_KEY_LABEL,
        &[AttributeType::Value],
    )
    .await;
    assert_flags(
        &flags,
        &[
            (A::Token, true),
            (A::Private, true),
            (A::Sensitive, true),
            (A::AlwaysSensitive, true),
            (A::Extractable, false),
            (A::NeverExtractable, true),
            (A::Encrypt, true),
            (A::Decrypt, true),
            (A::Derive, false),
            (A::Wrap, false),
            (A::Unwrap, false),
            (A::Sign, false),
            (A::Modifiable, false),
        ],
        "share-sealing key",
    );
    assert!(matches!(infos[..], [AttributeInfo::Sensitive]), "{infos:?}");

    // Phase 4: the token enforces it: no signing with the ECDH key, no reading, weakening,
    // copying or wrapping either key. The wrapping key is a session key that can wrap (the
    // control shows it wraps an extractable key), so a refusal is the share keys' own doing.
    let refused = testing::with_session(&p, |s| {
        let find = |class, label: &str| {
            s.find_objects(&[Attribute::Class(class), Attribute::Label(label.into())])
                .expect("find")[0]
        };
        let ec = find(ObjectClass::PRIVATE_KEY, SHARE_RECEIVE_KEY_LABEL);
        let aes = find(ObjectClass::SECRET_KEY, SHARE_SEAL_KEY_LABEL);
        let session_aes = |extra: Attribute| {
            s.generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::Token(false),
                    Attribute::ValueLen(32.into()),
                    extra,
                ],
            )
            .expect("session AES key")
        };
        let wrapper = session_aes(Attribute::Wrap(true));
        let control = session_aes(Attribute::Extractable(true));
        let control_wraps = s
            .wrap_key(&Mechanism::AesKeyWrapPad, wrapper, control)
            .is_ok();
        let refusals = vec![
            (
                "sign with the ECDH key",
                s.sign(&Mechanism::Ecdsa, ec, &[0u8; 32]).is_err(),
            ),
            (
                "read the EC private value",
                s.get_attributes(ec, &[A::Value])
                    .map(|a| a.is_empty())
                    .unwrap_or(true),
            ),
            (
                "read the share key value",
                s.get_attributes(aes, &[A::Value])
                    .map(|a| a.is_empty())
                    .unwrap_or(true),
            ),
            (
                "make the EC key extractable",
                s.update_attributes(ec, &[Attribute::Extractable(true)])
                    .is_err(),
            ),
            (
                "make the EC key non-sensitive",
                s.update_attributes(ec, &[Attribute::Sensitive(false)])
                    .is_err(),
            ),
            (
                "make the share key extractable",
                s.update_attributes(aes, &[Attribute::Extractable(true)])
                    .is_err(),
            ),
            (
                "make the share key non-sensitive",
                s.update_attributes(aes, &[Attribute::Sensitive(false)])
                    .is_err(),
            ),
            (
                "wrap the share key",
                s.wrap_key(&Mechanism::AesKeyWrapPad, wrapper, aes).is_err(),
            ),
            (
                "wrap the EC private key",
                s.wrap_key(&Mechanism::AesKeyWrapPad, wrapper, ec).is_err(),
            ),
            (
                "copy the share key",
                s.copy_object(aes, &[Attribute::Token(false)]).is_err(),
            ),
            (
                "copy the EC private key",
                s.copy_object(ec, &[Attribute::Token(false)]).is_err(),
            ),
        ];
        for h in [wrapper, control] {
            s.destroy_object(h).expect("destroy session key");
        }
        (control_wraps, refusals)
    })
    .await
    .expect("worker");
    let (control_wraps, refused) = refused;
    assert!(
        control_wraps,
        "control: the session key wraps an extractable key"
    );
    for (what, was_refused) in refused {
        assert!(was_refused, "the token allowed: {what}");
    }
}

#[tokio::test]
async fn ecdh_in_the_token_matches_software() {
    let token = TestToken::new();
    let p = token.open().await;
    let key = p.share_receive_key().await.expect("make");
    let mut seen = Vec::new();
    for i in 0..16 {
        let (e, e_pub) = ephemeral(i);
        let z = p.share_ecdh(&e_pub).await.expect("ecdh");
        assert_eq!(*z, software_z(&e, &key), "ephemeral {i}");
        assert_eq!(
            *p.share_ecdh(&e_pub).await.expect("again"),
            *z,
            "deterministic"
        );
        assert!(!seen.contains(&*z), "distinct ephemerals give distinct Z");
        seen.push(*z);
    }
    // Another token's key gives another Z for the same ephemeral.
    let other = TestToken::new();
    let q = other.open().await;
    let key_q = q.share_receive_key().await.expect("make");
    let (e, e_pub) = ephemeral(0);
    let zq = q.share_ecdh(&e_pub).await.expect("ecdh");
    assert_eq!(*zq, software_z(&e, &key_q));
    assert_ne!(*zq, seen[0]);
}

/// What SoftHSM itself accepts as the peer's point in CK_ECDH1_DERIVE_PARAMS: the raw SEC1
/// point and its DER OCTET STRING both work and agree; bkv sends the raw point. A point off
/// the curve is refused by the token as well.
#[tokio::test]
async fn softhsm_takes_the_raw_point_and_its_der_wrapping() {
    let token = TestToken::new();
    let p = token.open().await;
    let key = p.share_receive_key().await.expect("make");
    let (e, e_pub) = ephemeral(7);
    let expected = software_z(&e, &key);
    let mut der = vec![0x04, 0x41];
    der.extend_from_slice(&e_pub);
    let mut off_curve = e_pub;
    off_curve[64] ^= 1;
    let outcomes = testing::with_session(&p, move |s| {
        let private = s
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(SHARE_RECEIVE_KEY_LABEL.into()),
            ])
            .expect("find")[0];
        let template = vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::ValueLen(32.into()),
        ];
        let derive = |peer: &[u8]| -> Result<Vec<u8>, cryptoki::error::Error> {
            let params = Ecdh1DeriveParams::new(EcKdf::null(), peer);
            let h = s.derive_key(&Mechanism::Ecdh1Derive(params), private, &template)?;
            let value = s.get_attributes(h, &[AttributeType::Value]);
            s.destroy_object(h)?;
            match value?.pop() {
                Some(Attribute::Value(v)) => Ok(v),
                _ => Ok(Vec::new()),
            }
        };
        [
            derive(&e_pub).map_err(|e| e.to_string()),
            derive(&der).map_err(|e| e.to_string()),
            derive(&off_curve).map_err(|e| e.to_string()),
        ]
    })
    .await
    .expect("worker");
    let [raw, wrapped, off] = outcomes;
    assert_eq!(raw.as_deref(), Ok(&expected[..]), "raw SEC1 point");
    assert_eq!(wrapped.as_deref(), Ok(&expected[..]), "DER OCTET STRING");
    // SoftHSM 2.6 refuses a point off the curve too (CKR_GENERAL_ERROR); bkv never hands
    // it one (see `ecdh_refuses_bad_points_before_the_token`).
    assert!(off.is_err(), "SoftHSM derived from a point off the curve");
}

#[tokio::test]
async fn ecdh_refuses_bad_points_before_the_token() {
    let token = TestToken::new();
    let p = token.open().await;
    let (_, good) = ephemeral(3);
    // No share-receiving key yet.
    assert!(
        matches!(p.share_ecdh(&good).await, Err(HsmError::KeyMissing(_))),
        "ECDH without a key"
    );
    p.share_receive_key().await.expect("make");
    let before = object_count(&p).await;

    let mut off_curve = good;
    off_curve[64] ^= 1;
    let mut compressed = [0u8; 65];
    compressed[0] = 0x02 | (good[64] & 1);
    compressed[1..33].copy_from_slice(&good[1..33]);
    let infinity = [0u8; 65];
    let mut x_too_big = [0xffu8; 65];
    x_too_big[0] = 0x04;
    let mut hybrid = good;
    hybrid[0] = 0x06 | (good[64] & 1);
    for (what, point) in [
        ("off the curve", off_curve),
        ("compressed", compressed),
        ("point at infinity", infinity),
        ("coordinates >= p", x_too_big),
        ("hybrid encoding", hybrid),
    ] {
        let err = p.share_ecdh(&point).await.expect_err(what);
        assert!(
            matches!(err, HsmError::InvalidRequest(_)),
            "{what}: {err:?}"
        );
    }
    // Bytes from the wire of the wrong length never become a point.
    for len in [0usize, 33, 64, 66, 67] {
        let mut bytes = vec![0x04u8; len];
        if len > 1 {
            bytes[1..].copy_from_slice(&[good.as_slice(), &[0u8; 2]].concat()[1..len]);
        }
        let err = P256Point::parse(&bytes).expect_err("wrong length");
        assert!(err.to_string().contains("65 bytes"), "{len}: {err}");
    }
    // The DER-wrapped form is not what the API takes.
    let mut der = vec![0x04, 0x41];
    der.extend_from_slice(&good);
    assert!(P256Point::parse(&der).is_err());
    // The refusals left nothing behind and the key still works.
    assert_eq!(object_count(&p).await, before);
    p.share_ecdh(&good).await.expect("a good point still works");
}

#[tokio::test]
async fn ecdh_leaves_no_object_behind() {
    let token = TestToken::new();
    let mut cfg = token.config();
    // One worker: the ECDH session objects and the count live in the same session.
    cfg.workers = 1;
    let p = Partition::open(cfg).await.expect("open");
    p.share_receive_key().await.expect("make");
    let before = object_count(&p).await;
    for i in 0..20 {
        p.share_ecdh(&ephemeral(i).1).await.expect("ecdh");
    }
    assert_eq!(object_count(&p).await, before, "no derived object survives");
    assert_eq!(labelled(&p, SHARE_ECDH_SECRET_LABEL).await, 0);
    // Control: the count does see a session object left in this session.
    let handle = testing::with_session(&p, |s| {
        s.create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(false),
            Attribute::Label(SHARE_ECDH_SECRET_LABEL.into()),
            Attribute::Value(vec![0; 32]),
        ])
        .expect("session object")
    })
    .await
    .expect("worker");
    assert_eq!(object_count(&p).await, before + 1, "control: counted");
    assert_eq!(
        labelled(&p, SHARE_ECDH_SECRET_LABEL).await,
        1,
        "control: found"
    );
    testing::with_session(&p, move |s| s.destroy_object(handle).expect("destroy"))
        .await
        .expect("worker");
    // Also through a pool of several workers, seen from each of them.
    let q = token.open().await;
    for i in 0..20 {
        q.share_ecdh(&ephemeral(i).1).await.expect("ecdh");
    }
    for _ in 0..8 {
        assert_eq!(labelled(&q, SHARE_ECDH_SECRET_LABEL).await, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_ecdh_through_the_worker_pool() {
    const TASKS: u64 = 32;
    const OPS: u64 = 8;
    let token = TestToken::new();
    let p = token.open().await;
    let key = p.share_receive_key().await.expect("make");
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (p, key) = (p.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..OPS {
                let (e, e_pub) = ephemeral(t * OPS + i);
                let z = p.share_ecdh(&e_pub).await.expect("ecdh");
                assert_eq!(*z, software_z(&e, &key), "task {t} op {i}");
            }
            OPS
        }));
    }
    let done = tokio::time::timeout(Duration::from_secs(120), async {
        let mut n = 0;
        for t in tasks {
            n += t.await.expect("task panicked");
        }
        n
    })
    .await
    .expect("finished in time");
    assert_eq!(done, TASKS * OPS);
    assert_eq!(labelled(&p, SHARE_ECDH_SECRET_LABEL).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shares_seal_and_unseal_under_the_share_key() {
    let token = TestToken::new();
    let p = token.open().await;
    // The key is made on first use, once, also when many callers come at once.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            let aad = format!("account {i}");
            let blob = p.seal_share(aad.as_bytes(), &[i as u8; 32]).await?;
            let opened = p.unseal_share(aad.as_bytes(), &blob).await?;
            assert_eq!(opened.as_slice(), &[i as u8; 32]);
            Ok::<Vec<u8>, SealError>(blob)
        }));
    }
    let mut blobs = Vec::new();
    for t in tasks {
        blobs.push(t.await.expect("task").expect("seal and unseal"));
    }
    assert_eq!(
        labelled(&p, SHARE_SEAL_KEY_LABEL).await,
        1,
        "one share-sealing key"
    );
    let key_id = &blobs[0][4..12];
    for blob in &blobs {
        assert_eq!(blob.len(), SEALED_HEADER_LEN + 32 + SEALED_TAG_LEN);
        assert_eq!(blob[3], SealPurpose::OprfShare as u8, "purpose byte");
        assert_eq!(&blob[4..12], key_id, "every blob names the one share key");
    }
    for len in [0usize, 1, 32, 100, 4096] {
        let plain: Vec<u8> = (0..len).map(|i| (i * 13) as u8).collect();
        let blob = p.seal_share(b"aad", &plain).await.expect("seal");
        let opened = p.unseal_share(b"aad", &blob).await.expect("unseal");
        assert_eq!(opened.as_slice(), plain.as_slice());
    }
    // Blobs outlive the partition: the key is a token object.
    drop(p);
    let p = token.open().await;
    let opened = p
        .unseal_share(b"account 3", &blobs[3])
        .await
        .expect("after reopen");
    assert_eq!(opened.as_slice(), &[3u8; 32]);

    // Each fault has its error; a tampered blob is rejected in the token.
    let blob = &blobs[5];
    assert_eq!(
        p.unseal_share(b"account 6", blob).await,
        Err(SealError::WrongAad)
    );
    let mut flipped = blob.clone();
    flipped[SEALED_HEADER_LEN] ^= 0x01;
    assert_eq!(
        p.unseal_share(b"account 5", &flipped).await,
        Err(SealError::Rejected)
    );
    let mut bad_tag = blob.clone();
    let last = bad_tag.len() - 1;
    bad_tag[last] ^= 0x80;
    assert_eq!(
        p.unseal_share(b"account 5", &bad_tag).await,
        Err(SealError::Rejected)
    );
    let mut bad_iv = blob.clone();
    bad_iv[25] ^= 0x01;
    assert_eq!(
        p.unseal_share(b"account 5", &bad_iv).await,
        Err(SealError::Rejected)
    );
    assert!(matches!(
        p.unseal_share(b"account 5", &blob[..SEALED_HEADER_LEN + 4])
            .await,
        Err(SealError::Malformed(_))
    ));
    // And the key still opens the untouched blob afterwards.
    let opened = p.unseal_share(b"account 5", blob).await.expect("unseal");
    assert_eq!(opened.as_slice(), &[5u8; 32]);
    // Two seals of the same share differ (random IV).
    assert_ne!(
        p.seal_share(b"a", b"same").await.expect("seal"),
        p.seal_share(b"a", b"same").await.expect("seal")
    );
}

#[tokio::test]
async fn cluster_key_and_share_key_never_open_each_others_blobs() {
    let token = TestToken::new();
    let p = token.open().await;
    let cluster = p.generate_cluster_key().await.expect("cluster key");
    // No share key yet: nothing opens as a share.
    let share_elsewhere = {
        let other = TestToken::new();
        other
            .open()
            .await
            .seal_share(b"aad", b"other node's share")
            .await
            .expect("seal")
    };
    assert_eq!(
        p.unseal_share(b"aad", &share_elsewhere).await,
        Err(SealError::UnknownKey)
    );

    let share = p.seal_share(b"aad", b"a share").await.expect("seal share");
    let record = p
        .seal(SealPurpose::Record, b"aad", b"a record")
        .await
        .expect("seal");
    let share_key_id: [u8; 8] = share[4..12].try_into().expect("8 bytes");
    assert_ne!(
        share_key_id, cluster.key_id,
        "the share key is not the cluster key"
    );

    // The cluster key neither seals nor opens the share purpose.
    assert_eq!(
        p.seal(SealPurpose::OprfShare, b"aad", b"x").await,
        Err(SealError::WrongPurpose)
    );
    assert_eq!(
        p.unseal(SealPurpose::OprfShare, b"aad", &share).await,
        Err(SealError::WrongPurpose)
    );
    // A share blob relabelled as a record: names the share key, which unseal does not use.
    let mut as_record = share.clone();
    as_record[3] = SealPurpose::Record as u8;
    assert_eq!(
        p.unseal(SealPurpose::Record, b"aad", &as_record).await,
        Err(SealError::UnknownKey)
    );
    // ... and with the cluster key's id forged in: GCM under the cluster key refuses it.
    as_record[4..12].copy_from_slice(&cluster.key_id);
    assert_eq!(
        p.unseal(SealPurpose::Record, b"aad", &as_record).await,
        Err(SealError::Rejected)
    );

    // The reverse: a cluster-key blob is no share.
    assert_eq!(
        p.unseal_share(b"aad", &record).await,
        Err(SealError::WrongPurpose)
    );
    let mut as_share = record.clone();
    as_share[3] = SealPurpose::OprfShare as u8;
    assert_eq!(
        p.unseal_share(b"aad", &as_share).await,
        Err(SealError::UnknownKey)
    );
    as_share[4..12].copy_from_slice(&share_key_id);
    assert_eq!(
        p.unseal_share(b"aad", &as_share).await,
        Err(SealError::Rejected)
    );

    // Another node's share blob, even with this node's key id forged in, stays shut.
    assert_eq!(
        p.unseal_share(b"aad", &share_elsewhere).await,
        Err(SealError::UnknownKey)
    );
    let mut forged = share_elsewhere.clone();
    forged[4..12].copy_from_slice(&share_key_id);
    assert_eq!(
        p.unseal_share(b"aad", &forged).await,
        Err(SealError::Rejected)
    );

    // Both keys still work for their own blobs.
    assert_eq!(
        p.unseal_share(b"aad", &share)
            .await
            .expect("share")
            .as_slice(),
        b"a share"
    );
    assert_eq!(
        p.unseal(SealPurpose::Record, b"aad", &record)
            .await
            .expect("record")
            .as_slice(),
        b"a record"
    );
}
