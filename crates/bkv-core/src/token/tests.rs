//! Tests of account-token verification: every way a token can be wrong is refused with its
//! own error, and no input makes the verifier panic.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

use super::*;

const NOW: u64 = 1_800_000_000;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn issuers() -> TrustedIssuers {
    let mut t = TrustedIssuers::new(MAX_LIFETIME_SECS, 60);
    t.insert("dev", key(1).verifying_key());
    t
}

fn claims() -> Claims {
    Claims {
        iss: "dev".into(),
        sub: "alice".into(),
        aud: "bkv-test".into(),
        iat: NOW,
        exp: NOW + 600,
        nbf: None,
    }
}

fn verify(token: &str) -> Result<VerifiedToken, TokenError> {
    issuers().verify(token, "bkv-test", NOW)
}

#[test]
fn a_good_token_names_its_account() {
    let v = verify(&issue(&key(1), &claims())).expect("valid token");
    assert_eq!(v.account.as_str(), "alice");
    assert_eq!(v.expires_at, NOW + 600);
}

#[test]
fn each_broken_rule_has_its_own_error() {
    let k = key(1);
    let mut c = claims();
    c.aud = "other-cluster".into();
    assert_eq!(verify(&issue(&k, &c)), Err(TokenError::WrongAudience));

    let mut c = claims();
    c.exp = NOW;
    assert_eq!(verify(&issue(&k, &c)), Err(TokenError::Expired));

    let mut c = claims();
    c.exp = NOW + MAX_LIFETIME_SECS + 61;
    assert_eq!(
        verify(&issue(&k, &c)),
        Err(TokenError::LifetimeTooLong(MAX_LIFETIME_SECS))
    );

    let mut c = claims();
    c.iat = NOW + 120;
    c.exp = NOW + 600;
    assert_eq!(verify(&issue(&k, &c)), Err(TokenError::NotYetValid));

    let mut c = claims();
    c.sub = "bad\u{1}id".into();
    assert!(matches!(
        verify(&issue(&k, &c)),
        Err(TokenError::BadSubject(_))
    ));

    let mut c = claims();
    c.iss = "stranger".into();
    assert_eq!(verify(&issue(&k, &c)), Err(TokenError::UnknownIssuer));

    // Signed by a key that claims to be the trusted issuer.
    assert_eq!(
        verify(&issue(&key(2), &claims())),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn alg_none_and_unsigned_tokens_are_refused() {
    let c = B64.encode(serde_json::to_vec(&claims()).unwrap());
    let none = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    assert_eq!(
        verify(&format!("{none}.{c}.")),
        Err(TokenError::AlgorithmNotAllowed)
    );
    let hs = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    assert_eq!(
        verify(&format!("{hs}.{c}.AAAA")),
        Err(TokenError::AlgorithmNotAllowed)
    );
    let ed = B64.encode(br#"{"alg":"EdDSA","typ":"JWT"}"#);
    assert_eq!(
        verify(&format!("{ed}.{c}.")),
        Err(TokenError::Malformed("signature length"))
    );
    assert_eq!(
        verify(&format!("{ed}.{c}")),
        Err(TokenError::Malformed("expected three dot-separated parts"))
    );
}

#[test]
fn tampered_claims_do_not_verify() {
    let token = issue(&key(1), &claims());
    let parts: Vec<&str> = token.split('.').collect();
    let mut c = claims();
    c.sub = "mallory".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(serde_json::to_vec(&c).unwrap()),
        parts[2]
    );
    assert_eq!(verify(&forged), Err(TokenError::BadSignature));
}

#[test]
fn oversized_tokens_are_refused_before_parsing() {
    assert_eq!(
        verify(&"a".repeat(MAX_TOKEN_LEN + 1)),
        Err(TokenError::TooLarge)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(s in ".{0,600}") {
        let _ = verify(&s);
    }

    #[test]
    fn mutated_tokens_never_verify_as_someone_else(pos in 0usize..400, byte in any::<u8>()) {
        let token = issue(&key(1), &claims());
        let mut bytes = token.into_bytes();
        let i = pos % bytes.len();
        if bytes[i] != byte {
            bytes[i] = byte;
            if let Ok(s) = String::from_utf8(bytes)
                && let Ok(v) = verify(&s)
            {
                // base64 has a few spare bits at the end of a part: a flip there can
                // decode to the same bytes. Anything accepted must be the original.
                prop_assert_eq!(v.account.as_str(), "alice");
            }
        }
    }
}
