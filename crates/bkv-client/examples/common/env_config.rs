//! Client settings from the environment, shared by the SDK's examples (included with
//! `#[path]`): the endpoints (`BKV_ENDPOINTS`), the cluster CA (`BKV_CA_CERT`), the pinned
//! cluster identity (`BKV_IDENTITY_PUB`, needed to register), and an account token from
//! `BKV_TOKEN` or, in dev set-ups, issued on the fly with `BKV_ISSUER_KEY` for audience
//! `BKV_CLUSTER`. `cluster/local/bkv.env` sets them for the local cluster.

use std::time::Duration;

use bkv_client::{ClientConfig, SecretString, TokenSource};
use bkv_core::AccountId;

/// Whether the environment names a cluster at all.
#[allow(dead_code)] // not every example asks
pub fn cluster_configured() -> bool {
    std::env::var_os("BKV_ENDPOINTS").is_some()
}

/// The client configuration for `account`.
pub fn config(account: &AccountId) -> Result<ClientConfig, Box<dyn std::error::Error>> {
    let endpoints: Vec<String> = std::env::var("BKV_ENDPOINTS")
        .map_err(|_| "set BKV_ENDPOINTS (source cluster/local/bkv.env)")?
        .split(',')
        .map(str::to_string)
        .collect();
    let ca = std::fs::read(std::env::var("BKV_CA_CERT").map_err(|_| "set BKV_CA_CERT")?)?;
    let token = match std::env::var("BKV_TOKEN") {
        Ok(t) => TokenSource::fixed(t),
        Err(_) => {
            let key_path =
                std::env::var("BKV_ISSUER_KEY").map_err(|_| "set BKV_TOKEN or BKV_ISSUER_KEY")?;
            let key = bkv_devkit::pki::read_issuer_key(key_path.as_ref())?;
            let audience = std::env::var("BKV_CLUSTER").unwrap_or_else(|_| "bkv-local".into());
            let account = account.clone();
            TokenSource::from_fn(move || {
                bkv_devkit::issue_token(&key, "bkv-dev", &audience, &account, 600)
                    .map(SecretString::from)
            })
        }
    };
    let mut config = ClientConfig::new(endpoints, ca, token);
    config.identity_key = std::env::var_os("BKV_IDENTITY_PUB")
        .map(|p| bkv_devkit::pki::read_identity_public(p.as_ref()))
        .transpose()?;
    config.deadline = Duration::from_secs(30);
    Ok(config)
}
