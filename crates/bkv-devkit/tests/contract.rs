//! The client contract as the vault's own service answers it, end to end in one process: the
//! SDK's flow (`bkv-client`) against a node of a [`FakeCluster`] (`bkv-vault`'s service over
//! the in-memory replica), with real OPAQUE, threshold OPRF, share-holders and token checks. What is checked: a finished
//! recovery ticket is single-use (also after a later charge), a token missing a claim is
//! refused naming the claim, record versions grow and are never reused, a
//! share-holder that never answers does not hold a recovery up, shares installed ahead
//! of the first recovery serve it, a share refresh keeps the key and every holder's
//! counters and erases the old shares, and a deletion committed again late leaves a
//! registration made after it.

use bkv_client::flow::{ClusterTrust, RegisterStarted, ShareEvaluation};
use bkv_client::{BackupKey, KsfParams, Recovery, Registration, SecretString};
use bkv_core::ids::{AccountId, ChargeNumber, RecordVersion};
use bkv_core::token::Claims;
use bkv_core::{Command, Outcome};
use bkv_devkit::testing::{
    FakeCluster, FakeVault, TEST_AUDIENCE as CLUSTER, TEST_ISSUER as ISSUER,
};
use bkv_proto::contract::{meta, reason};
use bkv_proto::status::ErrorDetails;
use bkv_proto::v1::vault_server::Vault as _;
use bkv_proto::v1::{
    ActivateRequest, DeleteRequest, RecoverFinishRequest, RecoverLoginRequest, RecoverStartRequest,
    RegisterStartRequest,
};
use ed25519_dalek::SigningKey;
use tonic::{Code, Request, Status};

struct Rig {
    cluster: FakeCluster,
    service: FakeVault,
    issuer: SigningKey,
}

/// What a successful RecoverFinish was sent, to send again.
struct Finished {
    request: RecoverFinishRequest,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn now_ms() -> u64 {
    bkv_core::clock::now_unix_ms()
}

fn account(name: &str) -> AccountId {
    AccountId::parse(name).expect("valid account")
}

impl Rig {
    async fn new() -> Self {
        let issuer = SigningKey::from_bytes(&[9; 32]);
        let cluster = FakeCluster::new(issuer.verifying_key()).await;
        let service = cluster.node("a");
        Self {
            cluster,
            service,
            issuer,
        }
    }

    /// `message` with `authorization: Bearer <token of account>`.
    fn request<T>(&self, account: &AccountId, message: T) -> Request<T> {
        let token =
            bkv_devkit::issue_token(&self.issuer, ISSUER, CLUSTER, account, 600).expect("token");
        let mut request = Request::new(message);
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ascii"),
        );
        request
    }

    /// Registers and activates `password` for `account`; the active version.
    async fn register(&self, account: &AccountId, password: &str) -> RecordVersion {
        let (registration, registration_request) =
            Registration::start(account, SecretString::from(password.to_string())).expect("start");
        let started = self
            .service
            .register_start(self.request(
                account,
                RegisterStartRequest {
                    registration_request,
                },
            ))
            .await
            .expect("RegisterStart")
            .into_inner();
        let started = RegisterStarted::from_response(started).expect("an answer");
        let identity = self.cluster.identity_key();
        let upload = registration
            .finish(
                &started,
                account,
                &BackupKey::generate(),
                &KsfParams::light(),
                3,
                ClusterTrust {
                    cluster_name: CLUSTER,
                    identity_key: &identity,
                },
            )
            .expect("finish");
        let finish = upload.into_request(rand_bytes());
        let version = self
            .service
            .register_finish(self.request(account, finish))
            .await
            .expect("RegisterFinish")
            .into_inner()
            .version;
        self.service
            .activate(self.request(account, ActivateRequest { version }))
            .await
            .expect("Activate");
        RecordVersion(version)
    }

    /// RecoverStart and RecoverLogin with `password`, and the client's OPAQUE finish: the
    /// RecoverFinish to send (None if the password was wrong).
    async fn login(&self, account: &AccountId, password: &str) -> Option<Finished> {
        let (recovery, blinded_element) =
            Recovery::start(account, SecretString::from(password.to_string())).expect("start");
        let attempt_id = rand_bytes();
        let started = self
            .service
            .recover_start(self.request(
                account,
                RecoverStartRequest {
                    attempt_id: attempt_id.clone(),
                    blinded_element: blinded_element.clone(),
                },
            ))
            .await
            .expect("RecoverStart")
            .into_inner();
        let evaluations: Vec<ShareEvaluation> = started
            .evaluations
            .iter()
            .map(ShareEvaluation::from)
            .collect();
        let (login, credential_request) = recovery
            .harden(&blinded_element, started.threshold, &evaluations)
            .expect("evaluations verify");
        let logged = self
            .service
            .recover_login(self.request(
                account,
                RecoverLoginRequest {
                    attempt_id,
                    credential_request,
                },
            ))
            .await
            .expect("RecoverLogin")
            .into_inner();
        let ksf = started.ksf.expect("the record's KSF");
        let finished = login
            .finish(
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
            )
            .ok()?;
        Some(Finished {
            request: RecoverFinishRequest {
                ticket: logged.ticket,
                credential_finalization: finished.credential_finalization,
                reset_signature: finished.reset_signature.to_vec(),
            },
        })
    }

    async fn finish(&self, account: &AccountId, finished: &Finished) -> Result<u64, Status> {
        self.service
            .recover_finish(self.request(account, finished.request.clone()))
            .await
            .map(|r| r.into_inner().version)
    }

    fn guesses_used(&self, account: &AccountId) -> u32 {
        self.cluster
            .guesses_used(account.as_str())
            .expect("an active record")
    }
}

fn rand_bytes() -> Vec<u8> {
    use rand::RngCore as _;
    let mut b = vec![0; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// Asserts a FAILED_PRECONDITION with reason TICKET_USED.
fn assert_ticket_used(answer: Result<u64, Status>) {
    let status = answer.expect_err("a replayed ticket is refused");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let details = ErrorDetails::of(&status).expect("google.rpc.Status details");
    assert_eq!(details.reason, reason::TICKET_USED, "{status:?}");
    assert!(status.message().contains("used already"), "{status:?}");
}

#[tokio::test]
async fn a_finished_ticket_is_refused_when_replayed_also_after_a_later_charge() {
    let rig = Rig::new().await;
    let alice = account("alice");
    let version = rig.register(&alice, "correct horse").await;

    // First recovery: finishes, resets the counter.
    let first = rig
        .login(&alice, "correct horse")
        .await
        .expect("right password");
    assert_eq!(
        rig.finish(&alice, &first).await.expect("finish"),
        version.get()
    );
    assert_eq!(rig.guesses_used(&alice), 0);

    // The same RecoverFinish again: refused as used, nothing changes. With a finalization
    // that does not verify too: a used ticket is not a wrong password.
    assert_ticket_used(rig.finish(&alice, &first).await);
    let forged = Finished {
        request: RecoverFinishRequest {
            credential_finalization: vec![0x42; 64],
            ..first.request.clone()
        },
    };
    assert_ticket_used(rig.finish(&alice, &forged).await);
    assert_eq!(rig.guesses_used(&alice), 0);

    // A wrong guess is charged; the old ticket replayed does not reset it away.
    assert!(rig.login(&alice, "wrong").await.is_none());
    assert_eq!(rig.guesses_used(&alice), 1);
    assert_ticket_used(rig.finish(&alice, &first).await);
    assert_eq!(rig.guesses_used(&alice), 1);

    // A new recovery finishes once, and its ticket is then used too.
    let second = rig
        .login(&alice, "correct horse")
        .await
        .expect("right password");
    assert_eq!(rig.guesses_used(&alice), 2);
    rig.finish(&alice, &second).await.expect("finish");
    assert_eq!(rig.guesses_used(&alice), 0);
    assert_ticket_used(rig.finish(&alice, &second).await);
    assert_ticket_used(rig.finish(&alice, &first).await);
}

#[tokio::test]
async fn the_ticket_of_a_last_guess_replayed_with_a_bad_finalization_destroys_nothing() {
    let rig = Rig::new().await;
    let alice = account("alice");
    rig.register(&alice, "pw").await; // guess limit 3
    assert!(rig.login(&alice, "wrong").await.is_none());
    assert!(rig.login(&alice, "wrong").await.is_none());
    // The third and last guess is right and finishes.
    let last = rig.login(&alice, "pw").await.expect("right password");
    rig.finish(&alice, &last).await.expect("finish");
    // Its ticket says no guess was left; replayed with garbage it is refused as used, not
    // taken for the last wrong guess.
    let forged = Finished {
        request: RecoverFinishRequest {
            credential_finalization: vec![0x42; 64],
            ..last.request.clone()
        },
    };
    assert_ticket_used(rig.finish(&alice, &forged).await);
    assert_eq!(rig.guesses_used(&alice), 0);
    let again = rig.login(&alice, "pw").await.expect("still recoverable");
    rig.finish(&alice, &again).await.expect("finish");
}

#[tokio::test]
async fn a_token_missing_a_claim_is_refused_naming_it() {
    let rig = Rig::new().await;
    let alice = account("alice");
    let t = now();
    let claims = Claims {
        iss: ISSUER.into(),
        sub: alice.as_str().into(),
        aud: CLUSTER.into(),
        iat: t,
        exp: t + 600,
        nbf: None,
    };
    let full = serde_json::to_value(&claims).expect("json");
    for name in ["iss", "sub", "aud", "iat", "exp"] {
        let mut c = full.clone();
        c.as_object_mut().expect("object").remove(name);
        let token = sign_raw(
            &rig.issuer,
            r#"{"alg":"EdDSA","typ":"JWT"}"#,
            &c.to_string(),
        );
        let mut request = Request::new(bkv_proto::v1::StatusRequest {});
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ascii"),
        );
        let status = rig.service.status(request).await.expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{name}: {status:?}");
        assert!(
            status.message().contains(&format!("`{name}`")),
            "{name}: {}",
            status.message()
        );
        let details = ErrorDetails::of(&status).expect("details");
        assert_eq!(details.reason, reason::CLAIM_MISSING, "{name}");
        assert_eq!(details.meta(meta::CLAIM), Some(name));
    }
    // The full token is accepted; `bearer` in another spelling is not a token at all.
    let token = sign_raw(&rig.issuer, r#"{"alg":"EdDSA"}"#, &full.to_string());
    for (header, ok) in [
        (format!("Bearer {token}"), true),
        (format!("bearer {token}"), false),
        (format!("Bearer  {token}"), false),
        (token.clone(), false),
    ] {
        let mut request = Request::new(bkv_proto::v1::StatusRequest {});
        request
            .metadata_mut()
            .insert("authorization", header.parse().expect("ascii"));
        let answer = rig.service.status(request).await;
        assert_eq!(answer.is_ok(), ok, "{header:.12}: {answer:?}");
        if let Err(status) = answer {
            assert_eq!(status.code(), Code::Unauthenticated);
            let details = ErrorDetails::of(&status).expect("details");
            assert!(
                [reason::TOKEN_MISSING, reason::TOKEN_MALFORMED].contains(&details.reason.as_str()),
                "{header:.12}: {details:?}"
            );
        }
    }
}

#[tokio::test]
async fn record_versions_grow_and_are_never_reused() {
    let rig = Rig::new().await;
    let (alice, bob) = (account("alice"), account("bob"));
    let before_us = now_ms() * 1000;
    let mut seen = vec![rig.register(&alice, "a").await];
    for _ in 0..3 {
        seen.push(rig.register(&bob, "b").await);
        let login = rig.login(&bob, "b").await.expect("right password");
        rig.finish(&bob, &login).await.expect("finish");
    }
    seen.push(rig.register(&alice, "a").await);
    // Each registration gets a version of its own, later ones higher: a ticket or a share
    // ledger of one record never names another.
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    // Versions are the registration's time in microseconds (the entry's clock), not a count
    // of what the vault did meanwhile: alice's two are apart by the time between them.
    let after_us = (now_ms() + 1) * 1000;
    for v in &seen {
        assert!(
            (before_us..after_us).contains(&v.get()),
            "{v:?} outside [{before_us}, {after_us})"
        );
    }
}

#[tokio::test]
async fn a_deletion_committed_again_late_leaves_a_later_registration() {
    let rig = Rig::new().await;
    let alice = account("alice");
    let first = rig.register(&alice, "a").await;
    let deleted = rig
        .service
        .delete(rig.request(&alice, DeleteRequest {}))
        .await
        .expect("Delete")
        .into_inner();
    assert!(deleted.existed);
    assert_eq!(rig.cluster.guesses_used("alice"), None, "deleted");
    // The client registers again after its deletion was answered; then a copy of the
    // deletion is committed (a forward that arrived late, or a retry on another node).
    let second = rig.register(&alice, "a").await;
    assert!(second > first);
    let again = rig
        .cluster
        .commit_again(|c| matches!(c, Command::DeleteThrough { .. }))
        .expect("the deletion was committed through a barrier");
    assert_eq!(again, Outcome::Deleted { existed: false });
    let login = rig.login(&alice, "a").await.expect("the new record stands");
    rig.finish(&alice, &login).await.expect("and recovers");
}

/// A compact JWT over raw header and claims JSON, signed by `key`.
fn sign_raw(key: &SigningKey, header: &str, claims: &str) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use ed25519_dalek::Signer as _;
    let signed = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let signature = key.sign(signed.as_bytes());
    format!("{signed}.{}", B64.encode(signature.to_bytes()))
}

#[tokio::test]
async fn a_recovery_does_not_wait_for_a_share_holder_that_never_answers() {
    let rig = Rig::new().await;
    let alice = account("alice");
    let version = rig.register(&alice, "correct horse").await;
    // Holders 1 (the serving node) and 2 are asked first; 2 never answers, as a stopped
    // node until its call times out. The node asks holder 3 as well after a short wait, so
    // the recovery completes with 1 and 3 (without that it would wait for ever: the bound
    // below turns a hang into a failure).
    for hung in [2, 3] {
        rig.cluster.hang_holder(hung, true);
        let finished = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            rig.login(&alice, "correct horse"),
        )
        .await
        .unwrap_or_else(|_| panic!("holder {hung} hung and the recovery waited for it"))
        .expect("right password");
        assert_eq!(
            rig.finish(&alice, &finished).await.expect("finish"),
            version.get()
        );
        rig.cluster.hang_holder(hung, false);
    }
    assert_eq!(rig.guesses_used(&alice), 0);
}

#[tokio::test]
async fn shares_installed_ahead_of_the_first_recovery_serve_it() {
    let rig = Rig::new().await;
    let holder = rig.cluster.share_holder(1).expect("holder 1");
    let (a, b) = (account("install-a"), account("install-b"));
    let va = rig.register(&a, "pw-a").await;
    let vb = rig.register(&b, "pw-b").await;

    // Every record naming the holder, once; installing twice installs once.
    let (all, next) = holder.records_to_install(None, 100, 0);
    assert_eq!(all, vec![(a.clone(), va), (b.clone(), vb)]);
    assert_eq!(next, None, "every account looked at");
    for (account, version) in &all {
        assert!(holder.install(account, *version).await.expect("installs"));
        assert!(!holder.install(account, *version).await.expect("installed"));
    }
    holder.flush().await.expect("flush");
    // The cursor goes on after the account given; a call looks at `scan` accounts at most
    // and says where to go on from.
    assert_eq!(
        holder.records_to_install(Some(&a), 100, 0),
        (vec![(b.clone(), vb)], None)
    );
    assert_eq!(
        holder.records_to_install(None, 1, 0),
        (vec![(a.clone(), va)], Some(a.clone()))
    );

    // A pass from the highest version issued finds only what was staged after it, and
    // looks at the other accounts without returning them.
    let mark = holder.version_clock();
    assert_eq!(holder.records_to_install(None, 100, mark), (vec![], None));
    let c = account("install-c");
    let vc = rig.register(&c, "pw-c").await;
    assert_eq!(
        holder.records_to_install(None, 100, mark),
        (vec![(c.clone(), vc)], None)
    );
    assert_eq!(
        holder.records_to_install(None, 2, mark),
        (vec![], Some(b.clone()))
    );
    assert_eq!(
        holder.records_to_install(Some(&b), 2, mark),
        (vec![(c, vc)], None)
    );
    // A version that is not the account's record installs nothing.
    assert!(
        !holder
            .install(&a, RecordVersion(va.get() + 1))
            .await
            .expect("no such record")
    );

    // The installed shares serve the recovery: the key comes back, one guess charged.
    let finished = rig.login(&a, "pw-a").await.expect("the right password");
    assert_eq!(rig.finish(&a, &finished).await.expect("finish"), va.get());
    assert_eq!(rig.guesses_used(&a), 0);
}

#[tokio::test]
async fn a_start_whose_holders_do_not_answer_is_unavailable_before_the_clients_deadline() {
    let rig = Rig::new().await;
    let bob = account("bob");
    rig.register(&bob, "correct horse").await;
    // Holders 2 and 3 never answer: one evaluation of the two needed can come back. With a
    // `grpc-timeout` of 1.5 s the node says so, UNAVAILABLE, 100 ms before the client's
    // deadline.
    rig.cluster.hang_holder(2, true);
    rig.cluster.hang_holder(3, true);
    let (_, blinded_element) =
        Recovery::start(&bob, SecretString::from("correct horse".to_string())).expect("start");
    let mut request = rig.request(
        &bob,
        RecoverStartRequest {
            attempt_id: rand_bytes(),
            blinded_element,
        },
    );
    request.metadata_mut().insert(
        "grpc-timeout",
        tonic::metadata::MetadataValue::from_static("1500m"),
    );
    let asked = std::time::Instant::now();
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        rig.service.recover_start(request),
    )
    .await
    .expect("answered, not hung");
    let took = asked.elapsed();
    let status = answer.expect_err("one holder of two needed");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("deadline"),
        "names the deadline: {}",
        status.message()
    );
    // Without the deadline it would wait for ever (the hung holders never answer).
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    rig.cluster.hang_holder(2, false);
    rig.cluster.hang_holder(3, false);
}

/// Each holder's latest ledger of `account`'s record `version`: its id and how many
/// evaluations it counts.
/// Installs every holder's share of `account`'s record `version`.
async fn install_everywhere(rig: &Rig, account: &AccountId, version: RecordVersion) {
    for holder in 1..=3 {
        rig.cluster
            .share_holder(holder)
            .expect("a holder")
            .install(account, version)
            .await
            .expect("installs");
    }
}

fn ledgers_of(rig: &Rig, account: &AccountId, version: RecordVersion) -> Vec<([u8; 32], usize)> {
    use bkv_vault::holder::LedgerStore as _;
    (1..=3)
        .map(|node| {
            let holder = rig.cluster.share_holder(node).expect("a holder");
            let id = holder
                .ledgers()
                .latest(account, version)
                .expect("reads")
                .expect("installed");
            let ledger = holder.ledgers().load(&id).expect("reads").expect("saved");
            assert!(!ledger.is_erased(), "node {node}'s latest share is live");
            (id, ledger.evaluated.len())
        })
        .collect()
}

/// A node restarted on a state older than its ledgers (Raft replays up to the commit index
/// it had saved, which can lag what the node applied and installed shares for before it
/// stopped): its sweep must erase nothing it cannot see is gone, neither the shares of a
/// record its state has not issued yet nor a refreshed share its state does not name yet.
#[tokio::test]
async fn a_sweep_on_a_state_older_than_the_ledgers_erases_nothing() {
    let rig = Rig::new().await;
    let before_registration = rig.cluster.state();
    let alice = account("rewound");
    let version = rig.register(&alice, "correct horse").await;
    install_everywhere(&rig, &alice, version).await;
    let before_refresh = rig.cluster.state();
    rig.cluster.refresh_shares(&alice).await.expect("refresh");
    assert_eq!(rig.cluster.sweep_shares().await.expect("sweep"), 3);
    let live = ledgers_of(&rig, &alice, version);

    // Restarted on the state before the refresh: the state names the old shares, whose
    // ledgers are tombstones; the new ones stay.
    let now = rig.cluster.swap_state(before_refresh);
    assert_eq!(rig.cluster.sweep_shares().await.expect("sweep"), 0);
    // Restarted on a state from before the registration: the record is not gone, only
    // not issued yet.
    rig.cluster.swap_state(before_registration);
    assert_eq!(rig.cluster.sweep_shares().await.expect("sweep"), 0);

    // Caught up again: the same live shares, and the right password recovers.
    rig.cluster.swap_state(now);
    assert_eq!(rig.cluster.sweep_shares().await.expect("sweep"), 0);
    assert_eq!(ledgers_of(&rig, &alice, version), live);
    let finished = rig
        .login(&alice, "correct horse")
        .await
        .expect("the right password after the restart");
    assert_eq!(
        rig.finish(&alice, &finished).await.expect("finish"),
        version.get()
    );
}

#[tokio::test]
async fn a_refresh_keeps_the_key_and_every_holders_counters_and_erases_the_old_shares() {
    use bkv_vault::holder::LedgerStore as _;
    let rig = Rig::new().await;
    let alice = account("refresh");
    let version = rig.register(&alice, "correct horse").await;
    // Two wrong guesses: the holders asked count them.
    for _ in 0..2 {
        assert!(rig.login(&alice, "wrong").await.is_none());
    }
    assert_eq!(rig.guesses_used(&alice), 2);
    install_everywhere(&rig, &alice, version).await;
    let before = ledgers_of(&rig, &alice, version);
    assert_eq!(
        before.iter().map(|(_, n)| n).sum::<usize>(),
        4,
        "two evaluations per guess"
    );

    // Refresh 1, taken up by the sweep: each holder's new share takes over the old one's
    // counters, and the old one is erased.
    assert_eq!(
        rig.cluster.refresh_shares(&alice).await.expect("refresh"),
        Outcome::SharesRefreshed { version }
    );
    assert_eq!(rig.cluster.sweep_shares().await.expect("sweep"), 3);
    let after = ledgers_of(&rig, &alice, version);
    for (node, ((old_id, old_count), (new_id, new_count))) in
        (1u64..).zip(before.iter().zip(&after))
    {
        assert_ne!(old_id, new_id, "node {node} holds a new share");
        assert_eq!(old_count, new_count, "node {node} kept its counters");
        let holder = rig.cluster.share_holder(node).expect("a holder");
        let old = holder
            .ledgers()
            .load(old_id)
            .expect("reads")
            .expect("a tombstone");
        assert!(old.is_erased(), "node {node}'s old share is erased");
        // The new ledger admits exactly what the old one had left.
        let mut ledger = holder
            .ledgers()
            .load(new_id)
            .expect("reads")
            .expect("saved");
        let mut admitted = 0;
        for charge in 100..200u64 {
            match ledger.admit(
                ChargeNumber(charge),
                bkv_core::ids::AttemptId::new([7; 16]),
                [1; 32],
            ) {
                Ok(_) => admitted += 1,
                Err(_) => break,
            }
        }
        assert_eq!(
            admitted + old_count,
            ledger.guess_limit as usize,
            "node {node}'s budget after the refresh"
        );
    }
    // Nothing more to sweep.
    assert_eq!(rig.cluster.sweep_shares().await.expect("sweep"), 0);

    // Refresh 2, taken up by the recovery that follows: the right password, at the last
    // guess the limit of 3 leaves, still opens the record (the key is the same).
    rig.cluster.refresh_shares(&alice).await.expect("refresh");
    assert_eq!(rig.guesses_used(&alice), 2);
    let finished = rig
        .login(&alice, "correct horse")
        .await
        .expect("the right password after two refreshes");
    assert_eq!(
        rig.finish(&alice, &finished).await.expect("finish"),
        version.get()
    );
    // The sweep installs and erases what the recoveries did not ask.
    rig.cluster.sweep_shares().await.expect("sweep");
    let last = ledgers_of(&rig, &alice, version);
    for (node, ((id, _), (new_id, _))) in (1u64..).zip(after.iter().zip(&last)) {
        assert_ne!(id, new_id);
        let holder = rig.cluster.share_holder(node).expect("a holder");
        let old = holder
            .ledgers()
            .load(id)
            .expect("reads")
            .expect("a tombstone");
        assert!(
            old.is_erased(),
            "node {node}'s share of refresh 1 is erased"
        );
    }
    assert_eq!(rig.guesses_used(&alice), 0, "the recovery reset the count");
}

#[tokio::test]
async fn a_holder_refuses_a_refresh_its_applied_state_does_not_show() {
    use bkv_vault::holder::RefreshTask;
    let rig = Rig::new().await;
    let (alice, bob) = (account("refresh-a"), account("refresh-b"));
    let va = rig.register(&alice, "pw-a").await;
    let vb = rig.register(&bob, "pw-b").await;
    let holder = rig.cluster.share_holder(1).expect("holder 1");
    let task = |account: &AccountId, version: RecordVersion, participants: &[u64]| RefreshTask {
        account: account.clone(),
        version,
        participants: participants.to_vec(),
    };
    fn refused<T>(r: Result<T, bkv_vault::holder::HolderError>) -> String {
        match r {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted"),
        }
    }
    for (bad, why) in [
        (
            task(&alice, RecordVersion(va.get() + 1), &[1, 2, 3]),
            "another version",
        ),
        (task(&alice, va, &[2, 3]), "not a participant"),
        (task(&alice, va, &[1]), "threshold"),
        (task(&alice, va, &[2, 1, 3]), "increasing"),
        (task(&alice, va, &[1, 2, 4]), "node 4 holds no share"),
    ] {
        let e = refused(holder.refresh_deal(&bad).await);
        assert!(e.contains(why), "{why}: {e}");
    }
    // Pieces of bob's refresh do not apply to alice's share; a piece missing is refused.
    let all = [1u64, 2, 3];
    let mut to_1 = Vec::new();
    for node in all {
        let dealer = rig.cluster.share_holder(node).expect("a holder");
        let pieces = dealer
            .refresh_deal(&task(&bob, vb, &all))
            .await
            .expect("deals");
        to_1.push(pieces[0].clone());
    }
    let e = refused(holder.refresh_apply(&task(&alice, va, &all), &to_1).await);
    assert!(e.contains("the pieces"), "{e}");
    let e = refused(
        holder
            .refresh_apply(&task(&bob, vb, &all), &to_1[..2])
            .await,
    );
    assert!(e.contains("one per participant"), "{e}");
    // The honest pieces give node 1's new share, encrypted to its own key.
    let share = holder
        .refresh_apply(&task(&bob, vb, &all), &to_1)
        .await
        .expect("applies");
    assert_eq!((share.node_id, share.ciphertext.len()), (1, 125));
}
