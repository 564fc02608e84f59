//! Private data objects: written, read back, replaced, deleted; their values never appear in
//! the token files (SoftHSM encrypts private objects).

use bkv_hsm::Partition;
use bkv_hsm::testing::TestToken;

/// The value of the one data object `label`, if any.
async fn value(p: &Partition, label: &str) -> Option<Vec<u8>> {
    p.read_data(label).await.expect("read").map(|v| v.to_vec())
}

#[tokio::test]
async fn data_objects_round_trip_and_are_replaced_in_place() {
    let token = TestToken::new();
    let p = token.open().await;
    assert!(p.read_data("bkv-watermark").await.expect("read").is_none());
    p.write_data("bkv-watermark", b"first")
        .await
        .expect("write");
    assert_eq!(value(&p, "bkv-watermark").await, Some(b"first".to_vec()));
    p.write_data("bkv-watermark", b"second value")
        .await
        .expect("overwrite");
    assert_eq!(
        value(&p, "bkv-watermark").await,
        Some(b"second value".to_vec())
    );
    // Another label is another object.
    assert!(p.read_data("other").await.expect("read").is_none());
    p.delete_data("bkv-watermark").await.expect("delete");
    assert!(p.read_data("bkv-watermark").await.expect("read").is_none());
    assert!(
        p.write_data("big", &vec![0u8; 4097]).await.is_err(),
        "values are bounded"
    );
}

#[tokio::test]
async fn a_stop_inside_a_write_leaves_both_values_and_the_next_write_repairs() {
    let token = TestToken::new();
    let p = token.open().await;
    p.write_data("bkv-watermark", b"old").await.expect("write");
    // A stop between creating the new object and destroying the old one.
    p.write_data_without_replacing("bkv-watermark", b"new")
        .await
        .expect("create");
    assert!(
        p.read_data("bkv-watermark").await.is_err(),
        "read_data refuses to pick one"
    );
    let mut all: Vec<Vec<u8>> = p
        .read_data_all("bkv-watermark")
        .await
        .expect("read all")
        .iter()
        .map(|v| v.to_vec())
        .collect();
    all.sort();
    assert_eq!(all, [b"new".to_vec(), b"old".to_vec()]);
    p.write_data("bkv-watermark", b"newer")
        .await
        .expect("write");
    assert_eq!(value(&p, "bkv-watermark").await, Some(b"newer".to_vec()));
    assert!(p.read_data_all("other").await.expect("read").is_empty());
}

#[tokio::test]
async fn data_object_values_are_not_in_the_token_files() {
    let token = TestToken::new();
    let p = token.open().await;
    let canary: Vec<u8> = p.random(24).await.expect("random");
    p.write_data("canary", &canary).await.expect("write");
    drop(p);
    super::canary::assert_not_in_token_files(&token, &[("data object value".into(), canary)]);
}
