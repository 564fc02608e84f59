//! Where the SDK gets the account token for a call: a fixed string, or a callback that
//! can refresh it.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret as _, SecretString};

type TokenFn = dyn Fn() -> Result<SecretString, String> + Send + Sync;

/// The account token the SDK sends as `authorization: Bearer <jwt>`. Asked once per call
/// (retries of that call reuse it), so a callback can hand out fresh tokens. `Debug` shows
/// nothing of the token.
///
/// ```
/// use bkv_client::{SecretString, TokenSource};
/// let fixed = TokenSource::fixed("eyJhbGciOiJFZERTQSJ9.e30.c2ln");
/// let refreshing = TokenSource::from_fn(|| Ok(SecretString::from(String::from("..."))));
/// # let _ = (fixed, refreshing);
/// ```
#[derive(Clone)]
pub struct TokenSource(Arc<TokenFn>);

impl TokenSource {
    /// Always the same token.
    pub fn fixed(token: impl Into<String>) -> Self {
        let token = SecretString::from(token.into());
        Self(Arc::new(move || Ok(token.clone())))
    }

    /// A token from `f` for each call; `f` returns an error text if it cannot give one.
    pub fn from_fn(f: impl Fn() -> Result<SecretString, String> + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// A token for the next call.
    pub fn token(&self) -> Result<SecretString, String> {
        (self.0)()
    }
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSource(<redacted>)")
    }
}

/// The `sub` claim of a compact JWT, read without verifying anything (the vault verifies):
/// only to catch a token for another account before the client binds its OPAQUE
/// messages to the wrong one. `None` if the token is not a JWT with a string `sub`.
pub fn unverified_subject(token: &SecretString) -> Option<String> {
    unverified_claim(token, "sub")
}

/// The `aud` claim of a compact JWT (the cluster name), read without verifying anything:
/// the name the client binds its shares and reset signatures to. The vault refuses a token
/// whose audience is not its name, so a wrong one fails there.
pub fn unverified_audience(token: &SecretString) -> Option<String> {
    unverified_claim(token, "aud")
}

fn unverified_claim(token: &SecretString, claim: &str) -> Option<String> {
    let claims = token.expose_secret().split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(claims).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get(claim)?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_and_callback_sources_hide_the_token() {
        let s = TokenSource::fixed("secret-token");
        assert_eq!(
            s.token().map(|t| t.expose_secret().to_string()).ok(),
            Some("secret-token".to_string())
        );
        assert!(!format!("{s:?}").contains("secret"));
        let counter = std::sync::atomic::AtomicU32::new(0);
        let f = TokenSource::from_fn(move || {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n == 0 {
                Ok(SecretString::from(format!("t{n}")))
            } else {
                Err("issuer offline".into())
            }
        });
        assert_eq!(
            f.token().map(|t| t.expose_secret().to_string()).ok(),
            Some("t0".to_string())
        );
        assert_eq!(f.token().err().as_deref(), Some("issuer offline"));
    }

    #[test]
    fn subject_is_read_from_the_claims_only_when_they_parse() {
        let claims = URL_SAFE_NO_PAD.encode(br#"{"sub":"alice","aud":"x"}"#);
        let jwt = SecretString::from(format!("e30.{claims}.sig"));
        assert_eq!(unverified_subject(&jwt).as_deref(), Some("alice"));
        for bad in ["", "abc", "e30.!!!.x", "e30.e30.x"] {
            assert_eq!(
                unverified_subject(&SecretString::from(bad.to_string())),
                None
            );
        }
    }
}
