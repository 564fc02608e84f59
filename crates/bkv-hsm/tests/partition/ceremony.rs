//! The enrollment ceremony: token A's cluster key reaches token B wrapped under B's
//! trusted enrollment key, and no key ever becomes readable.

use bkv_core::SealPurpose;
use bkv_hsm::testing::{self, TestToken};
use bkv_hsm::{HsmError, Partition, Pin, WrappedClusterKey};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass};
use secrecy::SecretString;

/// What a test can learn about one key object through the API.
#[derive(Debug)]
struct KeyObject {
    class: ObjectClass,
    label: String,
    bools: Vec<(AttributeType, bool)>,
    /// Secret parts and whether the token would hand them out.
    secret_parts: Vec<(AttributeType, AttributeInfo)>,
}

impl KeyObject {
    fn flag(&self, t: AttributeType) -> Option<bool> {
        self.bools.iter().find(|(a, _)| *a == t).map(|(_, b)| *b)
    }
}

/// Every key object of the token, as the user sees it.
async fn key_objects(p: &Partition) -> Vec<KeyObject> {
    testing::with_session(p, |s| {
        let handles = s.find_objects(&[]).expect("find all");
        let mut out = Vec::new();
        for h in handles {
            let head = s
                .get_attributes(h, &[AttributeType::Class, AttributeType::Label])
                .expect("class");
            let (mut class, mut label) = (None, String::new());
            for a in head {
                match a {
                    Attribute::Class(c) => class = Some(c),
                    Attribute::Label(l) => label = String::from_utf8_lossy(&l).into_owned(),
                    _ => {}
                }
            }
            let class = class.expect("every object has a class");
            let flags = [
                AttributeType::Token,
                AttributeType::Private,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::WrapWithTrusted,
                AttributeType::Trusted,
                AttributeType::Wrap,
                AttributeType::Unwrap,
            ];
            let mut bools = Vec::new();
            for t in flags {
                for a in s.get_attributes(h, &[t]).expect("flag") {
                    let v = match a {
                        Attribute::Token(b)
                        | Attribute::Private(b)
                        | Attribute::Sensitive(b)
                        | Attribute::Extractable(b)
                        | Attribute::WrapWithTrusted(b)
                        | Attribute::Trusted(b)
                        | Attribute::Wrap(b)
                        | Attribute::Unwrap(b) => b,
                        _ => continue,
                    };
                    bools.push((t, v));
                }
            }
            let parts: &[AttributeType] = if class == ObjectClass::SECRET_KEY {
                &[AttributeType::Value]
            } else if class == ObjectClass::PRIVATE_KEY {
                &[
                    AttributeType::PrivateExponent,
                    AttributeType::Prime1,
                    AttributeType::Prime2,
                    AttributeType::Exponent1,
                    AttributeType::Exponent2,
                    AttributeType::Coefficient,
                ]
            } else {
                &[]
            };
            let infos = s.get_attribute_info(h, parts).expect("attribute info");
            let secret_parts = parts.iter().copied().zip(infos).collect();
            out.push(KeyObject {
                class,
                label,
                bools,
                secret_parts,
            });
        }
        out
    })
    .await
    .expect("worker")
}

/// Asserts the protections every key object of a token must have.
fn assert_protected(objects: &[KeyObject], token: &str) {
    assert!(!objects.is_empty(), "{token}: no objects");
    for o in objects {
        assert_eq!(o.flag(AttributeType::Token), Some(true), "{token} {o:?}");
        assert_eq!(o.flag(AttributeType::Private), Some(true), "{token} {o:?}");
        for (part, info) in &o.secret_parts {
            assert!(
                matches!(info, AttributeInfo::Sensitive),
                "{token}: {part:?} of {} is {info:?}",
                o.label
            );
        }
        if o.class == ObjectClass::SECRET_KEY {
            assert_eq!(o.label, bkv_hsm::CLUSTER_KEY_LABEL, "{token}");
            assert_eq!(
                o.flag(AttributeType::Sensitive),
                Some(true),
                "{token} {o:?}"
            );
            assert_eq!(
                o.flag(AttributeType::Extractable),
                Some(true),
                "{token} {o:?}"
            );
            assert_eq!(
                o.flag(AttributeType::WrapWithTrusted),
                Some(true),
                "{token} {o:?}"
            );
            assert_eq!(o.secret_parts.len(), 1);
        }
        if o.class == ObjectClass::PRIVATE_KEY {
            assert_eq!(
                o.flag(AttributeType::Sensitive),
                Some(true),
                "{token} {o:?}"
            );
            assert_eq!(
                o.flag(AttributeType::Extractable),
                Some(false),
                "{token} {o:?}"
            );
            assert_eq!(o.flag(AttributeType::Unwrap), Some(true), "{token} {o:?}");
        }
    }
}

#[tokio::test]
async fn cluster_key_travels_from_a_to_b() {
    // Phase 1: A makes the cluster key and seals something; B makes its enrollment key.
    let (ta, tb) = TestToken::pair();
    let (pa, pb) = (ta.open().await, tb.open().await);
    let a_info = pa.generate_cluster_key().await.expect("generate");
    let from_a = pa
        .seal(SealPurpose::Record, b"aad", b"sealed on A")
        .await
        .expect("seal");
    let eb = pb.enrollment_key().await.expect("enrollment key");
    assert_eq!(pb.enrollment_key().await.expect("again"), eb, "made once");
    assert_eq!(eb.fingerprint.len(), 64);

    // Phase 2: before trust, A knows no such peer.
    assert!(matches!(
        pa.wrap_cluster_key_for(&eb.fingerprint).await,
        Err(HsmError::UnknownPeer)
    ));

    // Phase 3: the SO of A trusts B's key; A wraps its cluster key for B.
    let fp = pa.trust_enrollment_key(&eb.spki_der).await.expect("trust");
    assert_eq!(fp, eb.fingerprint);
    assert_eq!(
        pa.trust_enrollment_key(&eb.spki_der)
            .await
            .expect("idempotent"),
        fp
    );
    // A's workers are logged in again after the SO step.
    let again = pa
        .unseal(SealPurpose::Record, b"aad", &from_a)
        .await
        .expect("A unseals");
    assert_eq!(again.as_slice(), b"sealed on A");
    let wrapped = pa.wrap_cluster_key_for(&fp).await.expect("wrap");
    assert_eq!(wrapped.key_id, a_info.key_id);
    assert_eq!(wrapped.key_check_value, a_info.key_check_value);

    // Phase 4: B unwraps; equal ids and KCVs; B opens A's blobs and A opens B's.
    let b_info = pb.unwrap_cluster_key(&wrapped).await.expect("unwrap");
    assert_eq!(b_info, a_info);
    assert_eq!(pb.cluster_key().await.expect("lookup"), Some(a_info));
    let opened = pb
        .unseal(SealPurpose::Record, b"aad", &from_a)
        .await
        .expect("B unseals");
    assert_eq!(opened.as_slice(), b"sealed on A");
    let from_b = pb
        .seal(SealPurpose::Ticket, b"t", b"sealed on B")
        .await
        .expect("seal");
    let opened = pa
        .unseal(SealPurpose::Ticket, b"t", &from_b)
        .await
        .expect("A unseals");
    assert_eq!(opened.as_slice(), b"sealed on B");
    // Unwrapping the same key again is a no-op.
    assert_eq!(
        pb.unwrap_cluster_key(&wrapped).await.expect("again"),
        a_info
    );

    // Phase 5: nothing is readable; the unwrapped key keeps the cluster key's protections.
    let a_objects = key_objects(&pa).await;
    let b_objects = key_objects(&pb).await;
    assert_protected(&a_objects, "A");
    assert_protected(&b_objects, "B");
    let peer = a_objects
        .iter()
        .find(|o| o.label == bkv_hsm::PEER_KEY_LABEL)
        .expect("peer key on A");
    assert_eq!(peer.flag(AttributeType::Trusted), Some(true));
    assert_eq!(peer.flag(AttributeType::Wrap), Some(true));
    assert_eq!(
        b_objects
            .iter()
            .filter(|o| o.class == ObjectClass::SECRET_KEY)
            .count(),
        1,
        "exactly one secret key on B"
    );

    // Phase 6: B's unwrapped key cannot be downgraded.
    for weaker in [
        Attribute::Sensitive(false),
        Attribute::WrapWithTrusted(false),
        Attribute::Private(false),
    ] {
        let shown = format!("{weaker:?}");
        let refused = testing::with_session(&pb, move |s| {
            let h = s
                .find_objects(&[Attribute::Label(bkv_hsm::CLUSTER_KEY_LABEL.into())])
                .expect("find")[0];
            s.update_attributes(h, &[weaker]).is_err()
        })
        .await
        .expect("worker");
        assert!(refused, "B's cluster key accepted {shown}");
    }

    // Phase 7: B's enrollment key carries CKA_UNWRAP_TEMPLATE and the token enforces it:
    // an unwrap that asks for a weaker key fails, one that complies works.
    let wrapped_bytes = wrapped.wrapped.clone();
    let (template_len, outcomes) = testing::with_session(&pb, move |s| {
        let private = s
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(bkv_hsm::ENROLLMENT_KEY_LABEL.into()),
            ])
            .expect("find")[0];
        let template_len = s
            .get_attribute_info(private, &[AttributeType::VendorDefined(0x4000_0212)])
            .expect("info");
        let oaep = Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
            MechanismType::SHA1,
            PkcsMgfType::MGF1_SHA1,
            PkcsOaepSource::empty(),
        ));
        let compliant = || {
            vec![
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(true),
                Attribute::WrapWithTrusted(true),
                Attribute::Label(b"phase-7".to_vec()),
            ]
        };
        let mut outcomes = Vec::new();
        for weaken in [
            None,
            Some(Attribute::Sensitive(false)),
            Some(Attribute::WrapWithTrusted(false)),
            Some(Attribute::Private(false)),
        ] {
            let mut t = compliant();
            if let Some(w) = &weaken {
                let kind = w.attribute_type();
                t.retain(|a| a.attribute_type() != kind);
                t.push(w.clone());
            }
            let result = s.unwrap_key(&oaep, private, &wrapped_bytes, &t);
            if let Ok(h) = result {
                s.destroy_object(h).expect("destroy");
            }
            let result = result.map(|_| ()).map_err(|e| match e {
                cryptoki::error::Error::Pkcs11(rv, _) => format!("{rv:?}"),
                other => other.to_string(),
            });
            outcomes.push((format!("{weaken:?}"), result));
        }
        (template_len, outcomes)
    })
    .await
    .expect("worker");
    assert!(
        matches!(template_len.as_slice(), [AttributeInfo::Available(n)] if *n > 0),
        "no CKA_UNWRAP_TEMPLATE: {template_len:?}"
    );
    assert!(
        outcomes[0].1.is_ok(),
        "compliant unwrap failed: {outcomes:?}"
    );
    for (weaken, outcome) in &outcomes[1..] {
        let err = outcome.as_ref().expect_err(weaken);
        assert_eq!(err, "TemplateInconsistent", "{weaken}");
    }
}

#[tokio::test]
async fn untrusted_or_unknown_peers_get_nothing() {
    let (ta, tc) = TestToken::pair();
    let (pa, pc) = (ta.open().await, tc.open().await);
    pa.generate_cluster_key().await.expect("generate");
    let ec = pc.enrollment_key().await.expect("enrollment key");

    // Imported without CKA_TRUSTED (as a user could): the token refuses to wrap.
    let fp = testing::import_untrusted_peer(&pa, &ec.spki_der)
        .await
        .expect("import");
    assert_eq!(fp, ec.fingerprint);
    let err = pa.wrap_cluster_key_for(&fp).await.expect_err("untrusted");
    assert!(matches!(err, HsmError::NotTrusted), "{err:?}");

    // Unknown or malformed fingerprints.
    let unknown = "00".repeat(32);
    assert!(matches!(
        pa.wrap_cluster_key_for(&unknown).await,
        Err(HsmError::UnknownPeer)
    ));
    assert!(matches!(
        pa.wrap_cluster_key_for("not hex").await,
        Err(HsmError::UnknownPeer)
    ));
    // Garbage public keys are refused before any SO login.
    assert!(matches!(
        pa.trust_enrollment_key(b"garbage").await,
        Err(HsmError::BadPublicKey(_))
    ));
}

#[tokio::test]
async fn unwrap_checks_kcv_and_refuses_a_second_key() {
    let (ta, tb) = TestToken::pair();
    let (pa, pb) = (ta.open().await, tb.open().await);
    pa.generate_cluster_key().await.expect("generate");
    let eb = pb.enrollment_key().await.expect("enrollment key");
    let fp = pa.trust_enrollment_key(&eb.spki_der).await.expect("trust");
    let wrapped = pa.wrap_cluster_key_for(&fp).await.expect("wrap");

    // A wrong check value: the unwrapped object is destroyed, B has no cluster key.
    let mut lying = wrapped.clone();
    lying.key_check_value[0] ^= 0xFF;
    let err = pb.unwrap_cluster_key(&lying).await.expect_err("kcv");
    assert!(matches!(err, HsmError::KcvMismatch), "{err:?}");
    assert_eq!(pb.cluster_key().await.expect("lookup"), None);
    let secret_keys = testing::with_session(&pb, |s| {
        s.find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY)])
            .expect("find")
            .len()
    })
    .await
    .expect("worker");
    assert_eq!(secret_keys, 0, "the mismatching key was destroyed");

    // Garbage wrapped bytes fail in the token.
    let garbage = WrappedClusterKey {
        wrapped: vec![0x42; 384],
        ..wrapped.clone()
    };
    assert!(pb.unwrap_cluster_key(&garbage).await.is_err());

    // The honest one works; then a different cluster key is refused.
    pb.unwrap_cluster_key(&wrapped).await.expect("unwrap");
    let mut other = wrapped.clone();
    other.key_id[0] ^= 1;
    assert!(matches!(
        pb.unwrap_cluster_key(&other).await,
        Err(HsmError::ClusterKeyExists)
    ));
}

#[tokio::test]
async fn trust_needs_the_so_pin() {
    let (ta, tb) = TestToken::pair();
    let mut cfg = ta.config();
    cfg.so_pin = None;
    let pa = Partition::open(cfg).await.expect("open");
    let pb = tb.open().await;
    let eb = pb.enrollment_key().await.expect("enrollment key");
    assert!(matches!(
        pa.trust_enrollment_key(&eb.spki_der).await,
        Err(HsmError::SoPinMissing)
    ));
    // The failed attempt did not disturb A.
    pa.generate_cluster_key().await.expect("generate");

    // A wrong SO PIN fails as WrongPin, and the user is logged back in afterwards.
    let mut cfg = ta.config();
    cfg.so_pin = Some(Pin::from_secret(SecretString::from(
        "wrong-so-pin".to_string(),
    )));
    let pa2 = Partition::open(cfg).await.expect("open");
    let err = pa2
        .trust_enrollment_key(&eb.spki_der)
        .await
        .expect_err("wrong SO PIN");
    assert!(matches!(err, HsmError::WrongPin), "{err:?}");
    let blob = pa
        .seal(SealPurpose::Test, b"a", b"still works")
        .await
        .expect("seal");
    let opened = pa2
        .unseal(SealPurpose::Test, b"a", &blob)
        .await
        .expect("unseal");
    assert_eq!(opened.as_slice(), b"still works");
    assert!(matches!(
        pa.wrap_cluster_key_for(&eb.fingerprint).await,
        Err(HsmError::UnknownPeer)
    ));
}
