//! The client flows against bkv-core's OPAQUE server over a software sealer: the full
//! register and recover story, wrong passwords, forged and altered messages, and a canary
//! scan of everything that leaves a node or is stored.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bkv_core::ids::{
    AccountId, AttemptId, ChargeNumber, ClusterId, GuessLimit, RecordVersion, RequestId,
};
use bkv_core::opaque::testing::{FakeSealer, block_on};
use bkv_core::opaque::{self, ChargedRecord, LoginFinished, LoginStarted, ServerSecrets};
use bkv_core::protocol::{self, BackupKey};
use bkv_core::record::seal_record;
use bkv_core::{Command, Outcome, ProtocolError};
use rand::rngs::OsRng;
use secrecy::SecretString;

use super::*;
use crate::{ClientError, KsfParams};

const NOW: u64 = 1_700_000_000_000;
const TTL: u64 = 300_000;
const VERSION: RecordVersion = RecordVersion(11);

/// The server side of one node, as the node would drive bkv-core.
struct Node {
    sealer: FakeSealer,
    secrets: ServerSecrets,
    cluster: ClusterId,
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
    fn new() -> Self {
        Self {
            sealer: FakeSealer::new(),
            secrets: ServerSecrets::generate(&mut OsRng),
            cluster: ClusterId::new([4; 16]),
        }
    }

    fn register_start(&self, account: &AccountId, request: &[u8]) -> Vec<u8> {
        let request = opaque::parse_registration_request(request).unwrap();
        opaque::registration_start(&self.secrets, account, request).unwrap()
    }

    /// Parses the upload, seals the record, and builds the `Stage` command; returns the
    /// command and the sealed record.
    fn register_finish(&self, account: &AccountId, upload: &RegisterUpload) -> (Command, Vec<u8>) {
        let request_id = RequestId::new([8; 16]);
        let parsed = opaque::parse_registration_upload(&upload.registration_upload).unwrap();
        let sealed_key = opaque::parse_sealed_key(upload.sealed_key.clone()).unwrap();
        let record = opaque::record_from_upload(parsed, sealed_key, GuessLimit::DEFAULT);
        let sealed_record = block_on(seal_record(
            &self.sealer,
            &self.cluster,
            account,
            &request_id,
            &record,
        ))
        .unwrap()
        .unwrap();
        let stage = Command::Stage {
            account: account.clone(),
            request_id,
            guess_limit: GuessLimit::DEFAULT,
            sealed_record: sealed_record.clone(),
        };
        (stage, sealed_record)
    }

    /// What the state machine would answer to `ChargeGuess` on this record.
    fn charged(&self, sealed_record: &[u8], charge: u64) -> Outcome {
        Outcome::Charged {
            version: VERSION,
            charge: ChargeNumber(charge),
            guesses_remaining: GuessLimit::DEFAULT.get() - 1,
            guess_limit: GuessLimit::DEFAULT,
            request_id: RequestId::new([8; 16]),
            sealed_record: sealed_record.to_vec(),
        }
    }

    fn recover_start(
        &self,
        account: &AccountId,
        credential_request: &[u8],
        charged: Outcome,
    ) -> LoginStarted {
        let request = opaque::parse_credential_request(credential_request).unwrap();
        let charged = ChargedRecord::from_outcome(charged).unwrap();
        block_on(opaque::login_start(
            &self.sealer,
            &self.secrets,
            &self.cluster,
            account,
            charged,
            request,
            NOW,
            TTL,
        ))
        .unwrap()
        .unwrap()
    }

    fn recover_finish(
        &self,
        account: &AccountId,
        ticket: &[u8],
        finalization: &[u8],
    ) -> Result<LoginFinished, ProtocolError> {
        let finalization = opaque::parse_credential_finalization(finalization)?;
        block_on(opaque::login_finish(
            &self.sealer,
            &self.cluster,
            account,
            ticket,
            finalization,
            NOW + 1,
        ))
        .unwrap()
    }
}

fn account() -> AccountId {
    AccountId::parse("carol@example.com").unwrap()
}

fn password(s: &str) -> SecretString {
    SecretString::from(s)
}

/// Registers `key` under `pw`; returns the sealed record.
fn register(node: &Node, pw: &str, key: &BackupKey, ksf: &KsfParams, wire: &mut Wire) -> Vec<u8> {
    let account = account();
    let (registration, request) = Registration::start(password(pw)).unwrap();
    wire.push("registration_request", request.clone());
    let response = node.register_start(&account, &request);
    wire.push("registration_response", response.clone());
    let upload = registration.finish(&response, &account, key, ksf).unwrap();
    wire.push("registration_upload", upload.registration_upload.clone());
    wire.push("sealed_key", upload.sealed_key.clone());
    let (stage, sealed_record) = node.register_finish(&account, &upload);
    wire.push("sealed_record", sealed_record.clone());
    wire.push("stage_command", postcard::to_stdvec(&stage).unwrap());
    sealed_record
}

#[test]
fn register_then_recover_gives_back_the_key() {
    let node = Node::new();
    let ksf = KsfParams::light();
    let key = BackupKey::generate();
    let mut wire = Wire::default();
    // Phase 1: registration.
    let sealed_record = register(&node, "tr0ub4dor&3", &key, &ksf, &mut wire);
    // Phase 2: recovery start, after the charge.
    let (recovery, request) = Recovery::start(password("tr0ub4dor&3")).unwrap();
    let started = node.recover_start(&account(), &request, node.charged(&sealed_record, 1));
    // Phase 3: the client verifies the server and finishes.
    let (finalization, session) = recovery
        .finish(&started.credential_response, &account(), &ksf)
        .unwrap();
    let finished = node
        .recover_finish(&account(), &started.ticket, &finalization)
        .unwrap();
    assert_eq!(finished.version, VERSION);
    assert_eq!(finished.charge, ChargeNumber(1));
    // Phase 4: the client opens the key.
    let recovered = session
        .open(&finished.transported_key, finished.version)
        .unwrap();
    assert_eq!(recovered, key);
    // The transported key is bound to the version, and to its bytes.
    assert_eq!(
        session.open(&finished.transported_key, RecordVersion(12)),
        Err(ClientError::KeyRejected {
            what: "transported_key"
        })
    );
    let mut altered = finished.transported_key.clone();
    altered[13] ^= 1;
    assert_eq!(
        session.open(&altered, finished.version),
        Err(ClientError::KeyRejected {
            what: "transported_key"
        })
    );
    assert!(session.open(&[], finished.version).is_err());
}

#[test]
fn a_wrong_password_fails_on_the_client_and_a_forged_finalization_on_the_server() {
    let node = Node::new();
    let ksf = KsfParams::light();
    let key = BackupKey::generate();
    let sealed_record = register(&node, "right password", &key, &ksf, &mut Wire::default());

    let (recovery, request) = Recovery::start(password("wrong password")).unwrap();
    let started = node.recover_start(&account(), &request, node.charged(&sealed_record, 4));
    // The client learns it itself; there is no finalization to send.
    assert_eq!(
        recovery
            .finish(&started.credential_response, &account(), &ksf)
            .map(|_| ()),
        Err(ClientError::WrongPassword)
    );
    // A client that forges one anyway gets PERMISSION_DENIED's counters from the ticket.
    assert_eq!(
        node.recover_finish(&account(), &started.ticket, &[0x42; 64]),
        Err(ProtocolError::WrongPassword {
            version: VERSION,
            charge: ChargeNumber(4),
            guesses_remaining: GuessLimit::DEFAULT.get() - 1,
        })
    );
}

#[test]
fn recovery_with_other_ksf_params_or_account_fails_as_a_wrong_password() {
    let node = Node::new();
    let key = BackupKey::generate();
    let sealed_record = register(&node, "pw", &key, &KsfParams::light(), &mut Wire::default());
    let other_ksf = KsfParams {
        t_cost: 2,
        ..KsfParams::light()
    };
    let (recovery, request) = Recovery::start(password("pw")).unwrap();
    let started = node.recover_start(&account(), &request, node.charged(&sealed_record, 1));
    assert_eq!(
        recovery
            .finish(&started.credential_response, &account(), &other_ksf)
            .map(|_| ()),
        Err(ClientError::WrongPassword)
    );
    // The envelope is bound to the account through the client identifier.
    let (recovery, request) = Recovery::start(password("pw")).unwrap();
    let started = node.recover_start(&account(), &request, node.charged(&sealed_record, 2));
    let bob = AccountId::parse("bob").unwrap();
    assert_eq!(
        recovery
            .finish(&started.credential_response, &bob, &KsfParams::light())
            .map(|_| ()),
        Err(ClientError::WrongPassword)
    );
}

#[test]
fn malformed_server_messages_are_typed_errors() {
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
    let node = Node::new();
    let mut reflected = node.register_start(&account(), &request);
    reflected[..32].copy_from_slice(&request);
    assert_eq!(
        registration.finish(&reflected, &account(), &key, &ksf),
        Err(ClientError::Malformed {
            field: "registration_response",
            reason: "reflected"
        })
    );
}

#[test]
fn default_ksf_params_work_end_to_end() {
    let node = Node::new();
    let ksf = KsfParams::default();
    let key = BackupKey::generate();
    let sealed_record = register(&node, "a real password", &key, &ksf, &mut Wire::default());
    let (recovery, request) = Recovery::start(password("a real password")).unwrap();
    let started = node.recover_start(&account(), &request, node.charged(&sealed_record, 1));
    let (finalization, session) = recovery
        .finish(&started.credential_response, &account(), &ksf)
        .unwrap();
    let finished = node
        .recover_finish(&account(), &started.ticket, &finalization)
        .unwrap();
    assert_eq!(
        session
            .open(&finished.transported_key, finished.version)
            .ok(),
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

#[test]
fn canary_secrets_never_leave_the_client_in_clear() {
    const CANARY_PASSWORD: &str = "canary-password-7f3e9a1c5b";
    const CANARY_KEY: &[u8; 32] = b"CANARY-BACKUP-KEY-0123456789abcd";
    let node = Node::new();
    let ksf = KsfParams::light();
    let key = BackupKey::from_bytes(*CANARY_KEY);
    let mut wire = Wire::default();

    // Register and recover, recording everything that travels or is stored.
    let sealed_record = register(&node, CANARY_PASSWORD, &key, &ksf, &mut wire);
    let (recovery, request) = Recovery::start(password(CANARY_PASSWORD)).unwrap();
    wire.push("credential_request", request.clone());
    let charge = Command::ChargeGuess {
        account: account(),
        attempt_id: AttemptId::new([1; 16]),
        request_hash: protocol::credential_request_hash(&request),
    };
    wire.push("charge_command", postcard::to_stdvec(&charge).unwrap());
    let charged = node.charged(&sealed_record, 1);
    wire.push("charged_outcome", postcard::to_stdvec(&charged).unwrap());
    let started = node.recover_start(&account(), &request, charged);
    wire.push("credential_response", started.credential_response.clone());
    wire.push("ticket", started.ticket.clone());
    wire.push("login_started_debug", format!("{started:?}"));
    let (finalization, session) = recovery
        .finish(&started.credential_response, &account(), &ksf)
        .unwrap();
    wire.push("credential_finalization", finalization.clone());
    let finished = node
        .recover_finish(&account(), &started.ticket, &finalization)
        .unwrap();
    wire.push("transported_key", finished.transported_key.clone());
    wire.push("login_finished_debug", format!("{finished:?}"));
    let reset = Command::ResetGuesses {
        account: account(),
        version: finished.version,
        charge: finished.charge,
    };
    wire.push("reset_command", postcard::to_stdvec(&reset).unwrap());
    let forged = node.recover_finish(&account(), &started.ticket, &[0; 64]);
    wire.push(
        "wrong_password_error",
        format!(
            "{forged:?} {}",
            forged
                .clone()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        ),
    );
    wire.push(
        "debug_of_client_values",
        format!("{session:?} {key:?} {:?} {:?}", node.secrets, ksf),
    );
    assert_eq!(
        session
            .open(&finished.transported_key, finished.version)
            .ok(),
        Some(key)
    );

    let (export_key, session_key) = session.keys();
    let secrets = [
        ("password", CANARY_PASSWORD.as_bytes().to_vec()),
        ("backup key", CANARY_KEY.to_vec()),
        ("export key", export_key.expose().to_vec()),
        ("session key", session_key.expose().to_vec()),
    ];
    assert_eq!(wire.0.len(), 18, "every value was recorded");
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
