//! Account tokens from the dev issuer key: what `bkv token issue`, client commands in dev
//! set-ups and tests use. Real deployments get tokens from their own account system.

use bkv_core::ids::AccountId;
use bkv_core::token::{self, Claims};
use ed25519_dalek::SigningKey;

/// A token for `account` signed by `key` as `issuer`, for the cluster named `audience`,
/// valid from now for `ttl_secs`.
pub fn issue_token(
    key: &SigningKey,
    issuer: &str,
    audience: &str,
    account: &AccountId,
    ttl_secs: u64,
) -> Result<String, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| "the system clock is before 1970".to_string())?
        .as_secs();
    Ok(token::issue(
        key,
        &Claims {
            iss: issuer.to_string(),
            sub: account.as_str().to_string(),
            aud: audience.to_string(),
            iat: now,
            exp: now.saturating_add(ttl_secs),
            nbf: None,
        },
    ))
}
