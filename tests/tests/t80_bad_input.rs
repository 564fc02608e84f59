//! A bad-input matrix against a running three-node cluster: account tokens that must not
//! pass (wrong audience, expired, unsigned, `alg: none`, unknown issuer, subjects with
//! control characters or invalid UTF-8, ...), fields of the wrong size or encoding, messages
//! of another protocol step, the v2 fields (blinded elements off the curve, share uploads of
//! the wrong count, order, commitment or ciphertext, a stale share map epoch, bad reset keys,
//! KSF parameters out of range), logins on attempts that are unknown, uncharged, of another
//! account or of a destroyed record, tickets that are empty, oversized, garbage, tampered, of
//! another account, of a superseded version, expired, or replayed after a later charge, reset
//! signatures missing, short or forged (a forged one resets nothing), and a gRPC message over
//! `limits.max_client_message_bytes`. Each case gets the documented status and, where there
//! is one, the field and reason word of its `google.rpc.Status` details. After the matrix the cluster serves, the
//! replicas agree, and the account the bad tokens named is unchanged.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bkv_client::flow::{ClusterTrust, RegisterStarted};
use bkv_client::proto::vault_client::VaultClient as RawVault;
use bkv_client::proto::{
    ActivateRequest, KsfParams as KsfProto, RecoverFinishRequest, RecoverLoginResponse,
    RecoverStartResponse, RegisterFinishRequest, RegisterStartRequest, RegisterStartResponse,
    StatusRequest, StatusResponse,
};
use bkv_client::{BackupKey, KsfParams, Registration, error_details};
use bkv_core::SignedShareMap;
use bkv_core::oprf::{BlindedElement, Commitment};
use bkv_core::protocol::{
    CREDENTIAL_FINALIZATION_LEN, CREDENTIAL_REQUEST_LEN, MAX_SEALED_KEY_LEN, MAX_TICKET_LEN,
    REGISTRATION_REQUEST_LEN, REGISTRATION_RESPONSE_LEN, REGISTRATION_UPLOAD_LEN,
};
use bkv_tests::raw::RawLogin;
use bkv_tests::{Cluster, ClusterOptions, account, password, raw};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use rand::RngCore as _;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;

const RIGHT: &str = "correct horse battery staple";
/// `recovery.ticket_ttl_secs` of this cluster: short, so that a ticket can expire.
const TICKET_TTL_SECS: u64 = 6;

fn random(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// What a case must get back.
#[derive(Debug, Clone, Copy)]
struct Want {
    code: Code,
    field: Option<&'static str>,
    reason: Option<&'static str>,
}

const fn want(code: Code) -> Want {
    Want {
        code,
        field: None,
        reason: None,
    }
}

const fn invalid(field: &'static str, reason: &'static str) -> Want {
    Want {
        code: Code::InvalidArgument,
        field: Some(field),
        reason: Some(reason),
    }
}

/// `invalid(field, ..)` with the reason the parser gives a message of `len` bytes where
/// `expected` are due.
fn wrong_size(field: &'static str, len: usize, expected: usize) -> Want {
    invalid(
        field,
        if len > expected {
            "too_large"
        } else {
            "wrong_length"
        },
    )
}

/// The matrix: every case's name and what was wrong with its answer, if anything.
#[derive(Debug, Default)]
struct Matrix {
    cases: usize,
    failures: Vec<String>,
}

impl Matrix {
    fn check<T: std::fmt::Debug>(&mut self, name: &str, got: Result<T, tonic::Status>, want: Want) {
        self.cases += 1;
        let status = match got {
            Ok(answer) => {
                self.failures
                    .push(format!("{name}: answered OK ({answer:?}), want {want:?}"));
                return;
            }
            Err(status) => status,
        };
        let detail = error_details(&status).unwrap_or_default();
        let got_field = detail
            .field_violation
            .as_ref()
            .map_or("", |f| f.field.as_str());
        let mut wrong = Vec::new();
        if status.code() != want.code {
            wrong.push(format!("code {:?}", status.code()));
        }
        if let Some(field) = want.field
            && got_field != field
        {
            wrong.push(format!("field {got_field:?}"));
        }
        // Reason words are UPPER_SNAKE on the wire; the matrix writes them in lower case.
        if let Some(reason) = want.reason
            && !detail.reason.eq_ignore_ascii_case(reason)
        {
            wrong.push(format!("reason {:?}", detail.reason));
        }
        if !wrong.is_empty() {
            self.failures.push(format!(
                "{name}: {} (message {:?}), want {want:?}",
                wrong.join(", "),
                status.message()
            ));
        }
    }
}

/// Raw calls on one channel with one `authorization` value (or none).
struct Caller {
    channel: Channel,
    token: Option<String>,
}

impl Caller {
    fn client(&self) -> RawVault<Channel> {
        RawVault::new(self.channel.clone())
    }

    fn request<T>(&self, message: T) -> Result<tonic::Request<T>, tonic::Status> {
        raw::with_token(message, self.token.as_deref())
            .map_err(|e| tonic::Status::internal(format!("the test built no request: {e}")))
    }

    /// A status for a test-side failure (the node never answered this).
    fn local(e: anyhow::Error) -> tonic::Status {
        tonic::Status::internal(format!("the test failed to call: {e}"))
    }

    async fn register_start(
        &self,
        registration_request: Vec<u8>,
    ) -> Result<RegisterStartResponse, tonic::Status> {
        let r = self.request(RegisterStartRequest {
            registration_request,
        })?;
        Ok(self.client().register_start(r).await?.into_inner())
    }

    async fn register_finish(&self, msg: RegisterFinishRequest) -> Result<u64, tonic::Status> {
        let r = self.request(msg)?;
        Ok(self.client().register_finish(r).await?.into_inner().version)
    }

    async fn activate(&self, version: u64) -> Result<u64, tonic::Status> {
        let r = self.request(ActivateRequest { version })?;
        Ok(self.client().activate(r).await?.into_inner().version)
    }

    async fn recover_start(
        &self,
        attempt_id: Vec<u8>,
        blinded_element: Vec<u8>,
    ) -> Result<RecoverStartResponse, tonic::Status> {
        raw::start(
            self.channel.clone(),
            self.token.as_deref(),
            attempt_id,
            blinded_element,
        )
        .await
        .map_err(Self::local)?
    }

    async fn recover_login(
        &self,
        attempt_id: Vec<u8>,
        credential_request: Vec<u8>,
    ) -> Result<RecoverLoginResponse, tonic::Status> {
        raw::recover_login(
            self.channel.clone(),
            self.token.as_deref(),
            attempt_id,
            credential_request,
        )
        .await
        .map_err(Self::local)?
    }

    async fn recover_finish(&self, msg: RecoverFinishRequest) -> Result<u64, tonic::Status> {
        raw::recover_finish(self.channel.clone(), self.token.as_deref(), msg)
            .await
            .map_err(Self::local)?
            .map(|r| r.version)
    }

    async fn status(&self) -> Result<StatusResponse, tonic::Status> {
        let r = self.request(StatusRequest {})?;
        Ok(self.client().status(r).await?.into_inner())
    }

    /// RecoverStart and RecoverLogin with `pw` for `name`, and the client's finish.
    async fn login(&self, name: &str, pw: &str, cluster_name: &str) -> anyhow::Result<RawLogin> {
        raw::login(
            self.channel.clone(),
            self.token.as_deref(),
            &account(name),
            pw,
            cluster_name,
        )
        .await
    }
}

/// A compact JWT from raw header and claims bytes, signed by `key` (or with `signature`).
fn jwt(header: &[u8], claims: &[u8], key: Option<&SigningKey>, signature: &[u8]) -> String {
    let signed = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let sig = match key {
        Some(key) => key.sign(signed.as_bytes()).to_bytes().to_vec(),
        None => signature.to_vec(),
    };
    format!("{signed}.{}", B64.encode(sig))
}

/// 32 random bytes that `valid` refuses (a few draws; most random bytes are not a
/// ristretto255 element, nor an Ed25519 point).
fn random_invalid(valid: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    for _ in 0..1_000 {
        let bytes = random(32);
        if !valid(&bytes) {
            return bytes;
        }
    }
    panic!("1,000 random draws were all valid");
}

/// A registration upload as RegisterFinish sends it, with a fresh request id.
fn finish_request(upload: &bkv_client::RegisterUpload) -> RegisterFinishRequest {
    raw::register_finish(random(16), upload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_matrix_of_bad_input_gets_the_documented_answers_and_changes_nothing()
-> anyhow::Result<()> {
    let mut options = ClusterOptions::new(3);
    options.ticket_ttl_secs = TICKET_TTL_SECS;
    let cluster = Cluster::start_with(options).await?;
    let ids = cluster.ids();
    let started_at = Instant::now();
    let cluster_name = cluster.options().cluster_name.clone();
    let channel = |i: usize| cluster.client_channel(ids[i % ids.len()]);
    let as_account = |i: usize, name: &str| -> anyhow::Result<Caller> {
        Ok(Caller {
            channel: channel(i)?,
            token: Some(cluster.token(name)),
        })
    };
    let with_token = |i: usize, token: Option<String>| -> anyhow::Result<Caller> {
        Ok(Caller {
            channel: channel(i)?,
            token,
        })
    };

    // The account whose state must not change: registered, one wrong guess behind it.
    let victim = cluster.vault(&ids, "victim").await?;
    let registered = victim
        .register(&account("victim"), password(RIGHT), None)
        .await?;
    let _ = victim.recover(&account("victim"), password("wrong")).await;
    let victim_before = as_account(0, "victim")?.status().await?;
    assert_eq!(victim_before.guesses_used, 1);
    let mut m = Matrix::default();
    let mut i = 0usize;
    let mut next = || {
        i += 1;
        i
    };

    // Phase 1: account tokens. Each names the victim and carries a well-formed
    // RecoverStart: none may reach the charge.
    let issuer =
        bkv_devkit::pki::read_issuer_key(&cluster.pki_dir().join(bkv_devkit::pki::ISSUER_KEY))?;
    let stranger = SigningKey::generate(&mut rand::rngs::OsRng);
    let base = cluster.claims("victim");
    let now = base.iat;
    let header = br#"{"alg":"EdDSA","typ":"JWT"}"#.to_vec();
    let claims_json = |sub: &str| {
        serde_json::json!({
            "iss": base.iss, "sub": sub, "aud": base.aud, "iat": base.iat, "exp": base.exp,
        })
        .to_string()
        .into_bytes()
    };
    let victim_claims = claims_json("victim");
    let mut tokens: Vec<(String, Option<String>)> = vec![
        ("no token".into(), None),
        ("empty token".into(), Some(String::new())),
        ("garbage".into(), Some("not-a-jwt".into())),
        ("two parts".into(), Some("e30.e30".into())),
        (
            "four parts".into(),
            Some(format!("{}.x", cluster.token("victim"))),
        ),
        ("non-base64 parts".into(), Some("%%%.%%%.%%%".into())),
        (
            "oversized token".into(),
            Some(format!("{}.{}", cluster.token("victim"), "A".repeat(5000))),
        ),
        (
            "unsigned (empty signature)".into(),
            Some(jwt(&header, &victim_claims, None, b"")),
        ),
        (
            "alg none".into(),
            Some(jwt(
                br#"{"alg":"none","typ":"JWT"}"#,
                &victim_claims,
                None,
                b"",
            )),
        ),
        (
            "alg none, signed anyway".into(),
            Some(jwt(
                br#"{"alg":"none"}"#,
                &victim_claims,
                Some(&issuer),
                b"",
            )),
        ),
        (
            "alg HS256".into(),
            Some(jwt(
                br#"{"alg":"HS256"}"#,
                &victim_claims,
                Some(&issuer),
                b"",
            )),
        ),
        (
            "zero signature".into(),
            Some(jwt(&header, &victim_claims, None, &[0u8; 64])),
        ),
        (
            "header not JSON".into(),
            Some(jwt(b"{alg", &victim_claims, Some(&issuer), b"")),
        ),
        (
            "claims not JSON".into(),
            Some(jwt(&header, b"[1,2", Some(&issuer), b"")),
        ),
    ];
    let mut c = base.clone();
    c.aud = "another-cluster".into();
    tokens.push(("wrong audience".into(), Some(cluster.sign(&c))));
    let mut c = base.clone();
    c.iat = now - 600;
    c.exp = now - 5;
    tokens.push(("expired".into(), Some(cluster.sign(&c))));
    let mut c = base.clone();
    c.iat = now + 3_600;
    c.exp = now + 3_700;
    tokens.push(("not yet valid".into(), Some(cluster.sign(&c))));
    let mut c = base.clone();
    c.exp = now + 10 * 86_400;
    tokens.push(("lifetime too long".into(), Some(cluster.sign(&c))));
    let mut c = base.clone();
    c.iss = "stranger".into();
    tokens.push((
        "unknown issuer".into(),
        Some(bkv_core::token::issue(&stranger, &c)),
    ));
    tokens.push((
        "trusted issuer's name, another key".into(),
        Some(bkv_core::token::issue(&stranger, &base)),
    ));
    let good = cluster.token("victim");
    let mut parts: Vec<&str> = good.split('.').collect();
    let other_claims = B64.encode(claims_json("mallory"));
    parts[1] = &other_claims;
    tokens.push(("claims swapped after signing".into(), Some(parts.join("."))));
    for (what, sub) in [
        ("empty", ""),
        ("NUL", "victim\u{0}"),
        ("newline", "victim\nadmin"),
        ("escape sequence", "\u{1b}[31mvictim"),
        ("DEL", "victim\u{7f}"),
        ("space", "vic tim"),
        ("slash", "victim/../root"),
        ("non-ASCII", "v\u{ed}ctim"),
        ("right-to-left override", "victim\u{202e}"),
        ("129 bytes", &"v".repeat(129)),
    ] {
        tokens.push((
            format!("subject with {what}"),
            Some(jwt(&header, &claims_json(sub), Some(&issuer), b"")),
        ));
    }
    // Invalid UTF-8 inside the subject string: the claims are no longer JSON text.
    let mut bad_utf8 = claims_json("victimXX");
    let at = bad_utf8
        .windows(8)
        .position(|w| w == b"victimXX")
        .unwrap_or(0);
    bad_utf8[at + 6] = 0xff;
    bad_utf8[at + 7] = 0xfe;
    tokens.push((
        "subject with invalid UTF-8".into(),
        Some(jwt(&header, &bad_utf8, Some(&issuer), b"")),
    ));
    // Well-formed messages of every step, from a login of an account of their own (its
    // charge is no one else's): samples for the cases below.
    cluster
        .vault(&ids, "sampler")
        .await?
        .register(&account("sampler"), password(RIGHT), None)
        .await?;
    let sample = as_account(0, "sampler")?
        .login("sampler", RIGHT, &cluster_name)
        .await?;
    let sample_finish = sample.finish()?;
    let (_, blinded_element) = raw::blind(&account("victim"), RIGHT)?;
    let credential_request = sample.credential_request.clone();
    let token_cases = tokens.len();
    for (what, token) in &tokens {
        let caller = with_token(next(), token.clone())?;
        let got = caller
            .recover_start(random(16), blinded_element.clone())
            .await;
        m.check(
            &format!("token: {what} (RecoverStart)"),
            got,
            want(Code::Unauthenticated),
        );
        let got = with_token(next(), token.clone())?
            .recover_login(sample.attempt_id.clone(), credential_request.clone())
            .await;
        m.check(
            &format!("token: {what} (RecoverLogin)"),
            got,
            want(Code::Unauthenticated),
        );
        let got = with_token(next(), token.clone())?.status().await;
        m.check(
            &format!("token: {what} (Status)"),
            got,
            want(Code::Unauthenticated),
        );
    }

    // Phase 2: fields of the wrong size or encoding, and messages of another step.
    let mallory = |i| as_account(i, "mallory");
    let (registration, registration_request) =
        Registration::start(&account("mallory"), password(RIGHT))?;
    let register_started = mallory(next())?
        .register_start(registration_request.clone())
        .await
        .map_err(|s| anyhow::anyhow!("RegisterStart: {s:?}"))?;
    let registration_response = register_started.registration_response.clone();
    let map = register_started
        .share_map
        .clone()
        .ok_or_else(|| anyhow::anyhow!("RegisterStart answered no share map"))?;
    let identity_key = cluster.identity_public();
    let upload = registration.finish(
        &RegisterStarted {
            registration_response: registration_response.clone(),
            share_map: SignedShareMap {
                encoded: map.encoded,
                signature: map.signature.as_slice().try_into()?,
            },
            default_guess_limit: register_started.default_guess_limit,
            max_guess_limit: register_started.max_guess_limit,
        },
        &account("mallory"),
        &BackupKey::generate(),
        &KsfParams::light(),
        0,
        ClusterTrust {
            cluster_name: &cluster_name,
            identity_key: &identity_key,
        },
    )?;
    assert_eq!(upload.registration_upload.len(), REGISTRATION_UPLOAD_LEN);
    assert_eq!(upload.shares.len(), ids.len(), "one share per voter");
    let share_ciphertext = upload.shares[0].ciphertext.clone();
    let proof = sample.started.evaluations[0].proof.clone();
    let others: [(&str, &[u8]); 10] = [
        ("a registration request", &registration_request),
        ("a registration response", &registration_response),
        ("a registration upload", &upload.registration_upload),
        ("a blinded element", &blinded_element),
        ("a credential request", &credential_request),
        ("a credential response", &sample.logged.credential_response),
        (
            "a credential finalization",
            &sample_finish.credential_finalization,
        ),
        ("a reset signature", &sample_finish.reset_signature),
        ("a share ciphertext", &share_ciphertext),
        ("an evaluation proof", &proof),
    ];

    // RegisterStart(registration_request).
    let field = "registration_request";
    for (what, bytes) in [
        ("empty", vec![]),
        ("one byte short", registration_request[1..].to_vec()),
        ("one byte long", [&registration_request[..], &[0]].concat()),
        ("all 0xff", vec![0xff; REGISTRATION_REQUEST_LEN]),
        ("oversized (60 KiB)", random(60 * 1024)),
    ] {
        let n = bytes.len();
        let w = if what == "all 0xff" {
            invalid(field, "invalid_encoding")
        } else if n == 0 {
            invalid(field, "wrong_length")
        } else {
            wrong_size(field, n, REGISTRATION_REQUEST_LEN)
        };
        m.check(
            &format!("RegisterStart: {what}"),
            mallory(next())?.register_start(bytes).await,
            w,
        );
    }
    for (what, bytes) in &others {
        if bytes.len() == REGISTRATION_REQUEST_LEN {
            continue;
        }
        m.check(
            &format!("RegisterStart: {what} as the registration request"),
            mallory(next())?.register_start(bytes.to_vec()).await,
            wrong_size(field, bytes.len(), REGISTRATION_REQUEST_LEN),
        );
    }

    // RegisterFinish: one bad field at a time, the others valid (the good request is
    // checked last: it stages).
    let good = finish_request(&upload);
    let with = |change: &dyn Fn(&mut RegisterFinishRequest)| {
        let mut request = good.clone();
        request.request_id = random(16);
        change(&mut request);
        request
    };
    let mut finishes: Vec<(String, RegisterFinishRequest, Want)> = Vec::new();
    for (what, len) in [
        ("empty request_id", 0),
        ("15-byte request_id", 15),
        ("17-byte request_id", 17),
        ("1 KiB request_id", 1024),
    ] {
        finishes.push((
            what.into(),
            with(&|r| r.request_id = random(len)),
            invalid("request_id", "wrong_length"),
        ));
    }
    let good_upload = upload.registration_upload.clone();
    let field = "registration_upload";
    for (what, bytes) in [
        ("empty upload", vec![]),
        ("upload one byte short", good_upload[1..].to_vec()),
        ("upload one byte long", [&good_upload[..], &[0]].concat()),
    ] {
        let w = if bytes.is_empty() {
            invalid(field, "wrong_length")
        } else {
            wrong_size(field, bytes.len(), REGISTRATION_UPLOAD_LEN)
        };
        finishes.push((
            what.into(),
            with(&|r| r.registration_upload = bytes.clone()),
            w,
        ));
    }
    finishes.push((
        "upload of all 0xff".into(),
        with(&|r| r.registration_upload = vec![0xff; REGISTRATION_UPLOAD_LEN]),
        invalid(field, "invalid_encoding"),
    ));
    for (what, bytes) in &others {
        if bytes.len() == REGISTRATION_UPLOAD_LEN {
            continue;
        }
        finishes.push((
            format!("{what} as the upload"),
            with(&|r| r.registration_upload = bytes.to_vec()),
            wrong_size(field, bytes.len(), REGISTRATION_UPLOAD_LEN),
        ));
    }
    for (what, sealed, reason) in [
        ("empty sealed_key", vec![], "too_short"),
        ("28-byte sealed_key (no plaintext)", random(28), "too_short"),
        (
            "sealed_key over 1 KiB",
            random(MAX_SEALED_KEY_LEN + 1),
            "too_large",
        ),
    ] {
        finishes.push((
            what.into(),
            with(&|r| r.sealed_key = sealed.clone()),
            invalid("sealed_key", reason),
        ));
    }
    for limit in [11, 1_001, u32::MAX] {
        finishes.push((
            format!("guess_limit {limit}"),
            with(&|r| r.guess_limit = limit),
            Want {
                code: Code::InvalidArgument,
                field: Some("guess_limit"),
                reason: None,
            },
        ));
    }
    // The Argon2id parameters stored with the record.
    finishes.push((
        "no ksf".into(),
        with(&|r| r.ksf = None),
        invalid("ksf", "missing"),
    ));
    for (what, ksf) in [
        ("ksf m_cost 0", (0, 1, 1)),
        ("ksf t_cost 0", (8, 0, 1)),
        ("ksf p_cost 0", (8, 1, 0)),
        ("ksf m_cost below 8 KiB per lane", (15, 1, 2)),
        ("ksf m_cost over 1 GiB", ((1 << 20) + 1, 1, 1)),
        ("ksf t_cost 65", (8, 65, 1)),
        ("ksf p_cost 17", (17 * 8, 1, 17)),
        ("ksf all u32::MAX", (u32::MAX, u32::MAX, u32::MAX)),
    ] {
        finishes.push((
            what.into(),
            with(&|r| {
                r.ksf = Some(KsfProto {
                    m_cost_kib: ksf.0,
                    t_cost: ksf.1,
                    p_cost: ksf.2,
                })
            }),
            invalid("ksf", "out_of_range"),
        ));
    }
    // The reset public key.
    let field = "reset_public_key";
    let not_a_point = random_invalid(|b| {
        b.try_into()
            .ok()
            .and_then(|a: [u8; 32]| VerifyingKey::from_bytes(&a).ok())
            .is_some()
    });
    let mut identity = [0u8; 32];
    identity[0] = 1;
    for (what, bytes) in [
        ("empty reset_public_key", vec![]),
        ("31-byte reset_public_key", random(31)),
        ("33-byte reset_public_key", random(33)),
        ("reset_public_key not a point", not_a_point),
        (
            "reset_public_key the identity (small order)",
            identity.to_vec(),
        ),
        ("reset_public_key of small order (0)", vec![0; 32]),
    ] {
        finishes.push((
            what.into(),
            with(&|r| r.reset_public_key = bytes.clone()),
            invalid(field, "invalid"),
        ));
    }
    // The share map epoch: the shares were made for the map in force, no other.
    let stale = Want {
        code: Code::FailedPrecondition,
        field: None,
        reason: Some("stale_share_map"),
    };
    for (what, epoch) in [
        ("share_map_epoch 0", 0),
        (
            "share_map_epoch before the current",
            good.share_map_epoch - 1,
        ),
        (
            "share_map_epoch after the current",
            good.share_map_epoch + 1,
        ),
        ("share_map_epoch u64::MAX", u64::MAX),
    ] {
        finishes.push((what.into(), with(&|r| r.share_map_epoch = epoch), stale));
    }
    // The shares: one per holder of the map, in its order; commitments valid and on one
    // polynomial of the map's degree; ciphertexts well formed.
    let wrong_count = invalid("shares", "wrong_count");
    finishes.push(("no shares".into(), with(&|r| r.shares.clear()), wrong_count));
    finishes.push((
        "one share short".into(),
        with(&|r| {
            r.shares.pop();
        }),
        wrong_count,
    ));
    finishes.push((
        "one share too many".into(),
        with(&|r| {
            let mut extra = r.shares[0].clone();
            extra.node_id = 99;
            r.shares.push(extra);
        }),
        wrong_count,
    ));
    finishes.push((
        "a share twice, one holder left out".into(),
        with(&|r| r.shares[1] = r.shares[0].clone()),
        invalid("shares", "wrong_holder"),
    ));
    finishes.push((
        "shares out of the map's order".into(),
        with(&|r| r.shares.swap(0, 1)),
        invalid("shares", "wrong_holder"),
    ));
    finishes.push((
        "a share for a node not in the map".into(),
        with(&|r| r.shares[2].node_id = 99),
        invalid("shares", "wrong_holder"),
    ));
    finishes.push((
        "a share for node 0".into(),
        with(&|r| r.shares[0].node_id = 0),
        invalid("shares", "wrong_holder"),
    ));
    let field = "shares.commitment";
    let off_curve = random_invalid(|b| Commitment::parse(b).is_ok());
    for (what, bytes) in [
        ("empty commitment", vec![]),
        (
            "31-byte commitment",
            good.shares[1].commitment[1..].to_vec(),
        ),
        (
            "33-byte commitment",
            [&good.shares[1].commitment[..], &[0]].concat(),
        ),
        ("commitment not a ristretto255 element", off_curve),
        ("commitment of all 0xff (not canonical)", vec![0xff; 32]),
        ("commitment the identity", vec![0; 32]),
    ] {
        finishes.push((
            what.into(),
            with(&|r| r.shares[1].commitment = bytes.clone()),
            invalid(field, "invalid"),
        ));
    }
    // Valid elements, but not the commitments of one key's shares.
    finishes.push((
        "one commitment replaced by another share's".into(),
        with(&|r| r.shares[2].commitment = r.shares[0].commitment.clone()),
        invalid(field, "inconsistent"),
    ));
    finishes.push((
        "one commitment replaced by another valid element".into(),
        with(&|r| r.shares[0].commitment = blinded_element.clone()),
        invalid(field, "inconsistent"),
    ));
    finishes.push((
        "commitments of another registration".into(),
        with(&|r| {
            r.shares[1].commitment = sample.started.evaluations[0].commitment.clone();
        }),
        invalid(field, "inconsistent"),
    ));
    let field = "shares.ciphertext";
    let mut off_curve_ephemeral = share_ciphertext.clone();
    off_curve_ephemeral[1..65].copy_from_slice(&[0xff; 64]);
    let mut compressed_ephemeral = share_ciphertext.clone();
    compressed_ephemeral[0] = 0x02;
    for (what, bytes) in [
        ("empty ciphertext", vec![]),
        ("ciphertext one byte short", share_ciphertext[1..].to_vec()),
        (
            "ciphertext one byte long",
            [&share_ciphertext[..], &[0]].concat(),
        ),
        ("ciphertext of 60 KiB", random(60 * 1024)),
        (
            "ciphertext whose ephemeral key is not on P-256",
            off_curve_ephemeral,
        ),
        (
            "ciphertext whose ephemeral key is not uncompressed",
            compressed_ephemeral,
        ),
    ] {
        finishes.push((
            what.into(),
            with(&|r| r.shares[2].ciphertext = bytes.clone()),
            invalid(field, "invalid"),
        ));
    }
    let mut side_by_side = tokio::task::JoinSet::new();
    for (n, (what, request, w)) in finishes.into_iter().enumerate() {
        let caller = mallory(next())?;
        side_by_side.spawn(async move {
            let got = caller.register_finish(request).await;
            (n, what, got, w)
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = side_by_side.join_next().await {
        answers.push(answer?);
    }
    answers.sort_by_key(|a| a.0);
    for (_, what, got, w) in answers {
        m.check(&format!("RegisterFinish: {what}"), got, w);
    }
    // Nothing of the above was staged; the good request still is.
    let status = mallory(next())?.status().await?;
    assert_eq!(
        status.staged_version, 0,
        "a refused RegisterFinish staged something"
    );
    mallory(next())?
        .register_finish(good.clone())
        .await
        .map_err(|s| anyhow::anyhow!("the good RegisterFinish after the bad ones: {s:?}"))?;

    // Activate.
    m.check(
        "Activate: version 0",
        mallory(next())?.activate(0).await,
        invalid("version", "zero"),
    );
    m.check(
        "Activate: a version never staged",
        mallory(next())?.activate(u64::MAX).await,
        want(Code::NotFound),
    );

    // RecoverStart. A refused start charges nothing (the victim's count is checked at the
    // end).
    for (what, attempt_id) in [
        ("empty attempt_id", vec![]),
        ("15-byte attempt_id", random(15)),
        ("17-byte attempt_id", random(17)),
    ] {
        m.check(
            &format!("RecoverStart: {what}"),
            as_account(next(), "victim")?
                .recover_start(attempt_id, blinded_element.clone())
                .await,
            invalid("attempt_id", "wrong_length"),
        );
    }
    let field = "blinded_element";
    let off_curve = random_invalid(|b| BlindedElement::parse(b).is_ok());
    let refused_attempt = random(16);
    for (what, attempt_id, bytes) in [
        ("empty", random(16), vec![]),
        ("one byte short", random(16), blinded_element[1..].to_vec()),
        (
            "one byte long",
            random(16),
            [&blinded_element[..], &[0]].concat(),
        ),
        ("all 0xff (not canonical)", random(16), vec![0xff; 32]),
        ("the identity", random(16), vec![0; 32]),
        (
            "not a ristretto255 element",
            refused_attempt.clone(),
            off_curve,
        ),
        ("oversized (60 KiB)", random(16), random(60 * 1024)),
    ] {
        m.check(
            &format!("RecoverStart: blinded element {what}"),
            as_account(next(), "victim")?
                .recover_start(attempt_id, bytes)
                .await,
            invalid(field, "invalid"),
        );
    }
    for (what, bytes) in &others {
        if bytes.len() == BlindedElement::LEN {
            continue;
        }
        m.check(
            &format!("RecoverStart: {what} as the blinded element"),
            as_account(next(), "victim")?
                .recover_start(random(16), bytes.to_vec())
                .await,
            invalid(field, "invalid"),
        );
    }
    m.check(
        "RecoverStart: a well-formed request for an account with no record",
        as_account(next(), "nobody-here")?
            .recover_start(random(16), blinded_element.clone())
            .await,
        want(Code::NotFound),
    );
    // One attempt id, two blinded elements: the second is refused, and charges nothing.
    let reuse = cluster.vault(&ids, "reuser").await?;
    reuse
        .register(&account("reuser"), password(RIGHT), None)
        .await?;
    let attempt = random(16);
    let (_, reuser_blinded) = raw::blind(&account("reuser"), RIGHT)?;
    as_account(next(), "reuser")?
        .recover_start(attempt.clone(), reuser_blinded)
        .await
        .map_err(|s| anyhow::anyhow!("first use of an attempt id: {s:?}"))?;
    let (_, another_blinded) = raw::blind(&account("reuser"), RIGHT)?;
    m.check(
        "RecoverStart: an attempt id reused with another blinded element",
        as_account(next(), "reuser")?
            .recover_start(attempt.clone(), another_blinded)
            .await,
        invalid("attempt_id", "reused"),
    );
    assert_eq!(
        reuse.status().await?.guesses_used,
        1,
        "the refused reuse charged"
    );

    // RecoverLogin: bad ids and credential requests, and attempts with no charge behind
    // them. Charges nothing, whatever it answers.
    let login_owner = cluster.vault(&ids, "t-login").await?;
    login_owner
        .register(&account("t-login"), password(RIGHT), None)
        .await?;
    let charged = as_account(next(), "t-login")?
        .login("t-login", RIGHT, &cluster_name)
        .await?;
    for (what, attempt_id) in [
        ("empty attempt_id", vec![]),
        ("15-byte attempt_id", random(15)),
        ("17-byte attempt_id", random(17)),
    ] {
        m.check(
            &format!("RecoverLogin: {what}"),
            as_account(next(), "t-login")?
                .recover_login(attempt_id, charged.credential_request.clone())
                .await,
            invalid("attempt_id", "wrong_length"),
        );
    }
    let field = "credential_request";
    for (what, bytes) in [
        ("empty", vec![]),
        ("one byte short", credential_request[1..].to_vec()),
        ("one byte long", [&credential_request[..], &[0]].concat()),
        ("all 0xff", vec![0xff; CREDENTIAL_REQUEST_LEN]),
        ("oversized (60 KiB)", random(60 * 1024)),
    ] {
        let w = if what == "all 0xff" {
            invalid(field, "invalid_encoding")
        } else if bytes.is_empty() {
            invalid(field, "wrong_length")
        } else {
            wrong_size(field, bytes.len(), CREDENTIAL_REQUEST_LEN)
        };
        m.check(
            &format!("RecoverLogin: credential request {what}"),
            as_account(next(), "t-login")?
                .recover_login(charged.attempt_id.clone(), bytes)
                .await,
            w,
        );
    }
    for (what, bytes) in &others {
        if bytes.len() == CREDENTIAL_REQUEST_LEN {
            continue;
        }
        m.check(
            &format!("RecoverLogin: {what} as the credential request"),
            as_account(next(), "t-login")?
                .recover_login(charged.attempt_id.clone(), bytes.to_vec())
                .await,
            wrong_size(field, bytes.len(), CREDENTIAL_REQUEST_LEN),
        );
    }
    let not_charged = Want {
        code: Code::FailedPrecondition,
        field: None,
        reason: Some("not_charged"),
    };
    for (what, attempt_id) in [
        ("an attempt never started", random(16)),
        (
            "an attempt whose RecoverStart was refused",
            refused_attempt.clone(),
        ),
        (
            "another account's charged attempt",
            sample.attempt_id.clone(),
        ),
    ] {
        m.check(
            &format!("RecoverLogin: {what}"),
            as_account(next(), "t-login")?
                .recover_login(attempt_id, charged.credential_request.clone())
                .await,
            not_charged,
        );
    }
    m.check(
        "RecoverLogin: an account with no record",
        as_account(next(), "nobody-here")?
            .recover_login(
                charged.attempt_id.clone(),
                charged.credential_request.clone(),
            )
            .await,
        want(Code::NotFound),
    );
    // Logins on a charged attempt, again and again: answered, and nothing more charged.
    for n in 0..3 {
        as_account(next(), "t-login")?
            .recover_login(
                charged.attempt_id.clone(),
                charged.credential_request.clone(),
            )
            .await
            .map_err(|s| anyhow::anyhow!("login {n} on a charged attempt: {s:?}"))?;
    }
    assert_eq!(
        login_owner.status().await?.guesses_used,
        1,
        "RecoverLogin charged"
    );
    // Once the recovery reset the counter, its attempt is no longer charged.
    as_account(next(), "t-login")?
        .recover_finish(charged.finish()?)
        .await
        .map_err(|s| anyhow::anyhow!("t-login's finish: {s:?}"))?;
    assert_eq!(login_owner.status().await?.guesses_used, 0);
    m.check(
        "RecoverLogin: an attempt reset since",
        as_account(next(), "t-login")?
            .recover_login(
                charged.attempt_id.clone(),
                charged.credential_request.clone(),
            )
            .await,
        not_charged,
    );
    // A destroyed record: its last charge was a wrong guess, the next start destroyed it.
    let doomed = cluster.vault(&ids, "t-doomed").await?;
    doomed
        .register(&account("t-doomed"), password(RIGHT), Some(1))
        .await?;
    let last = as_account(next(), "t-doomed")?
        .login("t-doomed", "wrong", &cluster_name)
        .await?;
    assert!(
        matches!(last.finished, Err(bkv_client::ClientError::WrongPassword)),
        "a wrong password: {:?}",
        last.finished
    );
    let destroyed = Want {
        code: Code::FailedPrecondition,
        field: None,
        reason: Some("destroyed"),
    };
    m.check(
        "RecoverStart: the start after the last guess",
        as_account(next(), "t-doomed")?
            .recover_start(random(16), raw::blind(&account("t-doomed"), RIGHT)?.1)
            .await,
        destroyed,
    );
    m.check(
        "RecoverLogin: an attempt of a destroyed record",
        as_account(next(), "t-doomed")?
            .recover_login(last.attempt_id.clone(), last.credential_request.clone())
            .await,
        destroyed,
    );

    // Phase 3: RecoverFinish with bad tickets, finalizations and reset signatures. Each
    // scenario has its own account, registered here.
    let mut register = Vec::new();
    for name in [
        "t-plain",
        "t-other",
        "t-version",
        "t-expired",
        "t-replay",
        "t-cross",
    ] {
        let client = cluster.vault(&ids, name).await?;
        client
            .register(&account(name), password(RIGHT), None)
            .await?;
        register.push((name, client));
    }
    // The expired ticket's login comes first; it is used last, once it has expired.
    let late = as_account(next(), "t-expired")?
        .login("t-expired", RIGHT, &cluster_name)
        .await?;
    let late_at = Instant::now();
    // Bad tickets, finalizations and reset signatures with t-plain's token, sent side by
    // side (the good ticket must still be valid at the end), then the good request.
    let plain = as_account(next(), "t-plain")?
        .login("t-plain", RIGHT, &cluster_name)
        .await?;
    let good = plain.finish()?;
    let ticket = good.ticket.clone();
    let finalization = good.credential_finalization.clone();
    let signature = good.reset_signature.clone();
    let request = |ticket: &[u8], finalization: &[u8], signature: &[u8]| RecoverFinishRequest {
        ticket: ticket.to_vec(),
        credential_finalization: finalization.to_vec(),
        reset_signature: signature.to_vec(),
    };
    let mut finishes: Vec<(String, RecoverFinishRequest, Want)> = Vec::new();
    let field = "ticket";
    let mut tampered_body = ticket.clone();
    let mid = tampered_body.len() / 2;
    tampered_body[mid] ^= 0x01;
    let mut tampered_tail = ticket.clone();
    if let Some(last) = tampered_tail.last_mut() {
        *last ^= 0x80;
    }
    let mut tampered_head = ticket.clone();
    tampered_head[0] ^= 0xff;
    for (what, bad_ticket, reason) in [
        ("empty ticket", vec![], Some("empty")),
        (
            "ticket over 4 KiB",
            random(MAX_TICKET_LEN + 1),
            Some("too_large"),
        ),
        ("one-byte ticket", vec![1], None),
        ("garbage ticket", random(ticket.len()), None),
        ("ticket with a flipped byte inside", tampered_body, None),
        ("ticket with a flipped tag byte", tampered_tail, None),
        ("ticket with a flipped header byte", tampered_head, None),
        (
            "truncated ticket",
            ticket[..ticket.len() - 1].to_vec(),
            None,
        ),
        (
            "ticket with a byte appended",
            [&ticket[..], &[0]].concat(),
            None,
        ),
        (
            "a credential response as the ticket",
            plain.logged.credential_response.clone(),
            None,
        ),
    ] {
        finishes.push((
            what.to_string(),
            request(&bad_ticket, &finalization, &signature),
            Want {
                code: Code::InvalidArgument,
                field: Some(field),
                reason,
            },
        ));
    }
    let field = "credential_finalization";
    for (what, bytes) in [
        ("empty finalization", vec![]),
        ("finalization one byte short", finalization[1..].to_vec()),
        (
            "finalization one byte long",
            [&finalization[..], &[0]].concat(),
        ),
    ] {
        let w = if bytes.is_empty() {
            invalid(field, "wrong_length")
        } else {
            wrong_size(field, bytes.len(), CREDENTIAL_FINALIZATION_LEN)
        };
        finishes.push((what.to_string(), request(&ticket, &bytes, &signature), w));
    }
    for (what, bytes) in &others {
        if bytes.len() == CREDENTIAL_FINALIZATION_LEN {
            continue;
        }
        finishes.push((
            format!("{what} as the finalization"),
            request(&ticket, bytes, &signature),
            wrong_size(field, bytes.len(), CREDENTIAL_FINALIZATION_LEN),
        ));
    }
    // Same length as a finalization, but another step's message: it does not verify.
    assert_eq!(REGISTRATION_RESPONSE_LEN, CREDENTIAL_FINALIZATION_LEN);
    let denied = Want {
        code: Code::PermissionDenied,
        field: None,
        reason: Some("wrong_password"),
    };
    finishes.push((
        "a registration response as the finalization".into(),
        request(&ticket, &registration_response, &signature),
        denied,
    ));
    // The reset signature: missing or of the wrong length (refused before anything is
    // committed), or of the right length but not the client's signature of this reset
    // (refused by every node as it applies the reset: the counter stays).
    let field = "reset_signature";
    for (what, bytes) in [
        ("no reset signature", vec![]),
        ("reset signature one byte short", signature[1..].to_vec()),
        (
            "reset signature one byte long",
            [&signature[..], &[0]].concat(),
        ),
        ("reset signature of 1 KiB", random(1024)),
    ] {
        finishes.push((
            what.into(),
            request(&ticket, &finalization, &bytes),
            invalid(field, "wrong_length"),
        ));
    }
    let mut flipped = signature.clone();
    flipped[10] ^= 0x01;
    for (what, bytes) in [
        ("a forged (random) reset signature", random(64)),
        ("the reset signature with a flipped bit", flipped),
        ("a zero reset signature", vec![0; 64]),
        (
            "another account's reset signature",
            sample_finish.reset_signature.to_vec(),
        ),
        (
            "a registration response as the reset signature",
            registration_response.clone(),
        ),
        (
            "the finalization as the reset signature",
            finalization.clone(),
        ),
    ] {
        finishes.push((
            what.into(),
            request(&ticket, &finalization, &bytes),
            invalid(field, "does_not_verify"),
        ));
    }
    // A ticket of another account, with this account's token.
    let other = as_account(next(), "t-other")?
        .login("t-other", RIGHT, &cluster_name)
        .await?;
    finishes.push((
        "another account's ticket".into(),
        other.finish()?,
        invalid("ticket", "other_account"),
    ));
    let mut side_by_side = tokio::task::JoinSet::new();
    for (n, (what, msg, w)) in finishes.into_iter().enumerate() {
        let caller = as_account(next(), "t-plain")?;
        side_by_side.spawn(async move {
            let got = caller.recover_finish(msg).await;
            (n, what, got, w)
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = side_by_side.join_next().await {
        answers.push(answer?);
    }
    answers.sort_by_key(|a| a.0);
    for (_, what, got, w) in answers {
        m.check(&format!("RecoverFinish: {what}"), got, w);
    }
    // No refused finish reset the counter: the login's charge is still on it.
    let used = as_account(next(), "t-plain")?.status().await?.guesses_used;
    if used != 1 {
        m.failures.push(format!(
            "RecoverFinish: after the refused finishes t-plain has {used} guesses used, not \
             the login's 1 (a forged reset signature reset the counter?)"
        ));
    }
    // The good request still works (the cases above were refused, not consumed), and
    // resets.
    as_account(next(), "t-plain")?
        .recover_finish(good.clone())
        .await
        .map_err(|s| anyhow::anyhow!("the good ticket after the bad ones: {s:?}"))?;
    assert_eq!(
        as_account(next(), "t-plain")?.status().await?.guesses_used,
        0,
        "the good finish reset the counter"
    );
    // Another login's finalization: PERMISSION_DENIED with the guesses left. Another
    // login's reset signature, with this login's finalization: the login verifies, the
    // reset (signed for the other charge) does not.
    let cross_a = as_account(next(), "t-cross")?
        .login("t-cross", RIGHT, &cluster_name)
        .await?;
    let cross_b = as_account(next(), "t-cross")?
        .login("t-cross", RIGHT, &cluster_name)
        .await?;
    let (a, b) = (cross_a.finish()?, cross_b.finish()?);
    let answer = as_account(next(), "t-cross")?
        .recover_finish(request(
            &b.ticket,
            &a.credential_finalization,
            &b.reset_signature,
        ))
        .await;
    if let Err(s) = &answer {
        let left = error_details(s).and_then(|d| d.guesses_remaining());
        assert_eq!(
            left,
            Some(cross_b.started.guesses_remaining),
            "guesses_remaining in the details of {s:?}"
        );
    }
    m.check(
        "RecoverFinish: another login's finalization",
        answer,
        denied,
    );
    m.check(
        "RecoverFinish: the reset signature of another charge",
        as_account(next(), "t-cross")?
            .recover_finish(request(
                &b.ticket,
                &b.credential_finalization,
                &a.reset_signature,
            ))
            .await,
        invalid("reset_signature", "does_not_verify"),
    );
    let used = as_account(next(), "t-cross")?.status().await?.guesses_used;
    if used != 2 {
        m.failures.push(format!(
            "RecoverFinish: t-cross has {used} guesses used after two logins and no valid \
             finish, not 2"
        ));
    }

    // A ticket of a version superseded by a re-registration.
    let old = as_account(next(), "t-version")?
        .login("t-version", RIGHT, &cluster_name)
        .await?;
    let (_, client) = &register[2];
    client
        .register(&account("t-version"), password(RIGHT), None)
        .await?;
    m.check(
        "RecoverFinish: a ticket of a superseded version",
        as_account(next(), "t-version")?
            .recover_finish(old.finish()?)
            .await,
        Want {
            code: Code::FailedPrecondition,
            field: None,
            reason: Some("superseded"),
        },
    );

    // An expired ticket (its login was the first of this phase).
    let expired_at = late_at + Duration::from_millis(TICKET_TTL_SECS * 1000 + 500);
    tokio::time::sleep(expired_at.saturating_duration_since(Instant::now())).await;
    m.check(
        "RecoverFinish: an expired ticket",
        as_account(next(), "t-expired")?
            .recover_finish(late.finish()?)
            .await,
        Want {
            code: Code::FailedPrecondition,
            field: None,
            reason: Some("ticket_expired"),
        },
    );

    // A finish replayed after a later charge: refused (the ticket was used), and the later
    // charge stays on the counter.
    let first = as_account(next(), "t-replay")?
        .login("t-replay", RIGHT, &cluster_name)
        .await?;
    as_account(next(), "t-replay")?
        .recover_finish(first.finish()?)
        .await
        .map_err(|s| anyhow::anyhow!("first finish: {s:?}"))?;
    let _later = as_account(next(), "t-replay")?
        .login("t-replay", RIGHT, &cluster_name)
        .await?;
    let replay = as_account(next(), "t-replay")?
        .recover_finish(first.finish()?)
        .await;
    let used = as_account(next(), "t-replay")?.status().await?.guesses_used;
    if used != 1 {
        m.failures.push(format!(
            "RecoverFinish: a finish replayed after a later charge reset the counter to \
             {used} (answer {replay:?})"
        ));
    }
    // Tickets are single-use: the replay is refused, and the later charge stays counted.
    m.check(
        "RecoverFinish: a used ticket replayed after a later charge",
        replay,
        Want {
            code: Code::FailedPrecondition,
            field: None,
            reason: Some("ticket_used"),
        },
    );

    // Phase 4: gRPC messages over limits.max_client_message_bytes (64 KiB here).
    for (what, size) in [("70 KiB", 70 * 1024), ("4 MiB", 4 * 1024 * 1024)] {
        m.check(
            &format!("RegisterFinish of {what}"),
            mallory(next())?
                .register_finish(RegisterFinishRequest {
                    request_id: random(16),
                    sealed_key: random(size),
                    ..finish_request(&upload)
                })
                .await,
            want(Code::OutOfRange),
        );
    }

    // The same limit on the other services of the client port (no token needed there).
    let long_name = "x".repeat(100 * 1024);
    let health = HealthClient::new(channel(next())?)
        .check(HealthCheckRequest {
            service: long_name.clone(),
        })
        .await;
    m.check("Health.Check of 100 KiB", health, want(Code::OutOfRange));
    let reflection = ServerReflectionClient::new(channel(next())?)
        .server_reflection_info(tokio_stream::iter([ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(long_name)),
        }]))
        .await;
    // tonic-reflection ends its answer stream, without a status, at a request that does
    // not decode: an unanswered end is the refusal (a 100 KiB name that was read would get
    // NOT_FOUND for the symbol).
    let reflection = match reflection {
        Ok(answers) => match answers.into_inner().message().await {
            Ok(None) => Err(tonic::Status::out_of_range("dropped unanswered")),
            other => other.map(|answer| format!("{answer:?}")),
        },
        Err(status) => Err(status),
    };
    m.check(
        "reflection request of 100 KiB",
        reflection,
        want(Code::OutOfRange),
    );

    println!(
        "bad-input matrix: {} cases ({} token cases on three calls each), {} ms",
        m.cases,
        token_cases,
        started_at.elapsed().as_millis()
    );
    assert!(
        m.failures.is_empty(),
        "{} of {} cases answered wrongly:\n{}",
        m.failures.len(),
        m.cases,
        m.failures.join("\n")
    );

    // Phase 5: the cluster serves, agrees, and the victim is as it was.
    for id in &ids {
        cluster.wait_serving(*id, Duration::from_secs(5)).await?;
    }
    let digest = cluster
        .wait_digests_equal(&ids, Duration::from_secs(10))
        .await?;
    for (n, id) in ids.iter().enumerate() {
        let after = as_account(n, "victim")?.status().await?;
        assert_eq!(after, victim_before, "the victim's status on node {id}");
    }
    let back = victim.recover(&account("victim"), password(RIGHT)).await?;
    assert_eq!(back.key.expose(), registered.key.expose());
    println!(
        "after the matrix: digests equal at index {}, victim unchanged (guesses used {}), \
         key recovered",
        digest.0, victim_before.guesses_used
    );
    Ok(())
}
