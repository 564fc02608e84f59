//! The client flows against the vault's own service (bkv-vault) over an in-memory replica
//! with a software sealer, called in process: the full register and recover story, wrong
//! passwords, forged and altered messages, and a canary scan of everything that leaves a
//! node or is stored.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bkv_core::ids::{AccountId, RecordVersion};
use bkv_core::opaque::testing::FakeSealer;
use bkv_core::protocol::BackupKey;
use bkv_core::token::TrustedIssuers;
use bkv_devkit::testing::{TEST_AUDIENCE, TEST_ISSUER, authorized};
use bkv_devkit::{MemoryReplica, ReplicaOptions, issue_token};
use bkv_proto::v1::vault_server::Vault as _;
use bkv_proto::v1::{
    ActivateRequest, RecoverFinishRequest, RecoverFinishResponse, RecoverStartRequest,
    RecoverStartResponse, RegisterFinishRequest, RegisterStartRequest,
};
use bkv_vault::VaultService;
use ed25519_dalek::SigningKey;
use prost::Message as _;
use rand::rngs::OsRng;
use secrecy::SecretString;
use tonic::{Code, Status};

use super::*;
use crate::{ClientError, KsfParams};

/// A vault node in process: the vault service over an in-memory replica.
struct Node {
    replica: MemoryReplica<FakeSealer>,
    service: VaultService<MemoryReplica<FakeSealer>>,
    token: String,
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
            replica,
            token,
        }
    }

    async fn register_start(&self, request: &[u8]) -> Vec<u8> {
        let message = RegisterStartRequest {
            registration_request: request.to_vec(),
        };
        let answer = self
            .service
            .register_start(authorized(message, &self.token));
        answer.await.unwrap().into_inner().registration_response
    }

    /// Stages and activates the upload; returns the active version.
    async fn register_finish(&self, upload: &RegisterUpload) -> RecordVersion {
        let message = RegisterFinishRequest {
            request_id: vec![8; 16],
            registration_upload: upload.registration_upload.clone(),
            sealed_key: upload.sealed_key.clone(),
            guess_limit: 0,
        };
        let staged = self
            .service
            .register_finish(authorized(message, &self.token));
        let version = staged.await.unwrap().into_inner().version;
        let message = ActivateRequest { version };
        let active = self.service.activate(authorized(message, &self.token));
        RecordVersion(active.await.unwrap().into_inner().version)
    }

    async fn recover_start(&self, credential_request: &[u8]) -> RecoverStartResponse {
        let message = RecoverStartRequest {
            attempt_id: rand::random::<[u8; 16]>().to_vec(),
            credential_request: credential_request.to_vec(),
        };
        let answer = self.service.recover_start(authorized(message, &self.token));
        answer.await.unwrap().into_inner()
    }

    async fn recover_finish(
        &self,
        ticket: &[u8],
        finalization: &[u8],
    ) -> Result<RecoverFinishResponse, Status> {
        let message = RecoverFinishRequest {
            ticket: ticket.to_vec(),
            credential_finalization: finalization.to_vec(),
        };
        let answer = self
            .service
            .recover_finish(authorized(message, &self.token));
        answer.await.map(tonic::Response::into_inner)
    }
}

fn account() -> AccountId {
    AccountId::parse("carol@example.com").unwrap()
}

fn password(s: &str) -> SecretString {
    SecretString::from(s)
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
    let (registration, request) = Registration::start(password(pw)).unwrap();
    wire.push("registration_request", request.clone());
    let response = node.register_start(&request).await;
    wire.push("registration_response", response.clone());
    let upload = registration.finish(&response, &account, key, ksf).unwrap();
    wire.push("registration_upload", upload.registration_upload.clone());
    wire.push("sealed_key", upload.sealed_key.clone());
    node.register_finish(&upload).await
}

#[tokio::test]
async fn register_then_recover_gives_back_the_key() {
    let node = Node::new().await;
    let ksf = KsfParams::light();
    let key = BackupKey::generate();
    let mut wire = Wire::default();
    // Phase 1: registration.
    let version = register(&node, "tr0ub4dor&3", &key, &ksf, &mut wire).await;
    // Phase 2: recovery start: the guess is charged.
    let (recovery, request) = Recovery::start(password("tr0ub4dor&3")).unwrap();
    let started = node.recover_start(&request).await;
    assert_eq!(started.version, version.get());
    assert_eq!(started.guesses_remaining, started.guess_limit - 1);
    // Phase 3: the client verifies the server and finishes.
    let (finalization, session) = recovery
        .finish(&started.credential_response, &account(), &ksf)
        .unwrap();
    let finished = node
        .recover_finish(&started.ticket, &finalization)
        .await
        .unwrap();
    assert_eq!(finished.version, version.get());
    // Phase 4: the client opens the key.
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

    let (recovery, request) = Recovery::start(password("wrong password")).unwrap();
    let started = node.recover_start(&request).await;
    // The client learns it itself; there is no finalization to send.
    assert_eq!(
        recovery
            .finish(&started.credential_response, &account(), &ksf)
            .map(|_| ()),
        Err(ClientError::WrongPassword)
    );
    // A client that forges one anyway gets PERMISSION_DENIED with the ticket's counters.
    let refused = node
        .recover_finish(&started.ticket, &[0x42; 64])
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let detail = bkv_proto::status::ErrorDetails::of(&refused).unwrap();
    assert_eq!(detail.guesses_remaining(), Some(started.guesses_remaining));
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
    let (recovery, request) = Recovery::start(password("pw")).unwrap();
    let started = node.recover_start(&request).await;
    assert_eq!(
        recovery
            .finish(&started.credential_response, &account(), &other_ksf)
            .map(|_| ()),
        Err(ClientError::WrongPassword)
    );
    // The envelope is bound to the account through the client identifier.
    let (recovery, request) = Recovery::start(password("pw")).unwrap();
    let started = node.recover_start(&request).await;
    let bob = AccountId::parse("bob").unwrap();
    assert_eq!(
        recovery
            .finish(&started.credential_response, &bob, &KsfParams::light())
            .map(|_| ()),
        Err(ClientError::WrongPassword)
    );
}

#[tokio::test]
async fn malformed_server_messages_are_typed_errors() {
    let ksf = KsfParams::light();
    let key = BackupKey::generate();
    let cases: [(&[u8], &str); 3] = [
        (&[], "wrong_length"),
        (&[0u8; 65], "wrong_length"),
        (&[0u8; 64], "invalid_encoding"),
    ];
    for (bytes, reason) in cases {
        let (registration, _) = Registration::start(password("pw")).unwrap();
        assert_eq!(
            registration.finish(bytes, &account(), &key, &ksf),
            Err(ClientError::Malformed {
                field: "registration_response",
                reason
            })
        );
    }
    let (recovery, _) = Recovery::start(password("pw")).unwrap();
    assert_eq!(
        recovery.finish(&[1u8; 10], &account(), &ksf).map(|_| ()),
        Err(ClientError::Malformed {
            field: "credential_response",
            reason: "wrong_length"
        })
    );
    // A server that reflects the client's blinded element back is caught.
    let (registration, request) = Registration::start(password("pw")).unwrap();
    let node = Node::new().await;
    let mut reflected = node.register_start(&request).await;
    reflected[..32].copy_from_slice(&request);
    assert_eq!(
        registration.finish(&reflected, &account(), &key, &ksf),
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
    let (recovery, request) = Recovery::start(password("a real password")).unwrap();
    let started = node.recover_start(&request).await;
    let (finalization, session) = recovery
        .finish(&started.credential_response, &account(), &ksf)
        .unwrap();
    let finished = node
        .recover_finish(&started.ticket, &finalization)
        .await
        .unwrap();
    assert_eq!(
        session.open(&finished.transported_key, version).ok(),
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
    let (recovery, request) = Recovery::start(password(CANARY_PASSWORD)).unwrap();
    wire.push("credential_request", request.clone());
    let started = node.recover_start(&request).await;
    wire.push("recover_start_response", started.encode_to_vec());
    wire.push("recover_start_debug", format!("{started:?}"));
    let (finalization, session) = recovery
        .finish(&started.credential_response, &account(), &ksf)
        .unwrap();
    wire.push("credential_finalization", finalization.clone());
    let finished = node
        .recover_finish(&started.ticket, &finalization)
        .await
        .unwrap();
    wire.push("recover_finish_response", finished.encode_to_vec());
    let forged = node.recover_finish(&started.ticket, &[0; 64]).await;
    wire.push("wrong_password_error", format!("{forged:?}"));
    // The replicated log: every command the node committed, as Raft would carry and store
    // it, and the state a snapshot would hold.
    for entry in node.replica.log() {
        wire.push("raft_entry", postcard::to_stdvec(&entry).unwrap());
    }
    wire.push("state", node.replica.read(|s| s.encode()));
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
    // 4 registration messages, 4 recovery messages, 2 debug prints, an error, 4 log entries
    // (stage, activate, charge, reset: the forged finish commits nothing), and the state.
    assert_eq!(
        wire.0.len(),
        4 + 4 + 2 + 1 + 4 + 1,
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
