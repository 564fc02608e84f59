//! The vault's logic end to end in one process, on a real SoftHSM token: the client flows
//! of bkv-client, the OPAQUE server of bkv-core, the replicated state machine applied in
//! order (no Raft, no network), and the HSM sealing everything through bkv-hsm.
//!
//! One linear story with named phases: register, activate, recover with the right password,
//! count wrong guesses down, reset with the right password, exhaust the limit, and see the
//! record destroyed so that even the right password gets nothing.

use bkv_client::{KsfParams, Recovery, Registration};
use bkv_core::opaque::{self, ChargedRecord, ProtocolError, ServerSecrets};
use bkv_core::record::seal_record;
use bkv_core::{
    AccountId, AttemptId, BackupKey, ClusterId, Command, GuessLimit, Outcome, RecordStatus,
    RecordVersion, Rejection, Request, RequestId, VaultState, protocol,
};
use bkv_hsm::Partition;
use bkv_hsm::testing::TestToken;
use rand::RngCore as _;
use rand::rngs::OsRng;
use secrecy::SecretString;

const NOW: u64 = 1_800_000_000_000;
const TTL: u64 = 300_000;

/// The server side of a one-node vault without I/O: state applied in log order.
struct Vault {
    hsm: Partition,
    state: VaultState,
    index: u64,
    secrets: ServerSecrets,
    cluster: ClusterId,
}

/// What a recovery attempt ended with.
#[derive(Debug)]
enum Recovered {
    Key(BackupKey),
    WrongPassword { guesses_remaining: u32 },
    Destroyed,
    NoRecord,
}

impl Vault {
    async fn new(hsm: Partition) -> Self {
        let key = hsm.generate_cluster_key().await.expect("cluster key");
        let cluster = ClusterId::new([7; 16]);
        let secrets = ServerSecrets::generate(&mut OsRng);
        let sealed = secrets
            .seal(&hsm, &cluster)
            .await
            .expect("seal server setup");
        let mut vault = Self {
            hsm,
            state: VaultState::default(),
            index: 0,
            secrets,
            cluster,
        };
        let outcome = vault.apply(Command::Bootstrap {
            cluster_id: cluster,
            cluster_name: "story".into(),
            sealed_server_setup: sealed.clone(),
            key_check_value: key.key_check_value,
            key_id: key.key_id,
            default_guess_limit: GuessLimit::DEFAULT,
            max_guess_limit: GuessLimit::parse_max(100).expect("limit"),
        });
        assert_eq!(outcome, Outcome::Bootstrapped);
        // The setup sealed in the log opens to the same secrets.
        let reopened = ServerSecrets::unseal(&vault.hsm, &cluster, &sealed)
            .await
            .expect("unseal setup");
        assert_eq!(*reopened.to_bytes(), *vault.secrets.to_bytes());
        vault
    }

    fn apply(&mut self, command: Command) -> Outcome {
        self.index += 1;
        self.state
            .apply(
                self.index,
                &Request {
                    at_unix_ms: NOW,
                    command,
                },
            )
            .outcome
    }

    async fn register(
        &mut self,
        account: &AccountId,
        password: &str,
        limit: u32,
    ) -> (RecordVersion, BackupKey) {
        let key = BackupKey::generate();
        let (client, request) = Registration::start(SecretString::from(password)).expect("start");
        let request = opaque::parse_registration_request(&request).expect("request");
        let response =
            opaque::registration_start(&self.secrets, account, request).expect("response");
        let upload = client
            .finish(&response, account, &key, &KsfParams::light())
            .expect("finish");
        let parsed =
            opaque::parse_registration_upload(&upload.registration_upload).expect("upload");
        let sealed_key = opaque::parse_sealed_key(upload.sealed_key).expect("sealed key");
        let guess_limit =
            GuessLimit::parse(limit, GuessLimit::parse_max(100).expect("max")).expect("limit");
        let record = opaque::record_from_upload(parsed, sealed_key, guess_limit);
        let request_id = RequestId::new(random16());
        let sealed_record = seal_record(&self.hsm, &self.cluster, account, &request_id, &record)
            .await
            .expect("seal record");
        let version = match self.apply(Command::Stage {
            account: account.clone(),
            request_id,
            guess_limit,
            sealed_record,
        }) {
            Outcome::Staged { version } => version,
            other => panic!("stage: {other:?}"),
        };
        (version, key)
    }

    async fn recover(&mut self, account: &AccountId, password: &str) -> Recovered {
        let (client, request) = Recovery::start(SecretString::from(password)).expect("start");
        let parsed = opaque::parse_credential_request(&request).expect("credential request");
        let charged = match self.apply(Command::ChargeGuess {
            account: account.clone(),
            attempt_id: AttemptId::new(random16()),
            request_hash: protocol::credential_request_hash(&request),
        }) {
            outcome @ Outcome::Charged { .. } => {
                ChargedRecord::from_outcome(outcome).expect("charged")
            }
            Outcome::Destroyed { .. } | Outcome::Rejected(Rejection::RecordDestroyed { .. }) => {
                return Recovered::Destroyed;
            }
            Outcome::Rejected(Rejection::NoRecord) => return Recovered::NoRecord,
            other => panic!("charge: {other:?}"),
        };
        let remaining = charged.guesses_remaining;
        let started = opaque::login_start(
            &self.hsm,
            &self.secrets,
            &self.cluster,
            account,
            charged,
            parsed,
            NOW,
            TTL,
        )
        .await
        .expect("login start");
        let (finalization, session) =
            match client.finish(&started.credential_response, account, &KsfParams::light()) {
                Ok(done) => done,
                Err(bkv_client::ClientError::WrongPassword) => {
                    return Recovered::WrongPassword {
                        guesses_remaining: remaining,
                    };
                }
                Err(e) => panic!("client finish: {e}"),
            };
        let finalization =
            opaque::parse_credential_finalization(&finalization).expect("finalization");
        let finished = match opaque::login_finish(
            &self.hsm,
            &self.cluster,
            account,
            &started.ticket,
            finalization,
            NOW,
        )
        .await
        {
            Ok(f) => f,
            Err(ProtocolError::WrongPassword {
                guesses_remaining, ..
            }) => {
                return Recovered::WrongPassword { guesses_remaining };
            }
            Err(e) => panic!("login finish: {e}"),
        };
        match self.apply(Command::ResetGuesses {
            account: account.clone(),
            version: finished.version,
            charge: finished.charge,
        }) {
            Outcome::Reset { .. } => {}
            Outcome::Rejected(Rejection::RecordDestroyed { .. }) => return Recovered::Destroyed,
            other => panic!("reset: {other:?}"),
        }
        Recovered::Key(
            session
                .open(&finished.transported_key, finished.version)
                .expect("open"),
        )
    }

    fn guesses_used(&self, account: &AccountId) -> Option<u32> {
        match self.state.account_status(account).record {
            RecordStatus::Active { guesses_used, .. } => Some(guesses_used),
            _ => None,
        }
    }
}

fn random16() -> [u8; 16] {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_recover_count_down_reset_and_destroy_on_a_real_token() {
    let token = TestToken::new();
    let mut vault = Vault::new(token.open().await).await;
    let alice = AccountId::parse("alice@example.com").expect("account");
    const LIMIT: u32 = 3;

    // Phase: register. A staged version cannot be recovered until activated.
    let (version, key) = vault.register(&alice, "correct horse", LIMIT).await;
    assert!(
        matches!(
            vault.recover(&alice, "correct horse").await,
            Recovered::NoRecord
        ),
        "a staged record is not recoverable"
    );
    assert_eq!(
        vault.apply(Command::Activate {
            account: alice.clone(),
            version
        }),
        Outcome::Activated { version }
    );

    // Phase: recover with the right password: the same key comes back, the counter resets.
    match vault.recover(&alice, "correct horse").await {
        Recovered::Key(k) => assert_eq!(k, key),
        other => panic!("right password: {other:?}"),
    }
    assert_eq!(vault.guesses_used(&alice), Some(0));

    // Phase: wrong passwords count down.
    for expected in (1..LIMIT).rev() {
        match vault.recover(&alice, "wrong").await {
            Recovered::WrongPassword { guesses_remaining } => {
                assert_eq!(guesses_remaining, expected)
            }
            other => panic!("wrong password: {other:?}"),
        }
    }
    assert_eq!(vault.guesses_used(&alice), Some(LIMIT - 1));

    // Phase: the right password still works and resets the counter.
    match vault.recover(&alice, "correct horse").await {
        Recovered::Key(k) => assert_eq!(k, key),
        other => panic!("right password after wrong ones: {other:?}"),
    }
    assert_eq!(vault.guesses_used(&alice), Some(0));

    // Phase: the limit of wrong guesses, then one more attempt destroys the record.
    for expected in (0..LIMIT).rev() {
        match vault.recover(&alice, "wrong").await {
            Recovered::WrongPassword { guesses_remaining } => {
                assert_eq!(guesses_remaining, expected)
            }
            other => panic!("wrong password: {other:?}"),
        }
    }
    assert!(matches!(
        vault.recover(&alice, "correct horse").await,
        Recovered::Destroyed
    ));
    assert!(matches!(
        vault.state.account_status(&alice).record,
        RecordStatus::Destroyed { version: v } if v == version
    ));

    // Phase: from then on even the right password gets nothing.
    assert!(matches!(
        vault.recover(&alice, "correct horse").await,
        Recovered::Destroyed
    ));

    // The snapshot of the state holds no trace of the key or the password.
    let snapshot = vault.state.encode();
    let needle = key.expose().to_vec();
    assert!(
        !snapshot
            .windows(needle.len())
            .any(|w| w == needle.as_slice())
    );
    assert!(!snapshot.windows(13).any(|w| w == b"correct horse"));
}
