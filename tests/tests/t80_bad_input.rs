//! A bad-input matrix against a running three-node cluster: account tokens that must not
//! pass (wrong audience, expired, unsigned, `alg: none`, unknown issuer, subjects with
//! control characters or invalid UTF-8, ...), fields of the wrong size or encoding, OPAQUE
//! messages of another protocol step, tickets that are empty, oversized, garbage, tampered,
//! of another account, of a superseded version, expired, or replayed after a later charge,
//! and a gRPC message over `limits.max_client_message_bytes`. Each case gets the documented
//! status and, where there is one, the `ErrorDetail` field and reason. After the matrix the
//! cluster serves, the replicas agree, and the account the bad tokens named is unchanged.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bkv_client::proto::vault_client::VaultClient as RawVault;
use bkv_client::proto::{
    ActivateRequest, RecoverFinishRequest, RecoverStartRequest, RecoverStartResponse,
    RegisterFinishRequest, RegisterStartRequest, StatusRequest, StatusResponse,
};
use bkv_client::{BackupKey, KsfParams, Recovery, Registration, error_detail};
use bkv_core::protocol::{
    CREDENTIAL_FINALIZATION_LEN, CREDENTIAL_REQUEST_LEN, CREDENTIAL_RESPONSE_LEN,
    MAX_SEALED_KEY_LEN, MAX_TICKET_LEN, REGISTRATION_REQUEST_LEN, REGISTRATION_RESPONSE_LEN,
    REGISTRATION_UPLOAD_LEN,
};
use bkv_tests::{Cluster, ClusterOptions, account, password, raw};
use ed25519_dalek::{Signer as _, SigningKey};
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
        let detail = error_detail(&status).unwrap_or_default();
        let mut wrong = Vec::new();
        if status.code() != want.code {
            wrong.push(format!("code {:?}", status.code()));
        }
        if let Some(field) = want.field
            && detail.field != field
        {
            wrong.push(format!("field {:?}", detail.field));
        }
        if let Some(reason) = want.reason
            && detail.reason != reason
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

    async fn register_start(
        &self,
        registration_request: Vec<u8>,
    ) -> Result<Vec<u8>, tonic::Status> {
        let r = self.request(RegisterStartRequest {
            registration_request,
        })?;
        Ok(self
            .client()
            .register_start(r)
            .await?
            .into_inner()
            .registration_response)
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
        credential_request: Vec<u8>,
    ) -> Result<RecoverStartResponse, tonic::Status> {
        let r = self.request(RecoverStartRequest {
            attempt_id,
            credential_request,
        })?;
        Ok(self.client().recover_start(r).await?.into_inner())
    }

    async fn recover_finish(
        &self,
        ticket: Vec<u8>,
        credential_finalization: Vec<u8>,
    ) -> Result<u64, tonic::Status> {
        let r = self.request(RecoverFinishRequest {
            ticket,
            credential_finalization,
        })?;
        Ok(self.client().recover_finish(r).await?.into_inner().version)
    }

    async fn status(&self) -> Result<StatusResponse, tonic::Status> {
        let r = self.request(StatusRequest {})?;
        Ok(self.client().status(r).await?.into_inner())
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

/// A login started on the vault and finished on the client: what a RecoverFinish needs.
struct Login {
    ticket: Vec<u8>,
    finalization: Vec<u8>,
    started: RecoverStartResponse,
}

/// RecoverStart with `password` for `account` through `caller`, and the client's finish.
async fn login(caller: &Caller, name: &str, pw: &str) -> anyhow::Result<Login> {
    let (recovery, credential_request) = Recovery::start(password(pw))?;
    let started = caller
        .recover_start(random(16), credential_request)
        .await
        .map_err(|s| anyhow::anyhow!("RecoverStart for {name}: {s:?}"))?;
    let (finalization, _session) = recovery.finish(
        &started.credential_response,
        &account(name),
        &KsfParams::light(),
    )?;
    Ok(Login {
        ticket: started.ticket.clone(),
        finalization,
        started,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_matrix_of_bad_input_gets_the_documented_answers_and_changes_nothing()
-> anyhow::Result<()> {
    let mut options = ClusterOptions::new(3);
    options.ticket_ttl_secs = TICKET_TTL_SECS;
    let cluster = Cluster::start_with(options).await?;
    let ids = cluster.ids();
    let started_at = Instant::now();
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
    let (_, credential_request) = Recovery::start(password(RIGHT))?;
    let token_cases = tokens.len();
    for (what, token) in &tokens {
        let caller = with_token(next(), token.clone())?;
        let got = caller
            .recover_start(random(16), credential_request.clone())
            .await;
        m.check(
            &format!("token: {what} (RecoverStart)"),
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
    let (registration, registration_request) = Registration::start(password(RIGHT))?;
    let registration_response = mallory(next())?
        .register_start(registration_request.clone())
        .await
        .map_err(|s| anyhow::anyhow!("RegisterStart: {s:?}"))?;
    let upload = registration.finish(
        &registration_response,
        &account("mallory"),
        &BackupKey::generate(),
        &KsfParams::light(),
    )?;
    assert_eq!(upload.registration_upload.len(), REGISTRATION_UPLOAD_LEN);
    let finalization_sample = random(CREDENTIAL_FINALIZATION_LEN);
    let credential_response_sample = random(CREDENTIAL_RESPONSE_LEN);
    let others: [(&str, &[u8]); 6] = [
        ("a registration request", &registration_request),
        ("a registration response", &registration_response),
        ("a registration upload", &upload.registration_upload),
        ("a credential request", &credential_request),
        ("a credential response", &credential_response_sample),
        ("a credential finalization", &finalization_sample),
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

    // RegisterFinish: one bad field at a time, the others valid.
    let finish = |request_id: Vec<u8>, upload_bytes: Vec<u8>, sealed: Vec<u8>, limit: u32| {
        RegisterFinishRequest {
            request_id,
            registration_upload: upload_bytes,
            sealed_key: sealed,
            guess_limit: limit,
        }
    };
    let good_upload = upload.registration_upload.clone();
    let good_sealed = upload.sealed_key.clone();
    for (what, request_id) in [
        ("empty request_id", vec![]),
        ("15-byte request_id", random(15)),
        ("17-byte request_id", random(17)),
        ("1 KiB request_id", random(1024)),
    ] {
        m.check(
            &format!("RegisterFinish: {what}"),
            mallory(next())?
                .register_finish(finish(
                    request_id,
                    good_upload.clone(),
                    good_sealed.clone(),
                    0,
                ))
                .await,
            invalid("request_id", "wrong_length"),
        );
    }
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
        m.check(
            &format!("RegisterFinish: {what}"),
            mallory(next())?
                .register_finish(finish(random(16), bytes, good_sealed.clone(), 0))
                .await,
            w,
        );
    }
    m.check(
        "RegisterFinish: upload of all 0xff",
        mallory(next())?
            .register_finish(finish(
                random(16),
                vec![0xff; REGISTRATION_UPLOAD_LEN],
                good_sealed.clone(),
                0,
            ))
            .await,
        invalid(field, "invalid_encoding"),
    );
    for (what, bytes) in &others {
        if bytes.len() == REGISTRATION_UPLOAD_LEN {
            continue;
        }
        m.check(
            &format!("RegisterFinish: {what} as the upload"),
            mallory(next())?
                .register_finish(finish(random(16), bytes.to_vec(), good_sealed.clone(), 0))
                .await,
            wrong_size(field, bytes.len(), REGISTRATION_UPLOAD_LEN),
        );
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
        m.check(
            &format!("RegisterFinish: {what}"),
            mallory(next())?
                .register_finish(finish(random(16), good_upload.clone(), sealed, 0))
                .await,
            invalid("sealed_key", reason),
        );
    }
    for limit in [11, 1_001, u32::MAX] {
        m.check(
            &format!("RegisterFinish: guess_limit {limit}"),
            mallory(next())?
                .register_finish(finish(
                    random(16),
                    good_upload.clone(),
                    good_sealed.clone(),
                    limit,
                ))
                .await,
            Want {
                code: Code::InvalidArgument,
                field: Some("guess_limit"),
                reason: None,
            },
        );
    }

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

    // RecoverStart.
    for (what, attempt_id) in [
        ("empty attempt_id", vec![]),
        ("15-byte attempt_id", random(15)),
        ("17-byte attempt_id", random(17)),
    ] {
        m.check(
            &format!("RecoverStart: {what}"),
            as_account(next(), "victim")?
                .recover_start(attempt_id, credential_request.clone())
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
            &format!("RecoverStart: credential request {what}"),
            as_account(next(), "victim")?
                .recover_start(random(16), bytes)
                .await,
            w,
        );
    }
    for (what, bytes) in &others {
        if bytes.len() == CREDENTIAL_REQUEST_LEN {
            continue;
        }
        m.check(
            &format!("RecoverStart: {what} as the credential request"),
            as_account(next(), "victim")?
                .recover_start(random(16), bytes.to_vec())
                .await,
            wrong_size(field, bytes.len(), CREDENTIAL_REQUEST_LEN),
        );
    }
    m.check(
        "RecoverStart: a well-formed request for an account with no record",
        as_account(next(), "nobody-here")?
            .recover_start(random(16), credential_request.clone())
            .await,
        want(Code::NotFound),
    );
    // One attempt id, two credential requests: the second is refused, and charges nothing.
    let reuse = cluster.vault(&ids, "reuser").await?;
    reuse
        .register(&account("reuser"), password(RIGHT), None)
        .await?;
    let attempt = random(16);
    as_account(next(), "reuser")?
        .recover_start(attempt.clone(), credential_request.clone())
        .await
        .map_err(|s| anyhow::anyhow!("first use of an attempt id: {s:?}"))?;
    let (_, another_request) = Recovery::start(password(RIGHT))?;
    m.check(
        "RecoverStart: an attempt id reused with another credential request",
        as_account(next(), "reuser")?
            .recover_start(attempt.clone(), another_request)
            .await,
        invalid("attempt_id", "reused"),
    );
    assert_eq!(
        reuse.status().await?.guesses_used,
        1,
        "the refused reuse charged"
    );

    // Phase 3: RecoverFinish with bad tickets and finalizations. Each scenario has its own
    // account, registered here.
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
    let late = login(&as_account(next(), "t-expired")?, "t-expired", RIGHT).await?;
    let late_at = Instant::now();
    // Bad tickets and finalizations with t-plain's token, sent side by side (the good
    // ticket must still be valid at the end), then the good pair.
    let plain = login(&as_account(next(), "t-plain")?, "t-plain", RIGHT).await?;
    let finalization = plain.finalization.clone();
    let mut finishes: Vec<(String, Vec<u8>, Vec<u8>, Want)> = Vec::new();
    let field = "ticket";
    let mut tampered_body = plain.ticket.clone();
    let mid = tampered_body.len() / 2;
    tampered_body[mid] ^= 0x01;
    let mut tampered_tail = plain.ticket.clone();
    if let Some(last) = tampered_tail.last_mut() {
        *last ^= 0x80;
    }
    let mut tampered_head = plain.ticket.clone();
    tampered_head[0] ^= 0xff;
    for (what, ticket, reason) in [
        ("empty ticket", vec![], Some("empty")),
        (
            "ticket over 4 KiB",
            random(MAX_TICKET_LEN + 1),
            Some("too_large"),
        ),
        ("one-byte ticket", vec![1], None),
        ("garbage ticket", random(plain.ticket.len()), None),
        ("ticket with a flipped byte inside", tampered_body, None),
        ("ticket with a flipped tag byte", tampered_tail, None),
        ("ticket with a flipped header byte", tampered_head, None),
        (
            "truncated ticket",
            plain.ticket[..plain.ticket.len() - 1].to_vec(),
            None,
        ),
        (
            "ticket with a byte appended",
            [&plain.ticket[..], &[0]].concat(),
            None,
        ),
        (
            "a credential response as the ticket",
            plain.started.credential_response.clone(),
            None,
        ),
    ] {
        finishes.push((
            what.to_string(),
            ticket,
            finalization.clone(),
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
        finishes.push((what.to_string(), plain.ticket.clone(), bytes, w));
    }
    for (what, bytes) in &others {
        if bytes.len() == CREDENTIAL_FINALIZATION_LEN {
            continue;
        }
        finishes.push((
            format!("{what} as the finalization"),
            plain.ticket.clone(),
            bytes.to_vec(),
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
        plain.ticket.clone(),
        registration_response.clone(),
        denied,
    ));
    // A ticket of another account, with this account's token.
    let other = login(&as_account(next(), "t-other")?, "t-other", RIGHT).await?;
    finishes.push((
        "another account's ticket".into(),
        other.ticket.clone(),
        other.finalization.clone(),
        invalid("ticket", "other_account"),
    ));
    let mut side_by_side = tokio::task::JoinSet::new();
    for (n, (what, ticket, fin, w)) in finishes.into_iter().enumerate() {
        let caller = as_account(next(), "t-plain")?;
        side_by_side.spawn(async move {
            let got = caller.recover_finish(ticket, fin).await;
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
    // The good pair still works (the cases above were refused, not consumed).
    as_account(next(), "t-plain")?
        .recover_finish(plain.ticket.clone(), plain.finalization.clone())
        .await
        .map_err(|s| anyhow::anyhow!("the good ticket after the bad ones: {s:?}"))?;
    // Another login's finalization: PERMISSION_DENIED with the guesses left.
    let cross_a = login(&as_account(next(), "t-cross")?, "t-cross", RIGHT).await?;
    let cross_b = login(&as_account(next(), "t-cross")?, "t-cross", RIGHT).await?;
    let answer = as_account(next(), "t-cross")?
        .recover_finish(cross_b.ticket.clone(), cross_a.finalization.clone())
        .await;
    if let Err(s) = &answer {
        let left = error_detail(s).and_then(|d| d.guesses_remaining);
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

    // A ticket of a version superseded by a re-registration.
    let old = login(&as_account(next(), "t-version")?, "t-version", RIGHT).await?;
    let (_, client) = &register[2];
    client
        .register(&account("t-version"), password(RIGHT), None)
        .await?;
    m.check(
        "RecoverFinish: a ticket of a superseded version",
        as_account(next(), "t-version")?
            .recover_finish(old.ticket.clone(), old.finalization.clone())
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
            .recover_finish(late.ticket.clone(), late.finalization.clone())
            .await,
        Want {
            code: Code::FailedPrecondition,
            field: None,
            reason: Some("expired"),
        },
    );

    // A ticket replayed after a later charge: the key may come back again (the password
    // was proven), but the later charge stays on the counter.
    let first = login(&as_account(next(), "t-replay")?, "t-replay", RIGHT).await?;
    as_account(next(), "t-replay")?
        .recover_finish(first.ticket.clone(), first.finalization.clone())
        .await
        .map_err(|s| anyhow::anyhow!("first finish: {s:?}"))?;
    let _later = login(&as_account(next(), "t-replay")?, "t-replay", RIGHT).await?;
    let replay = as_account(next(), "t-replay")?
        .recover_finish(first.ticket.clone(), first.finalization.clone())
        .await;
    m.cases += 1;
    let used = as_account(next(), "t-replay")?.status().await?.guesses_used;
    if used != 1 {
        m.failures.push(format!(
            "RecoverFinish: a ticket replayed after a later charge reset the counter to \
             {used} (answer {replay:?})"
        ));
    }
    println!("replayed ticket after a later charge: answer {replay:?}, guesses used {used}");

    // Phase 4: gRPC messages over limits.max_client_message_bytes (64 KiB here).
    for (what, size) in [("70 KiB", 70 * 1024), ("4 MiB", 4 * 1024 * 1024)] {
        m.check(
            &format!("RegisterFinish of {what}"),
            mallory(next())?
                .register_finish(finish(random(16), good_upload.clone(), random(size), 0))
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
        "bad-input matrix: {} cases ({} token cases on two calls each), {} ms",
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
