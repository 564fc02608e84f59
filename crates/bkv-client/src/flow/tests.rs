//! The client flows of protocol v2 against the vault's own service (bkv-vault) over an
//! in-memory replica with a software sealer and three software share-holders, called in
//! process: the full register and recover story, wrong passwords, forged reset signatures,
//! altered evaluations and share maps, malformed messages, and a canary scan of everything
//! that leaves a node or is stored.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bkv_core::ids::{AccountId, ChargeNumber, RecordVersion};
use bkv_core::opaque::testing::FakeSealer;
use bkv_core::protocol::BackupKey;
use bkv_core::token::TrustedIssuers;
use bkv_devkit::testing::{TEST_AUDIENCE, TEST_ISSUER, authorized};
use bkv_devkit::{MemoryReplica, ReplicaOptions, issue_token};
use bkv_proto::v1::vault_server::Vault as _;
use bkv_proto::v1::{
    ActivateRequest, RecoverFinishRequest, RecoverFinishResponse, RecoverLoginRequest,
    RecoverLoginResponse, RecoverStartRequest, RecoverStartResponse, RegisterStartRequest,
};
use bkv_vault::VaultService;
use ed25519_dalek::SigningKey;
use prost::Message as _;
use rand::rngs::OsRng;
use secrecy::SecretString;
use tonic::{Code, Status};

use super::*;
use crate::{ClientError, KsfParams};

/// A vault node in process: the vault service over an in-memory replica (three software
/// share-holders, threshold 2).
struct Node {
    replica: MemoryReplica<FakeSealer>,
    service: VaultService<MemoryReplica<FakeSealer>>,
    token: String,
    identity_key: [u8; 32],
}

/// Everything the node produced in one register + recover story, as it would be sent or
/// stored, serialized.
#[derive(Default)]
struct Wire(Vec<(&'static str, Vec<u8>)>);

impl Wire {
    fn push(&mut self, what: &'static str, bytes: impl Into<Vec<u8>>) {
        self.0.push((what, bytes.into()));
    }
}

/// A charged recovery attempt: what `RecoverStart` answered, for its attempt id.
struct Started {
    attempt_id: Vec<u8>,
    response: RecoverStartResponse,
}

impl Started {
    fn evaluations(&self) -> Vec<ShareEvaluation> {
        self.response
            .evaluations
            .iter()
            .map(ShareEvaluation::from)
            .collect()
    }

    fn version(&self) -> RecordVersion {
        RecordVersion(self.response.version)
    }

    fn charge(&self) -> ChargeNumber {
        ChargeNumber(self.response.charge)
    }
}

impl Node {
    async fn new() -> Self {
        let issuer = SigningKey::generate(&mut OsRng);
        let mut issuers = TrustedIssuers::new(3600, 60);
        issuers.insert(TEST_ISSUER, issuer.verifying_key());
        let options = ReplicaOptions {
            cluster_name: TEST_AUDIENCE.into(),
            keep_log: true,
            ..ReplicaOptions::default()
        };
        let replica = MemoryReplica::bootstrap(FakeSealer::new(), issuers, options)
            .await
            .unwrap();
        let token = issue_token(&issuer, TEST_ISSUER, TEST_AUDIENCE, &account(), 600).unwrap();
        Self {
            service: replica.service(),
            identity_key: replica.identity_key(),
            replica,
            token,
        }
    }

    /// The cluster as a client that pins this node's identity key trusts it.
    fn trust(&self) -> ClusterTrust<'_> {
        ClusterTrust {
            cluster_name: TEST_AUDIENCE,
            identity_key: &self.identity_key,
        }
    }

    async fn register_start(&self, request: &[u8]) -> RegisterStarted {
        let message = RegisterStartRequest {
            registration_request: request.to_vec(),
        };
        let answer = self
            .service
            .register_start(authorized(message, &self.token));
        RegisterStarted::from_response(answer.await.unwrap().into_inner()).unwrap()
    }

    /// Stages and activates the upload; returns the active version.
    async fn register_finish(&self, upload: &RegisterUpload) -> RecordVersion {
        let message = upload.clone().into_request(vec![8; 16]);
        let staged = self
            .service
            .register_finish(authorized(message, &self.token));
        let version = staged.await.unwrap().into_inner().version;
        let message = ActivateRequest { version };
        let active = self.service.activate(authorized(message, &self.token));
        RecordVersion(active.await.unwrap().into_inner().version)
    }

    /// `RecoverStart` of a fresh attempt: charges a guess and gathers the evaluations.
    async fn recover_start(&self, blinded_element: &[u8]) -> Started {
        let attempt_id = rand::random::<[u8; 16]>().to_vec();
        let message = RecoverStartRequest {
            attempt_id: attempt_id.clone(),
            blinded_element: blinded_element.to_vec(),
        };
        let answer = self.service.recover_start(authorized(message, &self.token));
        Started {
            attempt_id,
            response: answer.await.unwrap().into_inner(),
        }
    }

    async fn recover_login(
        &self,
        started: &Started,
        credential_request: &[u8],
    ) -> RecoverLoginResponse {
        let message = RecoverLoginRequest {
            attempt_id: started.attempt_id.clone(),
            credential_request: credential_request.to_vec(),
        };
        let answer = self.service.recover_login(authorized(message, &self.token));
        answer.await.unwrap().into_inner()
    }

    async fn recover_finish(
        &self,
        ticket: &[u8],
        finalization: &[u8],
        reset_signature: &[u8],
    ) -> Result<RecoverFinishResponse, Status> {
        let message = RecoverFinishRequest {
            ticket: ticket.to_vec(),
            credential_finalization: finalization.to_vec(),
            reset_signature: reset_signature.to_vec(),
        };
        let answer = self
            .service
            .recover_finish(authorized(message, &self.token));
        answer.await.map(tonic::Response::into_inner)
    }

    /// A recovery with `pw` up to the client's OPAQUE finish: start, harden, login. Returns
    /// the login, the attempt and the login's answer.
    async fn login(&self, pw: &str, wire: &mut Wire) -> (Login, Started, RecoverLoginResponse) {
        let (recovery, blinded) = Recovery::start(&account(), password(pw)).unwrap();
        wire.push("blinded_element", blinded.clone());
        let started = self.recover_start(&blinded).await;
        wire.push("recover_start_response", started.response.encode_to_vec());
        wire.push("recover_start_debug", format!("{:?}", started.response));
        let (login, credential_request) = recovery
            .harden(&blinded, started.response.threshold, &started.evaluations())
            .unwrap();
        wire.push("credential_request", credential_request.clone());
        let logged = self.recover_login(&started, &credential_request).await;
        wire.push("recover_login_response", logged.encode_to_vec());
        (login, started, logged)
    }
}

fn account() -> AccountId {
    AccountId::parse("carol@example.com").unwrap()
}

fn password(s: &str) -> SecretString {
    SecretString::from(s)
}

/// The record's Argon2id parameters, as `RecoverStart` returned them.
fn record_ksf(started: &Started) -> KsfParams {
    let k = started.response.ksf.unwrap();
    KsfParams {
        m_cost_kib: k.m_cost_kib,
        t_cost: k.t_cost,
        p_cost: k.p_cost,
    }
}

/// Registers `key` under `pw` and activates it; returns the version.
async fn register(
    node: &Node,
    pw: &str,
    key: &BackupKey,
    ksf: &KsfParams,
    wire: &mut Wire,
) -> RecordVersion {
    let account = account();
    let (registration, request) = Registration::start(&account, password(pw)).unwrap();
    wire.push("registration_request", request.clone());
    let started = node.register_start(&request).await;
    wire.push(
        "registration_response",
        started.registration_response.clone(),
    );
    let upload = registration
        .finish(&started, &account, key, ksf, 0, node.trust())
        .unwrap();
    wire.push("registration_upload", upload.registration_upload.clone());
    wire.push("sealed_key", upload.sealed_key.clone());
    for share in &upload.shares {
        wire.push("share_ciphertext", share.ciphertext.clone());
    }
    node.register_finish(&upload).await
}

/// Finishes `login` on `credential_response` as `account` with `ksf`, signing the reset of
/// the attempt's charge.
fn try_finish(
    login: Login,
    started: &Started,
    credential_response: &[u8],
    account: &AccountId,
    ksf: &KsfParams,
) -> Result<LoginFinished, ClientError> {
    login.finish(
        credential_response,
        account,
        ksf,
        TEST_AUDIENCE,
        started.version(),
        started.charge(),
    )
}

/// Finishes `login` with the record's parameters, as the account itself.
fn finish(login: Login, started: &Started, logged: &RecoverLoginResponse) -> LoginFinished {
    try_finish(
        login,
        started,
        &logged.credential_response,
        &account(),
        &record_ksf(started),
    )
    .unwrap()
}

#[tokio::test]
async fn register_then_recover_gives_back_the_key() {
    let node = Node::new().await;
    let ksf = KsfParams::light();
    let key = BackupKey::generate();
    let mut wire = Wire::default();
    // Phase 1: registration.
    let version = register(&node, "tr0ub4dor&3", &key, &ksf, &mut wire).await;
    // Phase 2: recovery start: the guess is charged, two holders evaluate.
    let (login, started, logged) = node.login("tr0ub4dor&3", &mut wire).await;
    assert_eq!(started.version(), version);
    assert_eq!(
        started.response.guesses_remaining,
        started.response.guess_limit - 1
    );
    assert_eq!(started.response.threshold, 2);
    assert_eq!(record_ksf(&started), ksf);
    // Phase 3: the client verifies the server and finishes.
    let done = finish(login, &started, &logged);
    let finished = node
        .recover_finish(
            &logged.ticket,
            &done.credential_finalization,
            &done.reset_signature,
        )
        .await
        .unwrap();
    assert_eq!(finished.version, version.get());
    // Phase 4: the client opens the key.
    let session = done.session;
    let recovered = session.open(&finished.transported_key, version).unwrap();
    assert_eq!(recovered, key);
    // The transported key is bound to the version, and to its bytes.
    assert_eq!(
        session.open(&finished.transported_key, RecordVersion(version.get() + 1)),
        Err(ClientError::KeyRejected {
            what: "transported_key"
        })
    );
    let mut altered = finished.transported_key.clone();
    altered[13] ^= 1;
    assert_eq!(
        session.open(&altered, version),
        Err(ClientError::KeyRejected {
            what: "transported_key"
        })
    );
    assert!(session.open(&[], version).is_err());
}

#[tokio::test]
async fn a_wrong_password_fails_on_the_client_and_a_forged_finalization_on_the_server() {
    let node = Node::new().await;
    let ksf = KsfParams::light();
    let key = BackupKey::generate();
    register(&node, "right password", &key, &ksf, &mut Wire::default()).await;

    let (login, started, logged) = node.login("wrong password", &mut Wire::default()).await;
    // The client learns it itself; there is no finalization to send.
    assert_eq!(
        try_finish(
            login,
            &started,
            &logged.credential_response,
            &account(),
            &ksf
        )
        .map(|_| ()),
        Err(ClientError::WrongPassword)
    );
    // A client that forges one anyway gets PERMISSION_DENIED with the ticket's counters.
    let refused = node
        .recover_finish(&logged.ticket, &[0x42; 64], &[0; 64])
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let detail = bkv_proto::status::ErrorDetails::of(&refused).unwrap();
    assert_eq!(
        detail.guesses_remaining(),
        Some(started.response.guesses_remaining)
    );
}

#[tokio::test]
async fn a_right_password_with_a_forged_reset_signature_is_refused_and_not_reset() {
    let node = Node::new().await;
    let ksf = KsfParams::light();
    register(
        &node,
        "pw",
        &BackupKey::generate(),
        &ksf,
        &mut Wire::default(),
    )
    .await;
    let (login, started, logged) = node.login("pw", &mut Wire::default()).await;
    let done = finish(login, &started, &logged);
    let mut forged = done.reset_signature;
    forged[7] ^= 1;
    let refused = node
        .recover_finish(&logged.ticket, &done.credential_finalization, &forged)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("reset_signature"), "{refused:?}");
    // The guess stays charged; the real signature then resets it.
    let used = |n: &Node| match n.replica.read(|s| s.account_status(&account()).record) {
        bkv_core::RecordStatus::Active { guesses_used, .. } => guesses_used,
        other => panic!("not active: {other:?}"),
    };
    assert_eq!(used(&node), 1);
    node.recover_finish(
        &logged.ticket,
        &done.credential_finalization,
        &done.reset_signature,
    )
    .await
    .unwrap();
    assert_eq!(used(&node), 0);
}

#[tokio::test]
async fn recovery_with_other_ksf_params_or_account_fails_as_a_wrong_password() {
    let node = Node::new().await;
    let key = BackupKey::generate();
    register(&node, "pw", &key, &KsfParams::light(), &mut Wire::default()).await;
    let other_ksf = KsfParams {
        t_cost: 2,
        ..KsfParams::light()
    };
    let (login, started, logged) = node.login("pw", &mut Wire::default()).await;
    assert_eq!(
        try_finish(
            login,
            &started,
            &logged.credential_response,
            &account(),
            &other_ksf
        )
        .map(|_| ()),
        Err(ClientError::WrongPassword)
    );
    // The envelope is bound to the account through the client identifier.
    let (login, started, logged) = node.login("pw", &mut Wire::default()).await;
    let bob = AccountId::parse("bob").unwrap();
    assert_eq!(
        try_finish(
            login,
            &started,
            &logged.credential_response,
            &bob,
            &KsfParams::light()
        )
        .map(|_| ()),
        Err(ClientError::WrongPassword)
    );
}

#[tokio::test]
async fn evaluations_a_vault_altered_are_refused_before_login() {
    let node = Node::new().await;
    register(
        &node,
        "pw",
        &BackupKey::generate(),
        &KsfParams::light(),
        &mut Wire::default(),
    )
    .await;
    let (recovery, blinded) = Recovery::start(&account(), password("pw")).unwrap();
    let started = node.recover_start(&blinded).await;
    let good = started.evaluations();
    let cases: Vec<(Vec<ShareEvaluation>, u32)> = vec![
        // One evaluation short of the threshold.
        (good[..1].to_vec(), 2),
        // One holder twice.
        (vec![good[0].clone(), good[0].clone()], 2),
        // An element that is not the holder's evaluation.
        (
            vec![
                good[0].clone(),
                ShareEvaluation {
                    evaluated_element: good[0].evaluated_element.clone(),
                    ..good[1].clone()
                },
            ],
            2,
        ),
        // A commitment of another holder.
        (
            vec![
                good[0].clone(),
                ShareEvaluation {
                    commitment: good[0].commitment.clone(),
                    ..good[1].clone()
                },
            ],
            2,
        ),
        // Threshold 0, nothing to combine.
        (Vec::new(), 0),
    ];
    for (evaluations, threshold) in cases {
        let (recovery, _) = Recovery::start(&account(), password("pw")).unwrap();
        assert!(
            matches!(
                recovery.harden(&blinded, threshold, &evaluations),
                Err(ClientError::BadEvaluations(_))
            ),
            "{evaluations:?}"
        );
    }
    // The real ones combine.
    assert!(
        recovery
            .harden(&blinded, started.response.threshold, &good)
            .is_ok()
    );
}

#[tokio::test]
async fn a_share_map_the_pinned_key_did_not_sign_is_refused() {
    let node = Node::new().await;
    let key = BackupKey::generate();
    let (_, request) = Registration::start(&account(), password("pw")).unwrap();
    let started = node.register_start(&request).await;
    let other = SigningKey::generate(&mut OsRng).verifying_key().to_bytes();
    let trusts = [
        ClusterTrust {
            cluster_name: TEST_AUDIENCE,
            identity_key: &other,
        },
        ClusterTrust {
            cluster_name: "another-cluster",
            identity_key: &node.identity_key,
        },
    ];
    for trust in trusts {
        let (registration, _) = Registration::start(&account(), password("pw")).unwrap();
        assert!(matches!(
            registration.finish(&started, &account(), &key, &KsfParams::light(), 0, trust),
            Err(ClientError::UntrustedShareMap(_))
        ));
    }
    let mut altered = started.clone();
    altered.share_map.encoded[5] ^= 1;
    let (registration, _) = Registration::start(&account(), password("pw")).unwrap();
    assert!(matches!(
        registration.finish(
            &altered,
            &account(),
            &key,
            &KsfParams::light(),
            0,
            node.trust()
        ),
        Err(ClientError::UntrustedShareMap(_))
    ));
}

#[tokio::test]
async fn malformed_server_messages_are_typed_errors() {
    let node = Node::new().await;
    let ksf = KsfParams::light();
    let key = BackupKey::generate();
    let (_, request) = Registration::start(&account(), password("pw")).unwrap();
    let good = node.register_start(&request).await;
    let cases: [(&[u8], &str); 3] = [
        (&[], "wrong_length"),
        (&[0u8; 65], "wrong_length"),
        (&[0u8; 64], "invalid_encoding"),
    ];
    for (bytes, reason) in cases {
        let (registration, _) = Registration::start(&account(), password("pw")).unwrap();
        let started = RegisterStarted {
            registration_response: bytes.to_vec(),
            ..good.clone()
        };
        assert_eq!(
            registration.finish(&started, &account(), &key, &ksf, 0, node.trust()),
            Err(ClientError::Malformed {
                field: "registration_response",
                reason
            })
        );
    }
    register(&node, "pw", &key, &ksf, &mut Wire::default()).await;
    let (login, started, _) = node.login("pw", &mut Wire::default()).await;
    assert_eq!(
        try_finish(login, &started, &[1u8; 10], &account(), &ksf).map(|_| ()),
        Err(ClientError::Malformed {
            field: "credential_response",
            reason: "wrong_length"
        })
    );
    // A server that reflects the client's blinded element back is caught.
    let (registration, request) = Registration::start(&account(), password("pw")).unwrap();
    let mut reflected = node.register_start(&request).await;
    reflected.registration_response[..32].copy_from_slice(&request);
    assert_eq!(
        registration.finish(&reflected, &account(), &key, &ksf, 0, node.trust()),
        Err(ClientError::Malformed {
            field: "registration_response",
            reason: "reflected"
        })
    );
}

#[tokio::test]
async fn default_ksf_params_work_end_to_end() {
    let node = Node::new().await;
    let ksf = KsfParams::default();
    let key = BackupKey::generate();
    let version = register(&node, "a real password", &key, &ksf, &mut Wire::default()).await;
    let (login, started, logged) = node.login("a real password", &mut Wire::default()).await;
    let done = finish(login, &started, &logged);
    let finished = node
        .recover_finish(
            &logged.ticket,
            &done.credential_finalization,
            &done.reset_signature,
        )
        .await
        .unwrap();
    assert_eq!(
        done.session.open(&finished.transported_key, version).ok(),
        Some(key)
    );
}

/// Every encoding of `secret` that a leak could take: raw (any 12-byte window), hex in both
/// cases, and standard and URL-safe base64 at each of the three alignments.
fn leak_forms(secret: &[u8]) -> Vec<Vec<u8>> {
    let mut forms: Vec<Vec<u8>> = secret
        .windows(12.min(secret.len()))
        .map(<[u8]>::to_vec)
        .collect();
    forms.push(hex::encode(secret).into_bytes());
    forms.push(hex::encode_upper(secret).into_bytes());
    for shift in 0..3 {
        for encoded in [
            STANDARD.encode(&secret[shift..]),
            URL_SAFE_NO_PAD.encode(&secret[shift..]),
        ] {
            // Drop the last block, whose characters depend on what follows the secret.
            let stable = encoded.trim_end_matches('=');
            let keep = stable.len().saturating_sub(4);
            forms.push(stable.as_bytes()[..keep].to_vec());
        }
    }
    forms
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn leaks(wire: &Wire, secrets: &[(&'static str, Vec<u8>)]) -> Vec<String> {
    let mut found = Vec::new();
    for (what, bytes) in &wire.0 {
        for (name, secret) in secrets {
            if leak_forms(secret).iter().any(|form| contains(bytes, form)) {
                found.push(format!("{name} in {what}"));
            }
        }
    }
    found
}

#[tokio::test]
async fn canary_secrets_never_leave_the_client_in_clear() {
    const CANARY_PASSWORD: &str = "canary-password-7f3e9a1c5b";
    const CANARY_KEY: &[u8; 32] = b"CANARY-BACKUP-KEY-0123456789abcd";
    let node = Node::new().await;
    let ksf = KsfParams::light();
    let key = BackupKey::from_bytes(*CANARY_KEY);
    let mut wire = Wire::default();

    // Register and recover, recording everything that travels or is stored.
    let version = register(&node, CANARY_PASSWORD, &key, &ksf, &mut wire).await;
    let (login, started, logged) = node.login(CANARY_PASSWORD, &mut wire).await;
    let done = finish(login, &started, &logged);
    wire.push(
        "credential_finalization",
        done.credential_finalization.clone(),
    );
    wire.push("reset_signature", done.reset_signature.to_vec());
    let finished = node
        .recover_finish(
            &logged.ticket,
            &done.credential_finalization,
            &done.reset_signature,
        )
        .await
        .unwrap();
    wire.push("recover_finish_response", finished.encode_to_vec());
    let forged = node
        .recover_finish(&logged.ticket, &[0; 64], &done.reset_signature)
        .await;
    wire.push("wrong_password_error", format!("{forged:?}"));
    // The replicated log: every command the node committed, as Raft would carry and store
    // it, and the state a snapshot would hold.
    for entry in node.replica.log() {
        wire.push("raft_entry", postcard::to_stdvec(&entry).unwrap());
    }
    wire.push("state", node.replica.read(|s| s.encode()));
    let session = done.session;
    wire.push(
        "debug_of_client_values",
        format!("{session:?} {key:?} {ksf:?}"),
    );
    assert_eq!(
        session.open(&finished.transported_key, version).ok(),
        Some(key)
    );

    let (export_key, session_key) = session.keys();
    let secrets = [
        ("password", CANARY_PASSWORD.as_bytes().to_vec()),
        ("backup key", CANARY_KEY.to_vec()),
        ("export key", export_key.expose().to_vec()),
        ("session key", session_key.expose().to_vec()),
    ];
    // 4 registration messages and 3 share ciphertexts, 7 recovery messages (blinded element,
    // RecoverStart's answer, credential request, RecoverLogin's answer, finalization, reset
    // signature, RecoverFinish's answer), 2 debug prints, an error, 5 log entries (share map,
    // stage, activate, charge, reset: the forged finish commits nothing), and the state.
    assert_eq!(
        wire.0.len(),
        4 + 3 + 7 + 2 + 1 + 5 + 1,
        "every value was recorded"
    );
    assert_eq!(leaks(&wire, &secrets), Vec::<String>::new());

    // The scanner itself finds each form of a leak.
    for (name, secret) in &secrets {
        for planted in [
            [b"xx".as_slice(), secret, b"yy"].concat(),
            format!("id={}&", hex::encode(secret)).into_bytes(),
            format!(
                "\"{}\"",
                STANDARD.encode([b"ab".as_slice(), secret].concat())
            )
            .into_bytes(),
            URL_SAFE_NO_PAD
                .encode([b"a".as_slice(), secret].concat())
                .into_bytes(),
        ] {
            let mut planted_wire = Wire::default();
            planted_wire.push("planted", planted);
            assert_eq!(leaks(&planted_wire, &secrets[..]).len(), 1, "{name}");
        }
    }
}
