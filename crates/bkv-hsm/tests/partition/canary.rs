//! Canary: plaintext that went through the HSM, and the PINs, never appear in any token file.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use bkv_core::SealPurpose;
use bkv_hsm::testing::{self, TestToken};
use cryptoki::object::{Attribute, ObjectClass};

const SEALS: usize = 200;

/// Every file under `dir`, recursively (bounded depth).
pub(crate) fn files(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
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
pub(crate) fn encodings(secret: &[u8]) -> Vec<Vec<u8>> {
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

pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.len() <= hay.len() && hay.windows(needle.len()).any(|w| w == needle)
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

    let mut all = Vec::new();
    files(&token.tokens_dir(), 0, &mut all);
    assert!(!all.is_empty(), "no token files to scan");
    let mut needles: Vec<(String, Vec<u8>)> = encodings(&canary)
        .into_iter()
        .map(|n| ("canary".to_string(), n))
        .collect();
    for pin in token.pin_texts() {
        for n in encodings(pin.as_bytes()) {
            needles.push(("PIN".to_string(), n));
        }
    }
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
