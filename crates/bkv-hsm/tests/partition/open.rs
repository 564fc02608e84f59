//! Opening a partition: wrong PIN, unknown label, PIN sources.

use bkv_hsm::testing::TestToken;
use bkv_hsm::{HsmConfig, HsmError, Partition, Pin};
use secrecy::SecretString;

#[tokio::test]
async fn wrong_pin_is_wrong_pin() {
    let token = TestToken::new();
    let mut cfg = token.config();
    cfg.user_pin = Pin::from_secret(SecretString::from("definitely-not-the-pin".to_string()));
    let err = Partition::open(cfg).await.expect_err("wrong PIN");
    assert!(matches!(err, HsmError::WrongPin), "{err:?}");
    assert!(!err.to_string().contains("definitely-not-the-pin"));
    // The right PIN still works afterwards.
    token.open().await;
}

#[tokio::test]
async fn unknown_label_is_token_not_found() {
    let token = TestToken::new(); // makes sure SoftHSM points at the test dir
    let mut cfg = token.config();
    cfg.token_label = format!("{}-nope", token.label());
    let err = Partition::open(cfg).await.expect_err("unknown label");
    assert!(
        matches!(&err, HsmError::TokenNotFound { label } if label.ends_with("-nope")),
        "{err:?}"
    );
}

#[tokio::test]
async fn bad_module_is_module_load() {
    let token = TestToken::new();
    let mut cfg: HsmConfig = token.config();
    cfg.module = "/nonexistent/libpkcs11.so".into();
    let err = Partition::open(cfg).await.expect_err("no module");
    assert!(matches!(err, HsmError::ModuleLoad { .. }), "{err:?}");
}

#[tokio::test]
async fn debug_output_hides_pins() {
    let token = TestToken::new();
    let cfg = token.config();
    let shown = format!("{cfg:?}");
    for pin in token.pin_texts() {
        assert!(!shown.contains(&pin), "PIN in Debug output");
    }
    assert!(shown.contains("<redacted>"));
    let p = token.open().await;
    let shown = format!("{p:?}");
    assert!(shown.contains(token.label()));
}
