//! What each fuzz target on bkv-core's parsers asserts. Shared, word for word, by the
//! cargo-fuzz targets (`fuzz/fuzz_targets/`) and the bounded property tests
//! (`crates/bkv-core/tests/fuzz_props.rs`), which include this file with `#[path]`.
//!
//! Every function takes hostile bytes, must not panic, and panics (fails the run) when an
//! accepted input breaks the format's promise: canonical formats re-encode to the very same
//! bytes, refusals name the right field, and a token is accepted exactly when every rule
//! holds.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bkv_core::opaque::{self, ProtocolError};
use bkv_core::protocol::{
    CREDENTIAL_FINALIZATION_LEN, CREDENTIAL_REQUEST_LEN, MAX_SEALED_KEY_LEN, MIN_SEALED_KEY_LEN,
    REGISTRATION_REQUEST_LEN, REGISTRATION_UPLOAD_LEN,
};
use bkv_core::record::RecordPlain;
use bkv_core::share_map::{MAX_HOLDERS, ShareMapError};
use bkv_core::ticket::TicketPlain;
use bkv_core::token::{Claims, MAX_LIFETIME_SECS, MAX_TOKEN_LEN, TrustedIssuers};
use bkv_core::{AccountId, GuessLimit, ShareMap, SignedShareMap, VaultState, fixtures};
use ed25519_dalek::{Signer as _, SigningKey};
use sha2::{Digest as _, Sha256};

/// "Now" for every token check (Unix seconds).
pub const TOKEN_NOW: u64 = 1_800_000_000;
/// The cluster name tokens are checked against.
pub const TOKEN_AUDIENCE: &str = "bkv-fuzz";
/// The one trusted issuer's name.
pub const TOKEN_ISSUER: &str = "dev";
/// Clock skew allowed by the checks' issuers.
pub const TOKEN_SKEW: u64 = 60;

/// A refusal of a client field names that field (INVALID_ARGUMENT and which field).
fn assert_names_field(e: &ProtocolError, expected: &str) {
    match e {
        ProtocolError::Malformed { field, .. } | ProtocolError::TooLarge { field, .. } => {
            assert_eq!(*field, expected, "refusal names another field: {e:?}");
        }
        other => panic!("{expected}: refusal is not a field error: {other:?}"),
    }
}

/// Shared shape of the four fixed-length OPAQUE messages.
fn opaque_message<T>(
    data: &[u8],
    field: &str,
    len: usize,
    parsed: Result<T, ProtocolError>,
    serialize: impl FnOnce(&T) -> Vec<u8>,
) {
    match parsed {
        Ok(m) => {
            assert_eq!(data.len(), len, "{field}: accepted with a wrong length");
            assert_eq!(
                serialize(&m),
                data,
                "{field}: accepted a non-canonical encoding"
            );
        }
        Err(e) => assert_names_field(&e, field),
    }
}

/// `opaque::parse_registration_request`.
pub fn registration_request(data: &[u8]) {
    opaque_message(
        data,
        "registration_request",
        REGISTRATION_REQUEST_LEN,
        opaque::parse_registration_request(data),
        |m| m.serialize().to_vec(),
    );
}

/// `opaque::parse_registration_upload`.
pub fn registration_upload(data: &[u8]) {
    opaque_message(
        data,
        "registration_upload",
        REGISTRATION_UPLOAD_LEN,
        opaque::parse_registration_upload(data),
        |m| m.serialize().to_vec(),
    );
}

/// `opaque::parse_credential_request`.
pub fn credential_request(data: &[u8]) {
    opaque_message(
        data,
        "credential_request",
        CREDENTIAL_REQUEST_LEN,
        opaque::parse_credential_request(data),
        |m| m.serialize().to_vec(),
    );
}

/// `opaque::parse_credential_finalization`.
pub fn credential_finalization(data: &[u8]) {
    opaque_message(
        data,
        "credential_finalization",
        CREDENTIAL_FINALIZATION_LEN,
        opaque::parse_credential_finalization(data),
        |m| m.serialize().to_vec(),
    );
}

/// `opaque::parse_sealed_key`: only the length can be checked, and exactly it is.
pub fn sealed_key(data: &[u8]) {
    let in_range = (MIN_SEALED_KEY_LEN..=MAX_SEALED_KEY_LEN).contains(&data.len());
    match opaque::parse_sealed_key(data.to_vec()) {
        Ok(k) => {
            assert!(in_range, "sealed_key of {} bytes accepted", data.len());
            assert_eq!(k.as_bytes(), data);
        }
        Err(e) => {
            assert!(!in_range, "sealed_key of {} bytes refused", data.len());
            assert_names_field(&e, "sealed_key");
        }
    }
}

/// `TicketPlain::decode`: accepted bytes are the encoding of what they decode to.
pub fn ticket(data: &[u8]) {
    match TicketPlain::decode(data) {
        Ok(t) => {
            assert_eq!(t.encode().as_slice(), data, "ticket is not canonical");
            assert!((1..=GuessLimit::CEILING).contains(&t.guess_limit.get()));
            assert!(t.sealed_key.as_bytes().len() <= MAX_SEALED_KEY_LEN);
        }
        Err(e) => assert!(
            matches!(e, ProtocolError::Corrupt { what: "ticket", .. }),
            "ticket refusal: {e:?}"
        ),
    }
}

/// `RecordPlain::decode`: accepted bytes are the encoding of what they decode to.
pub fn record(data: &[u8]) {
    match RecordPlain::decode(data) {
        Ok(r) => {
            assert_eq!(r.encode().as_slice(), data, "record is not canonical");
            assert!((1..=GuessLimit::CEILING).contains(&r.guess_limit.get()));
        }
        Err(e) => assert!(
            matches!(e, ProtocolError::Corrupt { what: "record", .. }),
            "record refusal: {e:?}"
        ),
    }
}

/// `VaultState::decode`: only canonical bytes are accepted, and the digest is of them.
pub fn vault_state(data: &[u8]) {
    if let Ok(s) = VaultState::decode(data) {
        assert_eq!(s.encode(), data, "state is not canonical");
        assert_eq!(s.digest(), <[u8; 32]>::from(Sha256::digest(data)));
    }
}

/// How many ways [`share_map`] reads its input; the first byte picks one.
pub const SHARE_MAP_MODES: u8 = 3;

/// The identity key the share-map checks verify under: the fixtures' (`bkv_core::fixtures`).
pub fn share_map_identity() -> [u8; 32] {
    fixtures::identity().verifying_key().to_bytes()
}

/// A share map's rules, stated apart from `ShareMap::check` (docs/PROTOCOL.md §3.2).
fn follows_map_rules(map: &ShareMap) -> bool {
    let n = map.holders.len();
    (1..=255).contains(&map.cluster_name.len())
        && map.epoch >= 1
        && (1..=MAX_HOLDERS).contains(&n)
        && usize::from(map.threshold) == n / 2 + 1
        && map.holders.first().is_some_and(|h| h.node_id != 0)
        && map.holders.windows(2).all(|w| w[0].node_id < w[1].node_id)
        && map.holders.iter().all(|h| h.receive_key[0] == 0x04)
}

/// The share map as clients and `SetShareMap` read it; the first byte picks how:
/// - 0: `ShareMap::parse` of the rest. Accepted bytes re-encode to themselves and follow
///   every rule of the map; a refusal is an encoding or rule error.
/// - 1: the rest signed by the identity key, then `SignedShareMap::verify`: the very answer
///   of `ShareMap::parse` (the signature adds a check, never changes a result), and another
///   key refuses it on the signature.
/// - 2: the rest as `signature (64) || encoded`, then `verify`. A forger cannot be modelled,
///   so one-sided: what is accepted carries the identity key's signature and parses.
///
/// Answers whether the input was accepted.
pub fn share_map(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    let identity = share_map_identity();
    match mode % SHARE_MAP_MODES {
        0 => match ShareMap::parse(rest) {
            Ok(map) => {
                assert_eq!(map.encode(), rest, "share map is not canonical");
                assert!(follows_map_rules(&map), "accepted a map that breaks a rule");
                true
            }
            Err(e) => {
                assert!(
                    matches!(e, ShareMapError::Encoding(_) | ShareMapError::Invalid(_)),
                    "parse refusal: {e:?}"
                );
                false
            }
        },
        1 => {
            let signed = SignedShareMap {
                encoded: rest.to_vec(),
                signature: fixtures::identity().sign(rest).to_bytes(),
            };
            let verified = signed.verify(&identity);
            assert_eq!(
                verified,
                ShareMap::parse(rest),
                "the signature changed the answer"
            );
            let other = SigningKey::from_bytes(&[0x5e; 32])
                .verifying_key()
                .to_bytes();
            assert_eq!(signed.verify(&other), Err(ShareMapError::Signature));
            verified.is_ok()
        }
        _ => {
            let Some((signature, encoded)) = rest.split_first_chunk::<64>() else {
                return false;
            };
            let signed = SignedShareMap {
                encoded: encoded.to_vec(),
                signature: *signature,
            };
            let Ok(map) = signed.verify(&identity) else {
                return false;
            };
            fixtures::identity()
                .verifying_key()
                .verify_strict(encoded, &ed25519_dalek::Signature::from_bytes(signature))
                .expect("an accepted map is signed by the identity key");
            assert_eq!(ShareMap::parse(encoded).as_ref(), Ok(&map));
            true
        }
    }
}

/// The signing key of test issuer `seed` (1 is the trusted one).
pub fn token_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The issuers the token checks trust: `dev` with key 1.
pub fn token_issuers() -> TrustedIssuers {
    let mut t = TrustedIssuers::new(MAX_LIFETIME_SECS, TOKEN_SKEW);
    t.insert(TOKEN_ISSUER, token_key(1).verifying_key());
    t
}

/// `TrustedIssuers::verify` on arbitrary text. A forger cannot be modelled, so the check is
/// one-sided: whatever is accepted must independently carry the trusted key's signature
/// over its first two parts and claims that satisfy every rule.
pub fn token_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(v) = token_issuers().verify(&text, TOKEN_AUDIENCE, TOKEN_NOW) else {
        return;
    };
    assert!(text.len() <= MAX_TOKEN_LEN);
    let parts: Vec<&str> = text.split('.').collect();
    assert_eq!(parts.len(), 3, "accepted a token without three parts");
    let sig = B64
        .decode(parts[2])
        .expect("accepted signature is base64url");
    let sig = ed25519_dalek::Signature::from_slice(&sig).expect("accepted signature length");
    let signed = &text[..parts[0].len() + 1 + parts[1].len()];
    token_key(1)
        .verifying_key()
        .verify_strict(signed.as_bytes(), &sig)
        .expect("accepted token is signed by the trusted key");
    let claims: Claims = serde_json::from_slice(&B64.decode(parts[1]).expect("claims base64"))
        .expect("accepted claims are JSON");
    assert_eq!(claims.iss, TOKEN_ISSUER);
    assert_eq!(claims.aud, TOKEN_AUDIENCE);
    assert!(claims.exp > TOKEN_NOW && claims.exp - TOKEN_NOW <= MAX_LIFETIME_SECS + TOKEN_SKEW);
    assert_eq!(v.account.as_str(), claims.sub);
    assert_eq!(v.expires_at, claims.exp);
}

/// Who signs a structured token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signer {
    /// The trusted issuer's key.
    Trusted,
    /// Another key.
    Other,
    /// No signature at all.
    Empty,
    /// The trusted signature cut short.
    Truncated,
}

/// A token described field by field, starting from a valid one and edited by the fuzzer.
#[derive(Debug, Clone)]
pub struct TokenCase {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
    iss: String,
    sub: String,
    aud: String,
    iat: u64,
    exp: u64,
    nbf: Option<u64>,
    exp_as_text: bool,
    extra_claim: bool,
    signer: Signer,
    sig_flip: Option<(usize, u8)>,
}

impl Default for TokenCase {
    /// The valid token every edit script starts from.
    fn default() -> Self {
        Self {
            alg: "EdDSA".into(),
            typ: Some("JWT".into()),
            kid: None,
            iss: TOKEN_ISSUER.into(),
            sub: "alice".into(),
            aud: TOKEN_AUDIENCE.into(),
            iat: TOKEN_NOW,
            exp: TOKEN_NOW + 600,
            nbf: None,
            exp_as_text: false,
            extra_claim: false,
            signer: Signer::Trusted,
            sig_flip: None,
        }
    }
}

/// Reads an edit script: a byte at a time, zero once exhausted.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn pick<T: Clone>(&mut self, choices: &[T]) -> T {
        choices[usize::from(self.byte()) % choices.len()].clone()
    }

    /// A time near the rules' edges: NOW plus an edge offset plus a small step, or an extreme.
    fn time(&mut self) -> u64 {
        let max = MAX_LIFETIME_SECS;
        let edges: [i128; 9] = [
            0,
            1,
            -1,
            TOKEN_SKEW as i128,
            (max + TOKEN_SKEW) as i128,
            -(TOKEN_NOW as i128),
            i128::from(u64::MAX),
            600,
            -3600,
        ];
        let edge = self.pick(&edges);
        let step = i128::from(self.byte() % 5) - 2;
        let t = i128::from(TOKEN_NOW) + edge + step;
        t.clamp(0, i128::from(u64::MAX)) as u64
    }

    fn text(&mut self, choices: &[&str]) -> String {
        let n = self.byte();
        if n < 200 {
            return choices[usize::from(n) % choices.len()].to_string();
        }
        // Raw bytes, as text: up to 200 of them.
        let len = usize::from(self.byte()).min(self.0.len()).min(200);
        let (raw, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8_lossy(raw).into_owned()
    }
}

impl TokenCase {
    /// Applies an edit script to the valid token: at most 16 edits.
    pub fn from_script(data: &[u8]) -> Self {
        let mut case = Self::default();
        let mut s = Script(data);
        for _ in 0..16 {
            if s.0.is_empty() {
                break;
            }
            match s.byte() % 13 {
                0 => case.alg = s.text(&["EdDSA", "none", "HS256", "eddsa", "EdDSA ", "ES256"]),
                1 => {
                    case.typ = s
                        .pick(&[None, Some("JWT"), Some("jwt"), Some("JOSE"), Some("")])
                        .map(str::to_string)
                }
                2 => case.iss = s.text(&[TOKEN_ISSUER, "stranger", "", "Dev"]),
                3 => {
                    case.sub = s.text(&[
                        "alice",
                        "bob@example.com",
                        "",
                        "a b",
                        "ctl\u{1}",
                        "caf\u{e9}",
                        &"x".repeat(128),
                        &"x".repeat(129),
                    ])
                }
                4 => case.aud = s.text(&[TOKEN_AUDIENCE, "other", "", "bkv-fuzz "]),
                5 => case.iat = s.time(),
                6 => case.exp = s.time(),
                7 => {
                    case.nbf = if s.byte() % 2 == 0 {
                        None
                    } else {
                        Some(s.time())
                    }
                }
                8 => {
                    case.signer = s.pick(&[
                        Signer::Trusted,
                        Signer::Other,
                        Signer::Empty,
                        Signer::Truncated,
                    ])
                }
                9 => case.kid = s.pick(&[None, Some("k1".to_string())]),
                10 => case.exp_as_text = !case.exp_as_text,
                11 => case.extra_claim = !case.extra_claim,
                _ => case.sig_flip = Some((usize::from(s.byte()), s.byte() | 1)),
            }
        }
        case
    }

    /// The compact token.
    pub fn encode(&self) -> String {
        let mut header = serde_json::Map::new();
        header.insert("alg".into(), self.alg.clone().into());
        if let Some(typ) = &self.typ {
            header.insert("typ".into(), typ.clone().into());
        }
        if let Some(kid) = &self.kid {
            header.insert("kid".into(), kid.clone().into());
        }
        let mut claims = serde_json::Map::new();
        claims.insert("iss".into(), self.iss.clone().into());
        claims.insert("sub".into(), self.sub.clone().into());
        claims.insert("aud".into(), self.aud.clone().into());
        claims.insert("iat".into(), self.iat.into());
        claims.insert(
            "exp".into(),
            if self.exp_as_text {
                self.exp.to_string().into()
            } else {
                self.exp.into()
            },
        );
        if let Some(nbf) = self.nbf {
            claims.insert("nbf".into(), nbf.into());
        }
        if self.extra_claim {
            claims.insert("scope".into(), "recover".into());
        }
        let h = B64.encode(serde_json::Value::from(header).to_string());
        let c = B64.encode(serde_json::Value::from(claims).to_string());
        let signed = format!("{h}.{c}");
        let mut sig = match self.signer {
            Signer::Trusted | Signer::Truncated => token_key(1).sign(signed.as_bytes()).to_vec(),
            Signer::Other => token_key(2).sign(signed.as_bytes()).to_vec(),
            Signer::Empty => Vec::new(),
        };
        if self.signer == Signer::Truncated {
            sig.truncate(32);
        }
        if let Some((at, mask)) = self.sig_flip
            && !sig.is_empty()
        {
            let i = at % sig.len();
            sig[i] ^= mask;
        }
        format!("{signed}.{}", B64.encode(sig))
    }

    /// Whether the token must be accepted: every rule of docs/DESIGN.md §4.2, stated
    /// independently.
    pub fn acceptable(&self) -> bool {
        let signed_by_trusted = self.signer == Signer::Trusted && self.sig_flip.is_none();
        let not_before = self.nbf.unwrap_or(self.iat).max(self.iat);
        self.alg == "EdDSA"
            && self
                .typ
                .as_deref()
                .is_none_or(|t| t.eq_ignore_ascii_case("JWT"))
            && !self.exp_as_text
            && self.iss == TOKEN_ISSUER
            && signed_by_trusted
            && self.aud == TOKEN_AUDIENCE
            && self.exp > TOKEN_NOW
            && self.exp - TOKEN_NOW <= MAX_LIFETIME_SECS + TOKEN_SKEW
            && not_before <= TOKEN_NOW + TOKEN_SKEW
            && AccountId::parse(&self.sub).is_ok()
    }
}

/// Structure-aware token check: a valid token edited field by field is accepted exactly when
/// the edited fields still satisfy every rule, and then for exactly its subject.
pub fn token_structured(data: &[u8]) {
    let case = TokenCase::from_script(data);
    let token = case.encode();
    let got = token_issuers().verify(&token, TOKEN_AUDIENCE, TOKEN_NOW);
    assert_eq!(
        got.is_ok(),
        case.acceptable(),
        "verify answered {got:?} for {case:?}"
    );
    if let Ok(v) = got {
        assert_eq!(v.account.as_str(), case.sub);
        assert_eq!(v.issuer, TOKEN_ISSUER);
        assert_eq!(v.expires_at, case.exp);
    }
}
