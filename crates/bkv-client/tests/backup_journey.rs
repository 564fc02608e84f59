//! The backup journey through the SDK against the devkit's in-process vault (the vault's
//! own service over TLS on loopback): enable backup with a password, encrypt, restore the
//! key on a "new device" with a wrong then the right password, decrypt; a replaced key is
//! refused by the old backup's header. The recovery-key half needs no vault.

use bkv_client::backup::{
    self, BackupError, Protection, StreamError, enable_backup_with_recovery_code,
    restore_key_with_code,
};
use bkv_client::{ClientConfig, SecretString, TokenSource, VaultClient, VaultError};
use bkv_core::AccountId;
use bkv_devkit::testing::{FakeCluster, TEST_AUDIENCE, TEST_ISSUER, TestPki, serve};

fn plaintext() -> Vec<u8> {
    (0..200_000u32).map(|i| (i * 13 % 256) as u8).collect()
}

#[tokio::test]
async fn a_password_protected_backup_is_restored_on_a_new_device() {
    // Phase 1: a vault and a client for alice.
    let pki = TestPki::new();
    let issuer = pki.issuer_key();
    let cluster = FakeCluster::new(issuer.verifying_key()).await;
    let svc = cluster.node("a").service();
    let server = serve(pki.server_tls(), move |s| s.add_service(svc)).await;
    let alice = AccountId::parse("alice").unwrap();
    let account = alice.clone();
    let token = TokenSource::from_fn(move || {
        bkv_devkit::issue_token(&issuer, TEST_ISSUER, TEST_AUDIENCE, &account, 300)
            .map(SecretString::from)
    });
    let mut config = ClientConfig::new(vec![server.url()], pki.ca_pem(), token);
    config.identity_key = Some(cluster.identity_key());
    config.ksf = bkv_client::KsfParams::light();
    let client = VaultClient::connect(config).await.unwrap();
    let password = || SecretString::from("correct horse battery staple");

    // Phase 2: enable backup with a password, and encrypt.
    let enabled = client
        .enable_backup_with_password(&alice, password(), Some(3))
        .await
        .unwrap();
    let Protection::Password { version } = enabled.protection else {
        panic!("password protection expected")
    };
    let data = plaintext();
    let mut drive = Vec::new();
    backup::encrypt(&enabled.key, data.as_slice(), &mut drive).unwrap();
    drop(enabled);

    // Phase 3: a wrong password spends a guess and says how many are left.
    let e = client
        .restore_key_with_password(&alice, SecretString::from("Tr0ub4dor&3"))
        .await
        .unwrap_err();
    assert_eq!(e.guesses_remaining(), Some(2), "{e:?}");
    assert!(matches!(
        e,
        BackupError::Vault(VaultError::WrongPassword { .. })
    ));
    assert!(!format!("{e} {e:?}").contains("horse"));

    // Phase 4: the right password gives K back, and K the backup.
    let recovered = client
        .restore_key_with_password(&alice, password())
        .await
        .unwrap();
    assert_eq!(recovered.version, version);
    let mut restored = Vec::new();
    backup::decrypt(&recovered.key, drive.as_slice(), &mut restored).unwrap();
    assert_eq!(restored, data);

    // Phase 5: enabling backup again replaces K; the old backup's header refuses the new K.
    let again = client
        .enable_backup_with_password(&alice, password(), None)
        .await
        .unwrap();
    assert_eq!(
        backup::decrypt(&again.key, drive.as_slice(), std::io::sink()),
        Err(StreamError::WrongKey)
    );
    server.stop().await;
}

#[test]
fn a_recovery_key_protected_backup_is_restored_from_the_written_down_key() {
    let enabled = enable_backup_with_recovery_code();
    let Protection::RecoveryCode(code) = &enabled.protection else {
        panic!("recovery code protection expected")
    };
    let written_down = code.grouped().to_string();
    let data = plaintext();
    let mut drive = Vec::new();
    backup::encrypt(&enabled.key, data.as_slice(), &mut drive).unwrap();
    drop(enabled);

    let key = restore_key_with_code(&format!("  {}\n", written_down.replace(' ', "-"))).unwrap();
    let mut restored = Vec::new();
    backup::decrypt(&key, drive.as_slice(), &mut restored).unwrap();
    assert_eq!(restored, data);

    let e = restore_key_with_code(&written_down[..written_down.len() - 1]).unwrap_err();
    assert!(matches!(e, BackupError::RecoveryCode(_)), "{e:?}");
    assert!(!e.to_string().contains(&written_down[..9]));
}
