//! The vault's logic end to end in one process, on a real SoftHSM token: the client flows
//! of bkv-client (protocol v2: the hardened password, the share split over the signed share
//! map, the evaluations combined, the reset signature), the node's own vault service
//! (bkv-vault: token check, charge, share evaluations, OPAQUE server, tickets, outcomes to
//! statuses) over an in-memory replica of the state machine with its software share-holders
//! (applied in order; no Raft, no network), and the HSM sealing records and tickets through
//! bkv-hsm.
//!
//! One linear story with named phases: register, activate, recover with the right password,
//! count wrong guesses down, reset with the right password, exhaust the limit, and see the
//! record destroyed so that even the right password gets nothing.

use bkv_client::flow::{ClusterTrust, RegisterStarted, ShareEvaluation};
use bkv_client::{KsfParams, Recovery, Registration};
use bkv_core::token::TrustedIssuers;
use bkv_core::{
    AccountId, BackupKey, ChargeNumber, ClusterId, GuessLimit, RecordStatus, RecordVersion,
    SignedShareMap,
};
use bkv_devkit::testing::authorized;
use bkv_devkit::{MemoryReplica, ReplicaOptions, issue_token};
use bkv_hsm::Partition;
use bkv_hsm::testing::TestToken;
use bkv_proto::v1::vault_server::Vault as _;
use bkv_proto::v1::{
    ActivateRequest, RecoverFinishRequest, RecoverLoginRequest, RecoverStartRequest,
    RegisterStartRequest,
};
use bkv_vault::VaultService;
use ed25519_dalek::SigningKey;
use rand::RngCore as _;
use rand::rngs::OsRng;
use secrecy::SecretString;
use tonic::Code;

const CLUSTER: &str = "story";
const ISSUER: &str = "story-issuer";

/// A one-node vault in process: the vault service over a replica sealing with a real token.
struct Vault {
    replica: MemoryReplica<Partition>,
    service: VaultService<MemoryReplica<Partition>>,
    issuer: SigningKey,
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
        hsm.generate_cluster_key().await.expect("cluster key");
        let issuer = SigningKey::generate(&mut OsRng);
        let mut issuers = TrustedIssuers::new(3600, 60);
        issuers.insert(ISSUER, issuer.verifying_key());
        let options = ReplicaOptions {
            cluster_name: CLUSTER.into(),
            cluster_id: ClusterId::new([7; 16]),
            max_guess_limit: GuessLimit::parse_max(100).expect("limit"),
            ..ReplicaOptions::default()
        };
        let replica = MemoryReplica::bootstrap(hsm, issuers, options)
            .await
            .expect("bootstrap");
        Self {
            service: replica.service(),
            replica,
            issuer,
        }
    }

    fn token(&self, account: &AccountId) -> String {
        issue_token(&self.issuer, ISSUER, CLUSTER, account, 600).expect("token")
    }

    async fn register(
        &self,
        account: &AccountId,
        password: &str,
        limit: u32,
    ) -> (RecordVersion, BackupKey) {
        let token = self.token(account);
        let key = BackupKey::generate();
        let (client, registration_request) =
            Registration::start(account, SecretString::from(password)).expect("start");
        let response = self
            .service
            .register_start(authorized(
                RegisterStartRequest {
                    registration_request,
                },
                &token,
            ))
            .await
            .expect("register start")
            .into_inner();
        let map = response.share_map.expect("a share map");
        let started = RegisterStarted {
            registration_response: response.registration_response,
            share_map: SignedShareMap {
                encoded: map.encoded,
                signature: map.signature.as_slice().try_into().expect("64 bytes"),
            },
            default_guess_limit: response.default_guess_limit,
            max_guess_limit: response.max_guess_limit,
        };
        let identity_key = self.replica.identity_key();
        let upload = client
            .finish(
                &started,
                account,
                &key,
                &KsfParams::light(),
                limit,
                ClusterTrust {
                    cluster_name: CLUSTER,
                    identity_key: &identity_key,
                },
            )
            .expect("finish");
        let staged = self
            .service
            .register_finish(authorized(
                bkv_tests::raw::register_finish(random16().to_vec(), &upload),
                &token,
            ))
            .await
            .expect("register finish")
            .into_inner();
        (RecordVersion(staged.version), key)
    }

    async fn activate(&self, account: &AccountId, version: RecordVersion) -> u64 {
        self.service
            .activate(authorized(
                ActivateRequest {
                    version: version.get(),
                },
                &self.token(account),
            ))
            .await
            .expect("activate")
            .into_inner()
            .version
    }

    async fn recover(&self, account: &AccountId, password: &str) -> Recovered {
        let token = self.token(account);
        let (client, blinded_element) =
            Recovery::start(account, SecretString::from(password)).expect("start");
        let attempt_id = random16().to_vec();
        let started = self
            .service
            .recover_start(authorized(
                RecoverStartRequest {
                    attempt_id: attempt_id.clone(),
                    blinded_element: blinded_element.clone(),
                },
                &token,
            ))
            .await;
        let started = match started {
            Ok(answer) => answer.into_inner(),
            Err(s) if s.code() == Code::FailedPrecondition => return Recovered::Destroyed,
            Err(s) if s.code() == Code::NotFound => return Recovered::NoRecord,
            Err(s) => panic!("recover start: {s:?}"),
        };
        let evaluations: Vec<ShareEvaluation> = started
            .evaluations
            .iter()
            .map(|e| ShareEvaluation {
                node_id: e.node_id,
                commitment: e.commitment.clone(),
                evaluated_element: e.evaluated_element.clone(),
                proof: e.proof.clone(),
            })
            .collect();
        let (login, credential_request) = client
            .harden(&blinded_element, started.threshold, &evaluations)
            .expect("the evaluations verify and combine");
        let logged = self
            .service
            .recover_login(authorized(
                RecoverLoginRequest {
                    attempt_id,
                    credential_request,
                },
                &token,
            ))
            .await
            .expect("recover login")
            .into_inner();
        let ksf = started.ksf.expect("the record's KSF");
        let finished = match login.finish(
            &logged.credential_response,
            account,
            &KsfParams {
                m_cost_kib: ksf.m_cost_kib,
                t_cost: ksf.t_cost,
                p_cost: ksf.p_cost,
            },
            CLUSTER,
            RecordVersion(started.version),
            ChargeNumber(started.charge),
        ) {
            Ok(done) => done,
            Err(bkv_client::ClientError::WrongPassword) => {
                return Recovered::WrongPassword {
                    guesses_remaining: started.guesses_remaining,
                };
            }
            Err(e) => panic!("client finish: {e}"),
        };
        let answer = self
            .service
            .recover_finish(authorized(
                RecoverFinishRequest {
                    ticket: logged.ticket,
                    credential_finalization: finished.credential_finalization,
                    reset_signature: finished.reset_signature.to_vec(),
                },
                &token,
            ))
            .await
            .expect("recover finish")
            .into_inner();
        Recovered::Key(
            finished
                .session
                .open(&answer.transported_key, RecordVersion(answer.version))
                .expect("open"),
        )
    }

    fn guesses_used(&self, account: &AccountId) -> Option<u32> {
        match self.record(account) {
            RecordStatus::Active { guesses_used, .. } => Some(guesses_used),
            _ => None,
        }
    }

    fn record(&self, account: &AccountId) -> RecordStatus {
        self.replica.read(|s| s.account_status(account).record)
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
    let vault = Vault::new(token.open().await).await;
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
    assert_eq!(vault.activate(&alice, version).await, version.get());

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
        vault.record(&alice),
        RecordStatus::Destroyed { version: v } if v == version
    ));

    // Phase: from then on even the right password gets nothing.
    assert!(matches!(
        vault.recover(&alice, "correct horse").await,
        Recovered::Destroyed
    ));

    // The snapshot of the state holds no trace of the key or the password.
    let snapshot = vault.replica.read(|s| s.encode());
    let needle = key.expose().to_vec();
    assert!(
        !snapshot
            .windows(needle.len())
            .any(|w| w == needle.as_slice())
    );
    assert!(!snapshot.windows(13).any(|w| w == b"correct horse"));
}
