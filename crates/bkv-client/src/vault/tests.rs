//! The SDK against fake vault nodes on loopback (real TLS, real OPAQUE through bkv-core):
//! the full story, failover, leader hints, what is and is not retried, identical retries,
//! deadlines, and error details.

use std::time::{Duration, Instant};

use bkv_core::token::{self, Claims};
use bkv_proto::contract::{meta, reason};
use bkv_proto::status::ErrorDetails;
use bkv_proto::v1::{RecoverFinishRequest, RecoverStartRequest};
use prost::Message as _;
use tonic::Code;

use super::*;
use crate::{RetryPolicy, Routing, VaultError};
use bkv_devkit::testing::{
    FakeCluster, FakeVault, Fault, TEST_AUDIENCE, TEST_ISSUER, TestPki, TestServer, dead_endpoint,
    serve,
};

const ACCOUNT: &str = "alice@example.com";

fn account() -> AccountId {
    AccountId::parse(ACCOUNT).unwrap()
}

fn pw(s: &str) -> SecretString {
    SecretString::from(s.to_string())
}

fn token_for(pki: &TestPki, sub: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    token::issue(
        &pki.issuer_key(),
        &Claims {
            iss: TEST_ISSUER.into(),
            sub: sub.into(),
            aud: TEST_AUDIENCE.into(),
            iat: now,
            exp: now + 600,
            nbf: None,
        },
    )
}

fn config(pki: &TestPki, endpoints: Vec<String>) -> ClientConfig {
    let mut c = ClientConfig::new(
        endpoints,
        pki.ca_pem(),
        TokenSource::fixed(token_for(pki, ACCOUNT)),
    );
    c.ksf = KsfParams::light();
    c.call_timeout = Duration::from_secs(3);
    c.deadline = Duration::from_secs(8);
    c.retry = RetryPolicy {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        max_attempts: 16,
    };
    c
}

struct Rig {
    pki: TestPki,
    cluster: FakeCluster,
    nodes: Vec<FakeVault>,
    servers: Vec<TestServer>,
}

impl Rig {
    /// `n` fake nodes of one cluster, each on its own TLS port.
    async fn new(n: usize) -> Self {
        let pki = TestPki::new();
        let cluster = FakeCluster::new(pki.issuer_key().verifying_key()).await;
        let names = ["a", "b", "c", "d"];
        let mut nodes = Vec::new();
        let mut servers = Vec::new();
        for name in names.iter().take(n) {
            let node = cluster.node(name);
            let svc = node.service();
            servers.push(serve(pki.server_tls(), move |s| s.add_service(svc)).await);
            nodes.push(node);
        }
        Self {
            pki,
            cluster,
            nodes,
            servers,
        }
    }

    fn urls(&self) -> Vec<String> {
        self.servers.iter().map(TestServer::url).collect()
    }

    /// A client's configuration for `endpoints`, pinning the cluster's identity key.
    fn config(&self, endpoints: Vec<String>) -> ClientConfig {
        let mut c = config(&self.pki, endpoints);
        c.identity_key = Some(self.cluster.identity_key());
        c
    }

    async fn client(&self, endpoints: Vec<String>) -> VaultClient {
        VaultClient::connect(self.config(endpoints)).await.unwrap()
    }
}

#[tokio::test]
async fn register_recover_wrong_passwords_destroy_and_delete_through_the_sdk() {
    let rig = Rig::new(1).await;
    let vault = rig.client(rig.urls()).await;

    // Phase 1: register with a limit of 3 guesses.
    let registered = vault
        .register(&account(), pw("correct horse"), Some(3))
        .await
        .unwrap();
    let status = vault.status().await.unwrap();
    assert_eq!(status.state, RecordState::Active);
    assert_eq!(status.version, Some(registered.version));
    assert_eq!((status.guesses_used, status.guess_limit), (0, 3));
    assert_eq!(status.staged_version, None);

    // Phase 2: the right password gives the key back and resets the counter.
    let recovered = vault
        .recover(&account(), pw("correct horse"))
        .await
        .unwrap();
    assert!(recovered.key == registered.key);
    assert_eq!(recovered.version, registered.version);
    assert_eq!(recovered.guesses_remaining_before, 2);
    assert_eq!(recovered.guess_limit, 3);
    assert_eq!(vault.status().await.unwrap().guesses_used, 0);

    // Phase 3: wrong passwords count down; the client finds out itself.
    for left in [2, 1, 0] {
        assert_eq!(
            vault.recover(&account(), pw("wrong")).await.err(),
            Some(VaultError::WrongPassword {
                guesses_remaining: left
            })
        );
    }
    assert_eq!(
        rig.nodes[0].calls_of("RecoverFinish").len(),
        1,
        "no finalization sent for wrong passwords"
    );

    // Phase 4: no guess left: the next attempt destroys the record, even with the right
    // password.
    assert_eq!(
        vault.recover(&account(), pw("correct horse")).await.err(),
        Some(VaultError::Destroyed)
    );
    assert_eq!(vault.status().await.unwrap().state, RecordState::Destroyed);

    // Phase 5: delete.
    assert!(vault.delete().await.unwrap());
    assert_eq!(vault.status().await.unwrap().state, RecordState::Absent);
    assert!(!vault.delete().await.unwrap());
    assert_eq!(
        vault.recover(&account(), pw("correct horse")).await.err(),
        Some(VaultError::NotFound)
    );

    // Every call carried the bearer token.
    let calls = rig.nodes[0].calls();
    assert!(calls.len() >= 12);
    assert!(calls.iter().all(|c| c.bearer));
}

#[tokio::test]
async fn register_key_keeps_the_given_key_and_a_token_for_another_account_is_refused() {
    let rig = Rig::new(1).await;
    let vault = rig.client(rig.urls()).await;
    let key = BackupKey::from_bytes([9; 32]);
    let version = vault
        .register_key(&account(), pw("pw"), None, &key)
        .await
        .unwrap();
    let recovered = vault.recover(&account(), pw("pw")).await.unwrap();
    assert!(recovered.key == key);
    assert_eq!(recovered.version, version);
    assert_eq!(recovered.guess_limit, 10, "the cluster default");

    // The token is for alice; binding OPAQUE to bob would be a silent mistake.
    let bob = AccountId::parse("bob").unwrap();
    let calls_before = rig.nodes[0].calls().len();
    assert!(matches!(
        vault.register(&bob, pw("pw"), None).await,
        Err(VaultError::InvalidArgument { field, .. }) if field == "account"
    ));
    assert!(matches!(
        vault.recover(&bob, pw("pw")).await,
        Err(VaultError::InvalidArgument { field, .. }) if field == "account"
    ));
    assert!(matches!(
        vault.register(&account(), pw("pw"), Some(0)).await,
        Err(VaultError::InvalidArgument { field, .. }) if field == "guess_limit"
    ));
    assert_eq!(rig.nodes[0].calls().len(), calls_before, "nothing was sent");

    // A token the cluster does not trust.
    let other = TestPki::new();
    let mut c = rig.config(rig.urls());
    c.token = TokenSource::fixed(token_for(&other, ACCOUNT));
    let stranger = VaultClient::connect(c).await.unwrap();
    assert!(matches!(
        stranger.status().await,
        Err(VaultError::Unauthenticated(reason)) if reason.contains("signature")
    ));
    // A token source that has nothing.
    let mut c = rig.config(rig.urls());
    c.token = TokenSource::from_fn(|| Err("issuer offline".into()));
    let tokenless = VaultClient::connect(c).await.unwrap();
    assert_eq!(
        tokenless.status().await.err(),
        Some(VaultError::Token("issuer offline".into()))
    );
}

#[tokio::test]
async fn with_token_acts_for_another_account_over_the_same_endpoints() {
    let rig = Rig::new(1).await;
    let dead = dead_endpoint().await;
    let alice = rig.client(vec![dead, rig.urls()[0].clone()]).await;
    assert_eq!(alice.status().await.unwrap().state, RecordState::Absent);
    let bob = AccountId::parse("bob").unwrap();
    let as_bob = alice.with_token(TokenSource::fixed(token_for(&rig.pki, "bob")));
    assert_eq!(as_bob.endpoints(), alice.endpoints());
    let registered = as_bob.register(&bob, pw("pw"), Some(4)).await.unwrap();
    let recovered = as_bob.recover(&bob, pw("pw")).await.unwrap();
    assert!(recovered.key == registered.key);
    assert_eq!(recovered.guess_limit, 4);
    // Alice's client is untouched: still her token, and bob's record is not hers.
    assert_eq!(alice.status().await.unwrap().state, RecordState::Absent);
    assert!(matches!(
        alice.recover(&bob, pw("pw")).await,
        Err(VaultError::InvalidArgument { field, .. }) if field == "account"
    ));
}

#[tokio::test]
async fn first_endpoint_down_the_second_answers() {
    let rig = Rig::new(1).await;
    let dead = dead_endpoint().await;
    let vault = rig.client(vec![dead, rig.urls()[0].clone()]).await;
    let started = Instant::now();
    assert_eq!(vault.status().await.unwrap().state, RecordState::Absent);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(rig.nodes[0].calls_of("Status").len(), 1);
    // The next call starts at the endpoint that answered.
    vault.status().await.unwrap();
    assert_eq!(rig.nodes[0].calls_of("Status").len(), 2);
}

#[tokio::test]
async fn unavailable_with_a_leader_hint_goes_to_the_hinted_endpoint() {
    let rig = Rig::new(3).await;
    let (a, b, c) = (&rig.nodes[0], &rig.nodes[1], &rig.nodes[2]);
    // Phase 1: hint in the `bkv-leader` metadata, as host:port.
    a.inject(None, Fault::unavailable(Some(rig.servers[2].host_port())));
    let vault = rig.client(rig.urls()).await;
    vault.status().await.unwrap();
    assert_eq!(
        (a.calls().len(), b.calls().len(), c.calls().len()),
        (1, 0, 1)
    );
    // The hinted leader is now preferred.
    vault.status().await.unwrap();
    assert_eq!(
        (a.calls().len(), b.calls().len(), c.calls().len()),
        (1, 0, 2)
    );

    // Phase 2: hint in the ErrorInfo metadata `leader` only; a fresh client starts at a.
    a.inject(
        None,
        Fault::detail(
            Code::Unavailable,
            ErrorDetails::new(reason::UNAVAILABLE).with(meta::LEADER, rig.servers[2].host_port()),
        ),
    );
    let vault = rig.client(rig.urls()).await;
    vault.status().await.unwrap();
    assert_eq!(
        (a.calls().len(), b.calls().len(), c.calls().len()),
        (2, 0, 3)
    );

    // Phase 3: a hint naming no configured endpoint is ignored: plain failover to b.
    a.inject(None, Fault::unavailable(Some("10.9.9.9:7101".into())));
    let vault = rig.client(rig.urls()).await;
    vault.status().await.unwrap();
    assert_eq!(
        (a.calls().len(), b.calls().len(), c.calls().len()),
        (3, 1, 3)
    );
}

#[tokio::test]
async fn leader_routing_follows_the_leader_named_in_answers_and_stay_routing_does_not() {
    let rig = Rig::new(3).await;
    let (a, b, c) = (&rig.nodes[0], &rig.nodes[1], &rig.nodes[2]);
    let counts = || (a.calls().len(), b.calls().len(), c.calls().len());
    rig.cluster.set_leader(Some(rig.servers[2].host_port()));

    // Stay (the default): calls keep to the endpoint that answered, whoever leads.
    let stay = rig.client(rig.urls()).await;
    stay.status().await.unwrap();
    stay.status().await.unwrap();
    assert_eq!(counts(), (2, 0, 0));
    assert_eq!(stay.current_endpoint(), stay.endpoints()[0]);

    // Leader: the first answer (from a) names c; the next calls go to c, also those of a
    // copy made with another token (the copies share what they learn).
    let mut cfg = rig.config(rig.urls());
    cfg.routing = Routing::Leader;
    let leader = VaultClient::connect(cfg).await.unwrap();
    leader.status().await.unwrap();
    assert_eq!(leader.current_endpoint(), leader.endpoints()[2]);
    leader.status().await.unwrap();
    assert_eq!(counts(), (3, 0, 1));
    let copy = leader.with_token(TokenSource::fixed(token_for(&rig.pki, ACCOUNT)));
    copy.status().await.unwrap();
    assert_eq!(counts(), (3, 0, 2));

    // The leader changes: c's next answer names b, and the original client goes there.
    rig.cluster.set_leader(Some(rig.servers[1].host_port()));
    copy.status().await.unwrap();
    leader.status().await.unwrap();
    assert_eq!(counts(), (3, 1, 3));

    // A leader that is not one of the endpoints, or garbage, is ignored: the client stays.
    for hint in ["10.9.9.9:7101", "not an address", ""] {
        rig.cluster.set_leader(Some(hint.into()));
        leader.status().await.unwrap();
    }
    rig.cluster.set_leader(None);
    leader.status().await.unwrap();
    assert_eq!(counts(), (3, 5, 3));
    assert_eq!(leader.current_endpoint(), leader.endpoints()[1]);
}

#[tokio::test]
async fn invalid_argument_and_other_codes_are_not_retried() {
    let rig = Rig::new(2).await;
    let (a, b) = (&rig.nodes[0], &rig.nodes[1]);
    a.inject(
        None,
        Fault::detail(
            Code::InvalidArgument,
            ErrorDetails::new("WRONG_LENGTH").with_field("attempt_id", "must be 16 bytes"),
        ),
    );
    let vault = rig.client(rig.urls()).await;
    assert_eq!(
        vault.status().await.err(),
        Some(VaultError::InvalidArgument {
            field: "attempt_id".into(),
            reason: "WRONG_LENGTH".into()
        })
    );
    assert_eq!((a.calls().len(), b.calls().len()), (1, 0));

    for (code, expect) in [
        (
            Code::Internal,
            VaultError::Server {
                code: Code::Internal,
                message: "injected by a".into(),
            },
        ),
        (
            Code::DeadlineExceeded,
            VaultError::Server {
                code: Code::DeadlineExceeded,
                message: "injected by a".into(),
            },
        ),
        (Code::NotFound, VaultError::NotFound),
    ] {
        a.inject(
            None,
            Fault::Status {
                code,
                detail: None,
                leader: None,
            },
        );
        assert_eq!(vault.status().await.err(), Some(expect));
    }
    assert_eq!((a.calls().len(), b.calls().len()), (4, 0));

    // Rate limiting is reported, not retried.
    a.inject(
        None,
        Fault::detail(
            Code::ResourceExhausted,
            ErrorDetails::new(reason::RATE_LIMITED)
                .with_retry_delay(std::time::Duration::from_millis(1500)),
        ),
    );
    assert_eq!(
        vault.status().await.err(),
        Some(VaultError::RateLimited {
            retry_after: Duration::from_millis(1500)
        })
    );
    assert_eq!((a.calls().len(), b.calls().len()), (5, 0));
}

#[tokio::test]
async fn recovery_retries_resend_identical_bytes_and_charge_once() {
    let rig = Rig::new(2).await;
    let (a, b) = (&rig.nodes[0], &rig.nodes[1]);
    let vault = rig.client(rig.urls()).await;
    let registered = vault.register(&account(), pw("pw"), Some(5)).await.unwrap();

    // RecoverStart: a fails twice (b in between is hung up on once), RecoverFinish: fails
    // once. All retries must carry the same bytes.
    a.inject(Some("RecoverStart"), Fault::unavailable(None));
    b.inject(Some("RecoverStart"), Fault::unavailable(None));
    a.inject(Some("RecoverStart"), Fault::unavailable(None));
    b.inject(Some("RecoverFinish"), Fault::unavailable(None));
    let recovered = vault.recover(&account(), pw("pw")).await.unwrap();
    assert!(recovered.key == registered.key);

    let starts: Vec<_> = a
        .calls_of("RecoverStart")
        .into_iter()
        .chain(b.calls_of("RecoverStart"))
        .collect();
    assert_eq!(starts.len(), 4, "3 failures and the success");
    assert!(starts.iter().all(|c| c.request == starts[0].request));
    let first = RecoverStartRequest::decode(starts[0].request.as_slice()).unwrap();
    assert_eq!(first.attempt_id.len(), 16);
    assert_eq!(first.blinded_element.len(), 32);
    let finishes: Vec<_> = a
        .calls_of("RecoverFinish")
        .into_iter()
        .chain(b.calls_of("RecoverFinish"))
        .collect();
    assert_eq!(finishes.len(), 2);
    assert_eq!(finishes[0].request, finishes[1].request);
    assert!(
        !RecoverFinishRequest::decode(finishes[0].request.as_slice())
            .unwrap()
            .ticket
            .is_empty()
    );
    // One attempt, one charge, and it was reset by the good password.
    assert_eq!(rig.cluster.charges(), 1);
    assert_eq!(rig.cluster.guesses_used(ACCOUNT), Some(0));
    assert_eq!(recovered.guesses_remaining_before, 4);

    // A second recovery is a new attempt with new ids.
    vault.recover(&account(), pw("pw")).await.unwrap();
    assert_eq!(rig.cluster.charges(), 2);
    let all: Vec<_> = a
        .calls_of("RecoverStart")
        .into_iter()
        .chain(b.calls_of("RecoverStart"))
        .collect();
    assert!(all.iter().any(|c| c.request != starts[0].request));

    // RegisterFinish retried keeps its request_id: one staged version.
    a.inject(Some("RegisterFinish"), Fault::unavailable(None));
    let again = vault.register(&account(), pw("new"), None).await.unwrap();
    let finishes: Vec<_> = a
        .calls_of("RegisterFinish")
        .into_iter()
        .chain(b.calls_of("RegisterFinish"))
        .collect();
    let last_two = &finishes[finishes.len() - 2..];
    assert_eq!(last_two[0].request, last_two[1].request);
    assert!(again.version > registered.version);
}

#[tokio::test]
async fn wrong_password_details_from_recover_finish() {
    let rig = Rig::new(1).await;
    let a = &rig.nodes[0];
    let vault = rig.client(rig.urls()).await;
    vault.register(&account(), pw("pw"), Some(5)).await.unwrap();

    // The vault's count wins over RecoverStart's.
    a.inject(
        Some("RecoverFinish"),
        Fault::detail(
            Code::PermissionDenied,
            ErrorDetails::new(reason::WRONG_PASSWORD).with(meta::GUESSES_REMAINING, 2),
        ),
    );
    assert_eq!(
        vault.recover(&account(), pw("pw")).await.err(),
        Some(VaultError::WrongPassword {
            guesses_remaining: 2
        })
    );
    // Without a count, RecoverStart's holds (5 - 2 charges).
    a.inject(
        Some("RecoverFinish"),
        Fault::Status {
            code: Code::PermissionDenied,
            detail: None,
            leader: None,
        },
    );
    assert_eq!(
        vault.recover(&account(), pw("pw")).await.err(),
        Some(VaultError::WrongPassword {
            guesses_remaining: 3
        })
    );
    // An expired ticket.
    a.inject(
        Some("RecoverFinish"),
        Fault::detail(
            Code::FailedPrecondition,
            ErrorDetails::new(reason::TICKET_EXPIRED),
        ),
    );
    assert!(matches!(
        vault.recover(&account(), pw("pw")).await,
        Err(VaultError::TicketRejected { reason }) if reason == "TICKET_EXPIRED"
    ));
}

#[tokio::test]
async fn the_deadline_bounds_the_total_time() {
    let rig = Rig::new(2).await;
    for node in &rig.nodes {
        for _ in 0..50 {
            node.inject(None, Fault::unavailable(None));
        }
    }
    let mut c = rig.config(rig.urls());
    c.deadline = Duration::from_millis(700);
    let vault = VaultClient::connect(c).await.unwrap();
    let started = Instant::now();
    let err = vault.status().await.err();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1200), "took {took:?}");
    match err {
        Some(VaultError::Unavailable { attempts, last }) => {
            assert!(attempts >= 3, "{attempts}");
            assert!(last.contains("Unavailable"), "{last}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }

    // Hung nodes: each attempt is cut at the call timeout, the call at the deadline.
    let rig = Rig::new(2).await;
    for node in &rig.nodes {
        for _ in 0..5 {
            node.inject(None, Fault::Hang(Duration::from_secs(10)));
        }
    }
    let mut c = rig.config(rig.urls());
    c.call_timeout = Duration::from_millis(300);
    c.deadline = Duration::from_millis(1000);
    let vault = VaultClient::connect(c).await.unwrap();
    let started = Instant::now();
    let err = vault.status().await.err();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert!(
        matches!(&err, Some(VaultError::Unavailable { attempts, last }) if *attempts >= 2 && last.contains("no answer")),
        "{err:?}"
    );

    // All endpoints dead: bounded too, and by the attempt budget when it is small.
    let dead = vec![dead_endpoint().await, dead_endpoint().await];
    let mut c = rig.config(dead);
    c.deadline = Duration::from_secs(20);
    c.retry.max_attempts = 4;
    let vault = VaultClient::connect(c).await.unwrap();
    let started = Instant::now();
    assert!(matches!(
        vault.status().await,
        Err(VaultError::Unavailable { attempts: 4, .. })
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn bad_configurations_are_refused_at_connect() {
    let pki = TestPki::new();
    let mut c = config(&pki, vec![]);
    assert!(matches!(
        VaultClient::connect(c.clone()).await,
        Err(VaultError::Transport(_))
    ));
    c.endpoints = vec!["http://127.0.0.1:1".into()];
    assert!(matches!(
        VaultClient::connect(c.clone()).await,
        Err(VaultError::Transport(e)) if e.contains("TLS only")
    ));
    c.endpoints = vec!["127.0.0.1:7101".into()];
    c.ksf.m_cost_kib = 1;
    assert!(matches!(
        VaultClient::connect(c.clone()).await,
        Err(VaultError::Protocol(_))
    ));
    c.ksf = KsfParams::light();
    let vault = VaultClient::connect(c).await.unwrap();
    assert_eq!(vault.endpoints(), ["https://127.0.0.1:7101"]);
}

#[tokio::test]
async fn a_node_certificate_of_another_ca_is_never_trusted() {
    let rig = Rig::new(1).await;
    let other = TestPki::new();
    let mut c = rig.config(rig.urls());
    c.ca_cert_pem = other.ca_pem();
    c.deadline = Duration::from_millis(600);
    let vault = VaultClient::connect(c).await.unwrap();
    match vault.status().await {
        Err(VaultError::Unavailable { last, .. }) => {
            assert!(last.to_lowercase().contains("certificate"), "{last}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(
        rig.nodes[0].calls().is_empty(),
        "no request reached the node"
    );
}

#[tokio::test]
async fn a_lost_recover_finish_answer_restarts_the_recovery_once() {
    let rig = Rig::new(1).await;
    let a = &rig.nodes[0];
    let vault = rig.client(rig.urls()).await;
    let registered = vault.register(&account(), pw("pw"), Some(5)).await.unwrap();

    // The vault releases the key and resets the count, the answer is lost, the retry of the
    // same ticket is refused as used: the SDK starts a new attempt, which succeeds.
    a.inject(Some("RecoverFinish"), Fault::LoseAnswer);
    let recovered = vault.recover(&account(), pw("pw")).await.unwrap();
    assert!(recovered.key == registered.key);
    let finishes = a.calls_of("RecoverFinish");
    assert_eq!(
        finishes.len(),
        3,
        "served and lost, refused as used, the new attempt's"
    );
    assert_eq!(finishes[0].request, finishes[1].request);
    assert_ne!(finishes[1].request, finishes[2].request);
    assert_eq!(rig.cluster.charges(), 2, "two attempts, each charged once");
    assert_eq!(rig.cluster.guesses_used(ACCOUNT), Some(0));

    // A wrong password is not restarted: one attempt, one guess.
    let wrong = vault.recover(&account(), pw("not it")).await;
    assert!(
        matches!(wrong, Err(VaultError::WrongPassword { .. })),
        "{wrong:?}"
    );
    assert_eq!(rig.cluster.charges(), 3);
}
