//! Canary: plaintext that went through the HSM (sealed blobs, OPRF key shares, ECDH results)
//! and the PINs never appear in any token file.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use bkv_core::SealPurpose;
use bkv_hsm::testing::{self, TestToken};
use cryptoki::object::{Attribute, ObjectClass};

const SEALS: usize = 200;

/// Every file under `dir`, recursively (bounded depth).
fn files(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    assert!(depth < 8, "token dir deeper than expected");
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, depth + 1, out);
        } else {
            out.push(path);
        }
    }
}

/// The encodings a careless writer might use.
fn encodings(secret: &[u8]) -> Vec<Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    vec![
        secret.to_vec(),
        hex::encode(secret).into_bytes(),
        hex::encode_upper(secret).into_bytes(),
        b64.encode(secret).into_bytes(),
        b64url.encode(secret).into_bytes(),
    ]
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.len() <= hay.len() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Asserts that no file of the token directory holds any of the named secrets, in any of
/// the [`encodings`].
pub(crate) fn assert_not_in_token_files(token: &TestToken, secrets: &[(String, Vec<u8>)]) {
    let mut all = Vec::new();
    files(&token.tokens_dir(), 0, &mut all);
    assert!(!all.is_empty(), "no token files to scan");
    let needles: Vec<(&str, Vec<u8>)> = secrets
        .iter()
        .flat_map(|(what, secret)| {
            encodings(secret)
                .into_iter()
                .map(move |n| (what.as_str(), n))
        })
        .collect();
    for file in &all {
        let bytes = std::fs::read(file).expect("read token file");
        for (what, needle) in &needles {
            assert!(
                !contains(&bytes, needle),
                "{what} found in {}",
                file.display()
            );
        }
    }
}

#[tokio::test]
async fn no_plaintext_or_pin_in_token_files() {
    let token = TestToken::new();
    let p = token.open().await;
    p.generate_cluster_key().await.expect("generate");
    p.enrollment_key().await.expect("enrollment key");
    let canary: [u8; 32] = p
        .random(32)
        .await
        .expect("random")
        .try_into()
        .expect("32 bytes");
    for i in 0..SEALS {
        let aad = format!("canary {i}");
        let blob = p
            .seal(SealPurpose::Test, aad.as_bytes(), &canary)
            .await
            .expect("seal");
        let opened = p
            .unseal(SealPurpose::Test, aad.as_bytes(), &blob)
            .await
            .expect("unseal");
        assert_eq!(opened.as_slice(), &canary);
    }
    drop(p);
    let mut secrets = vec![("canary".to_string(), canary.to_vec())];
    for pin in token.pin_texts() {
        secrets.push(("PIN".to_string(), pin.into_bytes()));
    }
    assert_not_in_token_files(&token, &secrets);
}

/// The node's own share keys leave nothing in clear either: neither a share sealed under the
/// share-sealing key nor an ECDH result Z (a session object, destroyed at once) appears in
/// any token file.
#[tokio::test]
async fn no_share_or_ecdh_secret_in_token_files() {
    let token = TestToken::new();
    let p = token.open().await;
    let receive = p.share_receive_key().await.expect("share-receiving key");
    let share: [u8; 32] = p
        .random(32)
        .await
        .expect("random")
        .try_into()
        .expect("32 bytes");
    for i in 0..SEALS {
        let aad = format!("share canary {i}");
        let blob = p
            .seal_share(aad.as_bytes(), &share)
            .await
            .expect("seal share");
        let opened = p.unseal_share(aad.as_bytes(), &blob).await.expect("unseal");
        assert_eq!(opened.as_slice(), &share);
    }
    let mut secrets = vec![("share".to_string(), share.to_vec())];
    for i in 0u8..8 {
        // Peer points: multiples of the share-receiving key's own point are as good as any.
        let scalar = p256::NonZeroScalar::from_repr([i + 2; 32].into())
            .into_option()
            .expect("small scalar");
        let own = p256::PublicKey::from_sec1_bytes(&receive.public).expect("point");
        let peer = p256::PublicKey::from_affine((own.to_projective() * *scalar).into())
            .expect("not the identity");
        let peer: [u8; 65] =
            p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&peer, false)
                .as_bytes()
                .try_into()
                .expect("65 bytes");
        let z = p.share_ecdh(&peer).await.expect("ecdh");
        secrets.push((format!("ECDH Z {i}"), z.to_vec()));
    }
    drop(p);
    assert_not_in_token_files(&token, &secrets);
}

/// Control: the scan does find plaintext where SoftHSM writes it, in a non-private object
/// (which is why every bkv key object is private).
#[tokio::test]
async fn scan_finds_what_softhsm_writes_in_clear() {
    let token = TestToken::new();
    let p = token.open().await;
    let control: Vec<u8> = p.random(32).await.expect("random");
    let value = control.clone();
    let handle = testing::with_session(&p, move |s| {
        s.create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Label(b"bkv-canary-control".to_vec()),
            Attribute::Value(value),
        ])
        .expect("create public data object")
    })
    .await
    .expect("worker");
    let mut all = Vec::new();
    files(&token.tokens_dir(), 0, &mut all);
    let found = all.iter().any(|f| {
        let bytes = std::fs::read(f).expect("read token file");
        contains(&bytes, &control)
    });
    testing::with_session(&p, move |s| s.destroy_object(handle).expect("destroy"))
        .await
        .expect("worker");
    assert!(found, "the scan missed a value SoftHSM stores in clear");
}
