//! Back up a chat history with a key kept in bkv, lose the phone, restore it.
//!
//! Run it against the local cluster:
//!
//! ```sh
//! cluster/up && . cluster/local/bkv.env
//! cargo run -p bkv-client --example backup_and_restore -- alice@example.com
//! ```
//!
//! It reads the cluster's settings from `BKV_ENDPOINTS`, `BKV_CA_CERT` and `BKV_IDENTITY_PUB`
//! (the cluster identity key it pins: registrations split their OPRF key only over a share
//! map that key signed), and an account token from `BKV_TOKEN` (or, in dev set-ups, issues
//! one with the key in `BKV_ISSUER_KEY` for audience `BKV_CLUSTER`): see
//! `common/env_config.rs`.
//! `examples/backup.rs` does the same journey with the SDK's streaming backup format.
//!
//! The app never sends the backup key or the password anywhere: the key is sealed on the
//! device under a key only the password can re-derive (OPAQUE's export key), and the vault
//! counts every password attempt.

#[path = "common/env_config.rs"]
mod env_config;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use bkv_client::{SecretString, VaultClient, VaultError};
use bkv_core::AccountId;
use env_config::config;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let account = AccountId::parse(
        &std::env::args()
            .nth(1)
            .unwrap_or_else(|| "example-user".into()),
    )?;
    let client = VaultClient::connect(config(&account)?).await?;
    let password = || SecretString::from("a long passphrase only the user knows");

    // 1. On the old phone: make a backup key, put it in the vault, encrypt the backup with it.
    let registered = client.register(&account, password(), Some(5)).await?;
    println!("registered {account}: version {}", registered.version);
    let backup = encrypt(registered.key.expose(), b"chat history: hello, world")?;

    // 2. On the new phone: a wrong guess is counted...
    match client
        .recover(&account, SecretString::from("not the passphrase"))
        .await
    {
        Err(VaultError::WrongPassword { guesses_remaining }) => {
            println!("wrong passphrase: {guesses_remaining} guesses left");
        }
        other => {
            return Err(format!(
                "a wrong passphrase must fail, got {:?}",
                other.map(|r| r.version)
            )
            .into());
        }
    }
    // ...and the right passphrase brings the key back and resets the counter.
    let recovered = client.recover(&account, password()).await?;
    let history = decrypt(recovered.key.expose(), &backup)?;
    println!(
        "restored version {}: {:?} ({} of {} guesses were left)",
        recovered.version,
        String::from_utf8_lossy(&history),
        recovered.guesses_remaining_before,
        recovered.guess_limit
    );
    assert_eq!(history, b"chat history: hello, world");

    let status = client.status().await?;
    println!(
        "status: {:?}, {} guesses used of {}",
        status.state, status.guesses_used, status.guess_limit
    );
    Ok(())
}

fn encrypt(key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| "key length")?;
    // One message per key in this example; real apps use a fresh nonce per message.
    let nonce = Nonce::try_from(&[0u8; 12][..]).map_err(|_| "nonce length")?;
    let mut out = nonce.to_vec();
    out.extend(cipher.encrypt(&nonce, plaintext).map_err(|_| "encrypt")?);
    Ok(out)
}

fn decrypt(key: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| "key length")?;
    let (nonce, body) = sealed.split_at_checked(12).ok_or("too short")?;
    let nonce = Nonce::try_from(nonce).map_err(|_| "nonce length")?;
    Ok(cipher.decrypt(&nonce, body).map_err(|_| "decrypt")?)
}
