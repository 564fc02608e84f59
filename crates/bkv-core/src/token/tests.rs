//! Tests of account-token verification: every way a token can be wrong is refused with its
//! own error, and no input makes the verifier panic.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signer as _, SigningKey};
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

/// A token signed by the trusted issuer over raw header and claims JSON.
fn signed_raw(header: &str, claims: &str) -> String {
    let signed = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let sig = key(1).sign(signed.as_bytes());
    format!("{signed}.{}", B64.encode(sig.to_bytes()))
}

#[test]
fn a_missing_claim_is_refused_naming_it() {
    let header = r#"{"alg":"EdDSA","typ":"JWT"}"#;
    let full = serde_json::to_value(claims()).unwrap();
    for name in ["iss", "sub", "aud", "iat", "exp"] {
        let mut c = full.clone();
        c.as_object_mut().unwrap().remove(name);
        let refused = verify(&signed_raw(header, &c.to_string()));
        assert_eq!(refused, Err(TokenError::MissingClaim(name)), "{name}");
        let message = refused.unwrap_err().to_string();
        assert!(message.contains(&format!("`{name}`")), "{message}");
    }
    // nbf is optional.
    assert!(verify(&signed_raw(header, &full.to_string())).is_ok());
    // The header's alg too.
    assert_eq!(
        verify(&signed_raw(r#"{"typ":"JWT"}"#, &full.to_string())),
        Err(TokenError::MissingClaim("alg"))
    );
}

#[test]
fn a_claim_of_the_wrong_type_is_refused_naming_it() {
    let header = r#"{"alg":"EdDSA"}"#;
    let full = serde_json::to_value(claims()).unwrap();
    let cases: [(&str, serde_json::Value); 8] = [
        ("iss", serde_json::json!(7)),
        ("sub", serde_json::json!(null)),
        ("aud", serde_json::json!(["bkv-test"])),
        ("iat", serde_json::json!("1800000000")),
        ("exp", serde_json::json!(1_800_000_600.5)),
        ("exp", serde_json::json!(-1)),
        ("nbf", serde_json::json!(true)),
        ("iat", serde_json::json!(1.8e9)),
    ];
    for (name, value) in cases {
        let mut c = full.clone();
        c.as_object_mut()
            .unwrap()
            .insert(name.into(), value.clone());
        assert!(
            matches!(
                verify(&signed_raw(header, &c.to_string())),
                Err(TokenError::InvalidClaim { claim, .. }) if claim == name
            ),
            "{name} = {value}"
        );
    }
    for (header, name) in [
        (r#"{"alg":7}"#, "alg"),
        (r#"{"alg":"EdDSA","typ":"JOSE"}"#, "typ"),
        (r#"{"alg":"EdDSA","typ":1}"#, "typ"),
    ] {
        assert!(
            matches!(
                verify(&signed_raw(header, &full.to_string())),
                Err(TokenError::InvalidClaim { claim, .. }) if claim == name
            ),
            "{header}"
        );
    }
    // Unknown header fields and claims are ignored; `typ` is matched in any case; `kid`
    // is ignored.
    let mut c = full.clone();
    c.as_object_mut()
        .unwrap()
        .insert("scope".into(), serde_json::json!(["x"]));
    assert!(
        verify(&signed_raw(
            r#"{"alg":"EdDSA","typ":"jwt","kid":"k1","x":1}"#,
            &c.to_string()
        ))
        .is_ok()
    );
    // Not objects at all.
    assert_eq!(
        verify(&signed_raw(header, "[1,2]")),
        Err(TokenError::Malformed("claims are not a JSON object"))
    );
    assert_eq!(
        verify(&signed_raw("\"EdDSA\"", &full.to_string())),
        Err(TokenError::Malformed("header is not a JSON object"))
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

#[test]
fn a_cached_token_gives_what_a_full_verification_gives() {
    let t = issuers();
    let token = issue(&key(1), &claims());
    let first = t
        .verify_cached(&token, "bkv-test", NOW)
        .expect("valid token");
    assert_eq!(t.cached_tokens(), 1);
    let again = t
        .verify_cached(&token, "bkv-test", NOW + 10)
        .expect("still valid");
    assert_eq!(first, again);
    assert_eq!(t.cached_tokens(), 1, "a hit adds nothing");
    // The time rules are checked on every use: expired, and (clock set back) not yet valid.
    assert_eq!(
        t.verify_cached(&token, "bkv-test", NOW + 600),
        Err(TokenError::Expired)
    );
    assert_eq!(
        t.verify_cached(&token, "bkv-test", NOW - 61),
        t.verify(&token, "bkv-test", NOW - 61)
    );
    assert_eq!(
        t.verify_cached(&token, "bkv-test", NOW - 61),
        Err(TokenError::NotYetValid)
    );
    // Another audience is a different entry, and refused.
    assert_eq!(
        t.verify_cached(&token, "other-cluster", NOW),
        Err(TokenError::WrongAudience)
    );
}

#[test]
fn refused_tokens_are_not_cached() {
    let t = issuers();
    let mut bad = issue(&key(2), &claims());
    assert_eq!(
        t.verify_cached(&bad, "bkv-test", NOW),
        Err(TokenError::BadSignature)
    );
    bad.push('A');
    assert!(t.verify_cached(&bad, "bkv-test", NOW).is_err());
    let mut expired = claims();
    expired.exp = NOW;
    let expired = issue(&key(1), &expired);
    assert_eq!(
        t.verify_cached(&expired, "bkv-test", NOW),
        Err(TokenError::Expired)
    );
    assert_eq!(t.cached_tokens(), 0);
}

#[test]
fn replacing_an_issuer_key_forgets_the_tokens_it_signed() {
    let mut t = issuers();
    let token = issue(&key(1), &claims());
    t.verify_cached(&token, "bkv-test", NOW)
        .expect("valid token");
    t.insert("dev", key(3).verifying_key());
    assert_eq!(t.cached_tokens(), 0);
    assert_eq!(
        t.verify_cached(&token, "bkv-test", NOW),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn the_cache_stays_bounded() {
    const CAPACITY: usize = 8;
    let mut t = issuers();
    t.verified = Arc::new(VerifiedCache::with_capacity(CAPACITY));
    let mut c = claims();
    // Full of live tokens: emptied, then refilled.
    for i in 0..(2 * CAPACITY + 3) {
        c.sub = format!("user-{i}");
        t.verify_cached(&issue(&key(1), &c), "bkv-test", NOW)
            .expect("valid token");
        assert!(t.cached_tokens() <= CAPACITY);
    }
    assert_eq!(t.cached_tokens(), 3);
    // Expired entries are dropped first, live ones kept.
    let mut short = claims();
    short.exp = NOW + 5;
    for i in 0..(CAPACITY - 3) {
        short.sub = format!("brief-{i}");
        t.verify_cached(&issue(&key(1), &short), "bkv-test", NOW)
            .expect("valid token");
    }
    assert_eq!(t.cached_tokens(), CAPACITY);
    c.sub = "late".into();
    t.verify_cached(&issue(&key(1), &c), "bkv-test", NOW + 10)
        .expect("valid token");
    assert_eq!(t.cached_tokens(), 4, "the 3 live tokens and the new one");
}

proptest! {
    /// Cached or not, and asked once or twice, every input gets the answer a full
    /// verification gives.
    #[test]
    fn verify_cached_agrees_with_verify(
        exp_offset in 0u64..1200,
        iat_offset in 0u64..200,
        later in 0u64..1300,
        sign_with in 1u8..3,
    ) {
        let t = issuers();
        let mut c = claims();
        c.iat = NOW + iat_offset - 100;
        c.exp = NOW + exp_offset;
        let token = issue(&key(sign_with), &c);
        for now in [NOW, NOW + later, NOW] {
            prop_assert_eq!(
                t.verify_cached(&token, "bkv-test", now),
                t.verify(&token, "bkv-test", now)
            );
        }
    }
}
