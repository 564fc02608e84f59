//! Sealing: round trips, and each way a blob can be wrong failing with its own error.

use bkv_core::seal::Aad;
use bkv_core::{ClusterId, SealError, SealPurpose, Sealer};
use bkv_hsm::testing::TestToken;
use bkv_hsm::{Partition, SEALED_HEADER_LEN, SEALED_TAG_LEN};

async fn keyed() -> (TestToken, Partition) {
    let token = TestToken::new();
    let p = token.open().await;
    p.generate_cluster_key().await.expect("generate");
    (token, p)
}

#[tokio::test]
async fn seal_round_trip_and_blob_shape() {
    let (_t, p) = keyed().await;
    let info = p.cluster_key().await.expect("lookup").expect("present");
    let aad = Aad::server_setup(&ClusterId::new([1; 16]));
    for len in [0usize, 1, 64, 1024, 4096] {
        let plain: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let blob = p
            .seal(SealPurpose::Record, &aad, &plain)
            .await
            .expect("seal");
        assert_eq!(blob.len(), SEALED_HEADER_LEN + len + SEALED_TAG_LEN);
        assert_eq!(&blob[4..12], &info.key_id, "blob carries the key id");
        let opened = p
            .unseal(SealPurpose::Record, &aad, &blob)
            .await
            .expect("unseal");
        assert_eq!(opened.as_slice(), plain.as_slice());
    }
    // Two seals of the same input differ (random IV).
    let a = p
        .seal(SealPurpose::Test, b"x", b"same")
        .await
        .expect("seal");
    let b = p
        .seal(SealPurpose::Test, b"x", b"same")
        .await
        .expect("seal");
    assert_ne!(a, b);
    // Through the bkv-core trait as well.
    let blob = Sealer::seal(&p, SealPurpose::Ticket, b"t", b"via trait")
        .await
        .expect("seal");
    let opened = Sealer::unseal(&p, SealPurpose::Ticket, b"t", &blob)
        .await
        .expect("unseal");
    assert_eq!(opened.as_slice(), b"via trait");
}

#[tokio::test]
async fn each_fault_has_its_own_error() {
    let (t, p) = keyed().await;
    let blob = p
        .seal(SealPurpose::Record, b"aad", b"secret")
        .await
        .expect("seal");

    let wrong_aad = p.unseal(SealPurpose::Record, b"other", &blob).await;
    assert_eq!(wrong_aad, Err(SealError::WrongAad));

    let wrong_purpose = p.unseal(SealPurpose::Ticket, b"aad", &blob).await;
    assert_eq!(wrong_purpose, Err(SealError::WrongPurpose));

    let mut flipped = blob.clone();
    let last = flipped.len() - SEALED_TAG_LEN - 1; // a ciphertext byte
    flipped[last] ^= 0x01;
    let flipped_ct = p.unseal(SealPurpose::Record, b"aad", &flipped).await;
    assert_eq!(flipped_ct, Err(SealError::Rejected));

    let mut bad_tag = blob.clone();
    let end = bad_tag.len() - 1;
    bad_tag[end] ^= 0x80;
    assert_eq!(
        p.unseal(SealPurpose::Record, b"aad", &bad_tag).await,
        Err(SealError::Rejected)
    );

    // The IV is part of the header and authenticated.
    let mut bad_iv = blob.clone();
    bad_iv[25] ^= 0x01;
    assert_eq!(
        p.unseal(SealPurpose::Record, b"aad", &bad_iv).await,
        Err(SealError::Rejected)
    );

    let truncated = p
        .unseal(
            SealPurpose::Record,
            b"aad",
            &blob[..SEALED_HEADER_LEN + SEALED_TAG_LEN - 1],
        )
        .await;
    assert!(
        matches!(truncated, Err(SealError::Malformed(_))),
        "{truncated:?}"
    );
    let short_body = p
        .unseal(SealPurpose::Record, b"aad", &blob[..blob.len() - 1])
        .await;
    assert_eq!(short_body, Err(SealError::Rejected));

    let mut bad_magic = blob.clone();
    bad_magic[0] ^= 0xFF;
    assert!(matches!(
        p.unseal(SealPurpose::Record, b"aad", &bad_magic).await,
        Err(SealError::Malformed(_))
    ));
    let mut bad_version = blob.clone();
    bad_version[2] = 9;
    assert!(matches!(
        p.unseal(SealPurpose::Record, b"aad", &bad_version).await,
        Err(SealError::Malformed(_))
    ));

    // A rejected blob leaves the session usable: with one worker (one session), a good
    // blob opens right after a rejected one, and sealing works too.
    let mut cfg = t.config();
    cfg.workers = 1;
    let single = Partition::open(cfg).await.expect("open");
    for _ in 0..3 {
        assert_eq!(
            single.unseal(SealPurpose::Record, b"aad", &flipped).await,
            Err(SealError::Rejected)
        );
        let opened = single
            .unseal(SealPurpose::Record, b"aad", &blob)
            .await
            .expect("unseal");
        assert_eq!(opened.as_slice(), b"secret");
        single
            .seal(SealPurpose::Record, b"aad", b"more")
            .await
            .expect("seal");
    }
}

#[tokio::test]
async fn blob_under_another_cluster_key_fails() {
    let (_a, pa) = keyed().await;
    let (_b, pb) = keyed().await;
    let blob = pa
        .seal(SealPurpose::Record, b"aad", b"for A only")
        .await
        .expect("seal");
    assert_eq!(
        pb.unseal(SealPurpose::Record, b"aad", &blob).await,
        Err(SealError::UnknownKey)
    );
    // Forge B's key id into A's blob: the header check passes, GCM in the token does not.
    let b_id = pb
        .cluster_key()
        .await
        .expect("lookup")
        .expect("present")
        .key_id;
    let mut forged = blob.clone();
    forged[4..12].copy_from_slice(&b_id);
    assert_eq!(
        pb.unseal(SealPurpose::Record, b"aad", &forged).await,
        Err(SealError::Rejected)
    );
}

#[tokio::test]
async fn no_cluster_key_means_no_sealing() {
    let token = TestToken::new();
    let p = token.open().await;
    assert_eq!(p.cluster_key().await.expect("lookup"), None);
    assert_eq!(
        p.seal(SealPurpose::Record, b"aad", b"x").await,
        Err(SealError::NoClusterKey)
    );
    // A well-formed blob from elsewhere: header checks pass, then no key.
    let (_o, other) = keyed().await;
    let blob = other
        .seal(SealPurpose::Record, b"aad", b"x")
        .await
        .expect("seal");
    assert_eq!(
        p.unseal(SealPurpose::Record, b"aad", &blob).await,
        Err(SealError::NoClusterKey)
    );
}

#[tokio::test]
async fn cluster_key_is_generated_once_and_random_works() {
    let token = TestToken::new();
    let p = token.open().await;
    let info = p.generate_cluster_key().await.expect("generate");
    assert!(matches!(
        p.generate_cluster_key().await,
        Err(bkv_hsm::HsmError::ClusterKeyExists)
    ));
    // A second partition on the same token sees the same key.
    let q = token.open().await;
    assert_eq!(q.cluster_key().await.expect("lookup"), Some(info));
    let r1 = p.random(32).await.expect("random");
    let r2 = p.random(32).await.expect("random");
    assert_eq!(r1.len(), 32);
    assert_ne!(r1, r2);
}
