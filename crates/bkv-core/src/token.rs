//! Account tokens: compact JWTs signed with Ed25519 (`alg: EdDSA`) by an account issuer the
//! cluster trusts (docs/DESIGN.md §4.2). `sub` is the account, `aud` the cluster name, `exp`
//! at most an hour away.
//!
//! Verification is sans-I/O (the caller passes the time) and strict: the only algorithm
//! accepted is EdDSA, the claims must name a known issuer, the signature is checked with
//! `verify_strict` before any claim's value is trusted, and every claim is parsed into a
//! typed value. A token that lacks a claim, or whose claim has the wrong JSON type, is
//! refused naming that claim ([`TokenError::MissingClaim`], [`TokenError::InvalidClaim`]).
//!
//! The rules, as docs/PROTOCOL.md §1.2 states them for issuers in any language:
//! - three base64url parts without padding, at most [`MAX_TOKEN_LEN`] bytes in all;
//! - header: a JSON object with `alg` = `"EdDSA"` (required), `typ` optional and then
//!   `"JWT"` (any case), `kid` optional and ignored; other fields ignored;
//! - claims: a JSON object with `iss`, `sub`, `aud` strings, `iat`, `exp` and optional `nbf`
//!   non-negative integers (Unix seconds); other claims ignored;
//! - the signature: 64 bytes, Ed25519 over the ASCII bytes `header64 || "." || claims64`,
//!   verified strictly with the key of the issuer named by `iss`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::ids::{AccountId, IdError};

/// Largest token accepted, in bytes (a real one is about 300).
pub const MAX_TOKEN_LEN: usize = 4096;
/// Default largest lifetime: `exp` may be at most this far in the future.
pub const MAX_LIFETIME_SECS: u64 = 3600;

/// Why a token was refused. The message names the rule broken, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("token is longer than {MAX_TOKEN_LEN} bytes")]
    TooLarge,
    /// Not three base64url parts, or a part does not decode.
    #[error("token is not a compact JWT: {0}")]
    Malformed(&'static str),
    /// A required claim (or the header's `alg`) is absent.
    #[error("token has no `{0}` claim")]
    MissingClaim(&'static str),
    /// A claim (or header field) is present with the wrong JSON type or value.
    #[error("token claim `{claim}` is invalid: {why}")]
    InvalidClaim {
        /// The claim or header field.
        claim: &'static str,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The header asks for an algorithm other than EdDSA (including `none`).
    #[error("token algorithm is not EdDSA")]
    AlgorithmNotAllowed,
    /// The issuer is not trusted by this cluster.
    #[error("token issuer is not trusted")]
    UnknownIssuer,
    /// The signature does not verify.
    #[error("token signature does not verify")]
    BadSignature,
    /// The token is for another cluster.
    #[error("token audience is not this cluster")]
    WrongAudience,
    /// `exp` is in the past.
    #[error("token has expired")]
    Expired,
    /// `exp` is further away than the lifetime allowed.
    #[error("token lifetime exceeds {0} seconds")]
    LifetimeTooLong(u64),
    /// `iat` or `nbf` lies in the future.
    #[error("token is not valid yet")]
    NotYetValid,
    /// `sub` is not a valid account id.
    #[error("token subject is not a valid account id: {0}")]
    BadSubject(IdError),
}

/// The header of an account token, as [`issue`] writes it.
#[derive(Debug, Clone, Serialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
}

/// The claims of an account token. (Deserializing gives the claims of a token without any
/// check: for tools and tests; verification parses each claim itself.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer name.
    pub iss: String,
    /// The account id.
    pub sub: String,
    /// The cluster name.
    pub aud: String,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Expires at (Unix seconds).
    pub exp: u64,
    /// Not before (Unix seconds), optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// A verified token: the account it grants and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The account the token acts for.
    pub account: AccountId,
    /// Issuer name.
    pub issuer: String,
    /// Expiry (Unix seconds).
    pub expires_at: u64,
}

/// Most tokens [`TrustedIssuers::verify_cached`] remembers.
pub const VERIFIED_CACHE_CAPACITY: usize = 16 * 1024;

/// The issuers a cluster trusts, by name.
#[derive(Clone, Default)]
pub struct TrustedIssuers {
    keys: BTreeMap<String, VerifyingKey>,
    max_lifetime_secs: u64,
    skew_secs: u64,
    verified: Arc<VerifiedCache>,
}

/// Tokens that verified, so that one presented again (a login's finish after its start, each
/// call of a client during its token's lifetime) costs a hash and a lookup instead of a
/// signature check (about 50 us). Keyed by SHA-256 of the audience and the token, so the
/// cache holds no token; only successes are kept, and expiry is checked again on every use.
/// Bounded: when full, expired entries go, and if that frees nothing, all go.
struct VerifiedCache {
    capacity: usize,
    map: Mutex<HashMap<[u8; 32], Cached>>,
}

impl Default for VerifiedCache {
    fn default() -> Self {
        Self::with_capacity(VERIFIED_CACHE_CAPACITY)
    }
}

/// A verified token and the start of its validity, for checking the time rules again.
#[derive(Clone)]
struct Cached {
    verified: VerifiedToken,
    not_before: u64,
}

impl VerifiedCache {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity,
            map: Mutex::default(),
        }
    }

    fn key(token: &str, audience: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update((audience.len() as u64).to_be_bytes());
        h.update(audience.as_bytes());
        h.update(token.as_bytes());
        h.finalize().into()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Cached>> {
        // Only whole entries are inserted or removed: a panic elsewhere leaves it usable.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, key: &[u8; 32]) -> Option<Cached> {
        self.lock().get(key).cloned()
    }

    fn put(&self, key: [u8; 32], cached: Cached, now: u64) {
        let mut map = self.lock();
        if map.len() >= self.capacity {
            map.retain(|_, c| c.verified.expires_at > now);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(key, cached);
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

impl fmt::Debug for TrustedIssuers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedIssuers")
            .field("issuers", &self.keys.keys().collect::<Vec<_>>())
            .field("max_lifetime_secs", &self.max_lifetime_secs)
            .field("skew_secs", &self.skew_secs)
            .finish()
    }
}

impl TrustedIssuers {
    /// No issuer yet; lifetime at most `max_lifetime_secs`, clocks may differ by `skew_secs`.
    pub fn new(max_lifetime_secs: u64, skew_secs: u64) -> Self {
        Self {
            keys: BTreeMap::new(),
            max_lifetime_secs,
            skew_secs,
            verified: Arc::default(),
        }
    }

    /// Trusts an issuer's public key under its name. A key replaced under a name no longer
    /// vouches for tokens it signed, so this starts a new cache of verified tokens (clones
    /// made before keep theirs).
    pub fn insert(&mut self, name: impl Into<String>, key: VerifyingKey) {
        self.keys.insert(name.into(), key);
        self.verified = Arc::new(VerifiedCache::with_capacity(self.verified.capacity));
    }

    /// How many issuers are trusted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no issuer is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// [`TrustedIssuers::verify`], remembering tokens that verified: for a token seen before
    /// with the same audience only the rules that depend on the time are checked again
    /// (expiry, lifetime, not-before). The others depend on the token, the audience and the
    /// issuers' keys alone, which a cache entry cannot outlive (see [`TrustedIssuers::insert`]),
    /// so the answer is the one a full verification would give.
    pub fn verify_cached(
        &self,
        token: &str,
        audience: &str,
        now: u64,
    ) -> Result<VerifiedToken, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLarge);
        }
        let key = VerifiedCache::key(token, audience);
        if let Some(hit) = self.verified.get(&key) {
            self.check_times(hit.verified.expires_at, hit.not_before, now)?;
            return Ok(hit.verified);
        }
        let (verified, not_before) = self.verify_full(token, audience, now)?;
        let cached = Cached {
            verified: verified.clone(),
            not_before,
        };
        self.verified.put(key, cached, now);
        Ok(verified)
    }

    /// How many verified tokens [`TrustedIssuers::verify_cached`] holds.
    pub fn cached_tokens(&self) -> usize {
        self.verified.len()
    }

    /// Verifies `token` for the cluster named `audience` at time `now` (Unix seconds).
    pub fn verify(
        &self,
        token: &str,
        audience: &str,
        now: u64,
    ) -> Result<VerifiedToken, TokenError> {
        self.verify_full(token, audience, now).map(|(v, _)| v)
    }

    /// [`TrustedIssuers::verify`], also giving the start of the token's validity.
    fn verify_full(
        &self,
        token: &str,
        audience: &str,
        now: u64,
    ) -> Result<(VerifiedToken, u64), TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(h64), Some(c64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("expected three dot-separated parts"));
        };
        let header = decode_object(h64, "header")?;
        match header.get("alg") {
            None => return Err(TokenError::MissingClaim("alg")),
            Some(serde_json::Value::String(alg)) if alg == "EdDSA" => {}
            Some(serde_json::Value::String(_)) => return Err(TokenError::AlgorithmNotAllowed),
            Some(_) => return Err(invalid("alg", "not a string")),
        }
        match header.get("typ") {
            None => {}
            Some(serde_json::Value::String(t)) if t.eq_ignore_ascii_case("JWT") => {}
            Some(_) => return Err(invalid("typ", "not \"JWT\"")),
        }
        let sig_bytes = B64
            .decode(s64)
            .map_err(|_| TokenError::Malformed("signature is not base64url"))?;
        let signature = Signature::from_slice(&sig_bytes)
            .map_err(|_| TokenError::Malformed("signature length"))?;
        // The issuer is named in the (still unverified) claims; we only use it to pick the key,
        // and trust nothing else from them before the signature checks out.
        let unverified = Claims::parse(&decode_object(c64, "claims")?)?;
        let key = self
            .keys
            .get(&unverified.iss)
            .ok_or(TokenError::UnknownIssuer)?;
        let signed = &token[..h64.len() + 1 + c64.len()];
        key.verify_strict(signed.as_bytes(), &signature)
            .map_err(|_| TokenError::BadSignature)?;
        let claims = unverified;

        if claims.aud != audience {
            return Err(TokenError::WrongAudience);
        }
        let not_before = claims.nbf.unwrap_or(claims.iat).max(claims.iat);
        self.check_times(claims.exp, not_before, now)?;
        let account = AccountId::parse(&claims.sub).map_err(TokenError::BadSubject)?;
        let verified = VerifiedToken {
            account,
            issuer: claims.iss,
            expires_at: claims.exp,
        };
        Ok((verified, not_before))
    }

    /// The rules that depend on the time: not expired, not too long-lived, already valid.
    fn check_times(&self, exp: u64, not_before: u64, now: u64) -> Result<(), TokenError> {
        if exp <= now {
            return Err(TokenError::Expired);
        }
        if exp.saturating_sub(now) > self.max_lifetime_secs.saturating_add(self.skew_secs) {
            return Err(TokenError::LifetimeTooLong(self.max_lifetime_secs));
        }
        if not_before > now.saturating_add(self.skew_secs) {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }
}

type Object = serde_json::Map<String, serde_json::Value>;

/// A base64url part that holds a JSON object (`part` is "header" or "claims").
fn decode_object(encoded: &str, part: &'static str) -> Result<Object, TokenError> {
    let (not_base64, not_json) = match part {
        "header" => ("header is not base64url", "header is not a JSON object"),
        _ => ("claims are not base64url", "claims are not a JSON object"),
    };
    let bytes = B64
        .decode(encoded)
        .map_err(|_| TokenError::Malformed(not_base64))?;
    match serde_json::from_slice(&bytes) {
        Ok(serde_json::Value::Object(o)) => Ok(o),
        _ => Err(TokenError::Malformed(not_json)),
    }
}

fn invalid(claim: &'static str, why: &'static str) -> TokenError {
    TokenError::InvalidClaim { claim, why }
}

fn string_claim(claims: &Object, name: &'static str) -> Result<String, TokenError> {
    match claims.get(name) {
        None => Err(TokenError::MissingClaim(name)),
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(serde_json::Value::Array(_)) => Err(invalid(name, "an array, not a string")),
        Some(_) => Err(invalid(name, "not a string")),
    }
}

fn time_claim(claims: &Object, name: &'static str) -> Result<Option<u64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or(invalid(name, "not a non-negative integer of seconds")),
    }
}

impl Claims {
    /// The claims of a decoded claims object, each checked for presence and type.
    fn parse(claims: &Object) -> Result<Self, TokenError> {
        let required = |name| time_claim(claims, name)?.ok_or(TokenError::MissingClaim(name));
        Ok(Self {
            iss: string_claim(claims, "iss")?,
            sub: string_claim(claims, "sub")?,
            aud: string_claim(claims, "aud")?,
            iat: required("iat")?,
            exp: required("exp")?,
            nbf: time_claim(claims, "nbf")?,
        })
    }
}

/// Signs a token (for the dev issuer of `bkv token issue`, and for tests).
pub fn issue(key: &SigningKey, claims: &Claims) -> String {
    let header = Header {
        alg: "EdDSA".into(),
        typ: Some("JWT".into()),
        kid: None,
    };
    // Serializing these plain structs cannot fail.
    let h = B64.encode(serde_json::to_vec(&header).unwrap_or_default());
    let c = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signed = format!("{h}.{c}");
    let sig = key.sign(signed.as_bytes());
    format!("{signed}.{}", B64.encode(sig.to_bytes()))
}

#[cfg(test)]
mod tests;
