//! One node of three lies like a compromised one, and the guess limit holds anyway.
//!
//! Node 3 runs the failpoints build with the lying switches of `bkv-node`'s `lies` module:
//! it evaluates its own OPRF key share for anything (`lie_evaluate_unchecked`), makes up
//! charges instead of committing them (`lie_skip_charge`), and after every charge it does
//! commit proposes a reset with a made-up signature (`lie_fake_reset`). The test is the
//! attacker who also holds node 3's certificate and calls the honest nodes' share service
//! directly. A password test needs `t` = 2 evaluations of distinct nodes for one blinded
//! element; node 3 gives its own for free, so every test costs one honest evaluation, and
//! the honest nodes give one only for a charge their own applied state holds, for that
//! charge's blinded element, within their own ledgers.
//!
//! 1. Made-up charges: 32 concurrent wrong-password clients through node 3, which skips the
//!    charge. Every recovery fails UNAVAILABLE (one evaluation, node 3's, is not enough); no
//!    guess is charged, no honest node evaluates anything.
//! 2. Node 3's certificate against the honest nodes: a real charge bought with one blinded
//!    element, then evaluation requests for another element under it, for a charge that
//!    does not exist, and for a charge number not reached: all refused. The charged element
//!    itself is answered (the same answer again gives nothing new).
//! 3. The guess storm: charges are committed again, each followed by node 3's made-up reset.
//!    32 concurrent wrong-password clients through node 3 complete at most `guess_limit`
//!    password tests in all (phase 2's included); every made-up reset is refused; the
//!    record is destroyed on every node and the right password no longer recovers it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bkv_client::{RetryPolicy, SecretString, VaultClient, VaultError};
use bkv_core::AccountId;
use bkv_core::oprf::{Blind, oprf_input};
use bkv_proto::contract::{AUTHORIZATION, BEARER_PREFIX};
use bkv_proto::v1::shares_client::SharesClient;
use bkv_proto::v1::vault_client::VaultClient as RawVault;
use bkv_proto::v1::{EvaluateRequest, RecoverStartRequest};
use bkv_tests::FAILPOINTS_NODE_BINARY;
use bkv_tests::{Cluster, ClusterOptions};
use rand::RngCore;
use rand::rngs::OsRng;
use tonic::Code;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

const ACCOUNT: &str = "victim@example.com";
const PASSWORD: &str = "the right password";
const GUESS_LIMIT: u32 = 6;
const LIAR: u64 = 3;
const CLIENTS: usize = 32;

/// What the storm's clients saw.
#[derive(Debug, Default)]
struct Tally {
    /// Recoveries that got `t` evaluations and failed the login: completed password tests.
    wrong_password: AtomicU32,
    /// Recoveries that failed because fewer than `t` evaluations came back.
    unavailable: AtomicU32,
    /// Recoveries refused because the record is gone.
    destroyed: AtomicU32,
    /// Anything else (printed, and must not be a success).
    other: AtomicU32,
}

impl Tally {
    fn count(&self, result: Result<(), VaultError>) {
        let slot = match result {
            Ok(()) => panic!("a wrong password recovered the key"),
            Err(VaultError::WrongPassword { .. }) => &self.wrong_password,
            Err(VaultError::Unavailable { .. }) => &self.unavailable,
            Err(VaultError::Destroyed | VaultError::NotFound) => &self.destroyed,
            Err(e) => {
                eprintln!("storm client: {e}");
                &self.other
            }
        };
        slot.fetch_add(1, Ordering::Relaxed);
    }

    fn print(&self, phase: &str) {
        println!(
            "{phase}: {} wrong-password answers, {} unavailable, {} destroyed, {} other",
            self.wrong_password.load(Ordering::Relaxed),
            self.unavailable.load(Ordering::Relaxed),
            self.destroyed.load(Ordering::Relaxed),
            self.other.load(Ordering::Relaxed)
        );
    }
}

/// Sets node `id`'s failpoints (the lying switches) on its HTTP port.
async fn lie(cluster: &Cluster, id: u64, spec: &str) -> anyhow::Result<()> {
    let answer = cluster
        .node(id)?
        .http_put("/failpoints", spec, Duration::from_secs(3))
        .await?;
    anyhow::ensure!(
        answer.status == 200,
        "PUT /failpoints {spec:?} on node {id}: {} {}",
        answer.status,
        answer.body.trim()
    );
    Ok(())
}

/// Successful and refused share evaluations of node `id` so far.
async fn evaluations(cluster: &Cluster, id: u64) -> anyhow::Result<(f64, f64)> {
    let m = cluster.node(id)?.metrics().await?;
    Ok((
        m.count("bkv_share_evaluations_total", &[("result", "ok")]),
        m.count("bkv_share_evaluations_total", &[("result", "refused")]),
    ))
}

/// `CLIENTS` concurrent clients through node 3 alone, each trying wrong passwords until the
/// record is gone or `attempts` are spent.
async fn storm(
    cluster: &Cluster,
    attempts: usize,
    max_attempts_per_call: u32,
) -> anyhow::Result<Arc<Tally>> {
    let tally = Arc::new(Tally::default());
    let account = AccountId::parse(ACCOUNT)?;
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let mut config = cluster.client_config(&[LIAR], cluster.token_source(ACCOUNT))?;
        // A made-up charge costs the serving node two honest refusals of up to 3 s each.
        config.call_timeout = Duration::from_secs(15);
        config.retry = RetryPolicy {
            max_attempts: max_attempts_per_call,
            ..RetryPolicy::default()
        };
        let vault = VaultClient::connect(config).await?;
        let tally = tally.clone();
        let account = account.clone();
        tasks.push(tokio::spawn(async move {
            for attempt in 0..attempts {
                let guess = SecretString::from(format!("wrong guess {client}/{attempt}"));
                let result = vault.recover(&account, guess).await.map(|_| ());
                let gone = matches!(result, Err(VaultError::Destroyed | VaultError::NotFound));
                tally.count(result);
                if gone {
                    break;
                }
            }
        }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    for task in tasks {
        tokio::time::timeout_at(deadline, task).await??;
    }
    Ok(tally)
}

/// A share-service client to node `to` that presents node 3's certificate.
fn as_liar(cluster: &Cluster, to: u64) -> anyhow::Result<SharesClient<tonic::transport::Channel>> {
    let pki = cluster.pki_dir();
    let identity = Identity::from_pem(
        std::fs::read(pki.join(format!("node{LIAR}.pem")))?,
        std::fs::read(pki.join(format!("node{LIAR}.key")))?,
    );
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(cluster.ca_pem()))
        .identity(identity);
    let channel = Endpoint::from_shared(format!("https://{}", cluster.node(to)?.peer_addr()))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10))
        .connect_lazy();
    Ok(SharesClient::new(channel))
}

fn blinded(password: &str) -> anyhow::Result<Vec<u8>> {
    let input = oprf_input(&AccountId::parse(ACCOUNT)?, password.as_bytes())?;
    let (_, element) = Blind::start(&input, &mut OsRng)?;
    Ok(element.as_bytes().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lying_node_gets_no_more_password_tests_than_the_guess_limit() -> anyhow::Result<()> {
    let started = Instant::now();
    let options = ClusterOptions {
        node_binary: FAILPOINTS_NODE_BINARY.into(),
        ..ClusterOptions::new(3)
    };
    let cluster = Cluster::start_with(options).await?;
    let result = run(&cluster).await;
    if result.is_err() {
        cluster.print_logs(40);
    }
    println!("c15 took {:.1} s", started.elapsed().as_secs_f64());
    result
}

async fn run(cluster: &Cluster) -> anyhow::Result<()> {
    let honest = [1u64, 2];
    let account = AccountId::parse(ACCOUNT)?;
    let owner = cluster.vault(&[1, 2, 3], ACCOUNT).await?;
    let registered = owner
        .register(&account, SecretString::from(PASSWORD), Some(GUESS_LIMIT))
        .await?;
    let mut before = Vec::new();
    for id in honest {
        before.push(evaluations(cluster, id).await?);
    }

    // 1. Made-up charges: node 3 evaluates its own share, nobody else does.
    lie(
        cluster,
        LIAR,
        "lie_skip_charge=on;lie_evaluate_unchecked=on",
    )
    .await?;
    let phase1 = storm(cluster, 1, 1).await?;
    phase1.print("made-up charges");
    assert_eq!(phase1.wrong_password.load(Ordering::Relaxed), 0);
    assert_eq!(
        phase1.unavailable.load(Ordering::Relaxed),
        CLIENTS as u32,
        "every recovery under a made-up charge fails closed"
    );
    let status = owner.status().await?;
    assert_eq!(status.guesses_used, 0, "a made-up charge is no charge");
    for (i, id) in honest.into_iter().enumerate() {
        let (ok, refused) = evaluations(cluster, id).await?;
        assert_eq!(
            ok, before[i].0,
            "node {id} evaluated under a made-up charge"
        );
        println!(
            "node {id}: {} made-up charges refused",
            refused - before[i].1
        );
    }

    // 2. Node 3's certificate against the honest nodes' share service.
    lie(
        cluster,
        LIAR,
        "lie_skip_charge=off;lie_evaluate_unchecked=on",
    )
    .await?;
    let mut attempt_id = vec![0u8; 16];
    OsRng.fill_bytes(&mut attempt_id);
    let charged_element = blinded("a bought guess")?;
    let mut raw = RawVault::new(cluster.client_channel(1)?);
    let mut start = tonic::Request::new(RecoverStartRequest {
        attempt_id: attempt_id.clone(),
        blinded_element: charged_element.clone(),
    });
    start.metadata_mut().insert(
        AUTHORIZATION,
        format!("{BEARER_PREFIX}{}", cluster.token(ACCOUNT)).parse()?,
    );
    let charged = raw.recover_start(start).await?.into_inner();
    assert_eq!(charged.evaluations.len(), 2);
    let mut password_tests = 1u32;
    let other_element = blinded("another guess under the same charge")?;
    for id in honest {
        let mut liar = as_liar(cluster, id)?;
        let ask = |attempt: &[u8], charge: u64, element: &[u8]| EvaluateRequest {
            account: ACCOUNT.into(),
            version: charged.version,
            attempt_id: attempt.to_vec(),
            charge,
            blinded_element: element.to_vec(),
        };
        let refused = liar
            .evaluate(ask(&attempt_id, charged.charge, &other_element))
            .await
            .expect_err("another blinded element under a real charge");
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        let mut unknown = vec![0u8; 16];
        OsRng.fill_bytes(&mut unknown);
        let refused = liar
            .evaluate(ask(&unknown, charged.charge, &other_element))
            .await
            .expect_err("a charge that was never made");
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        let refused = liar
            .evaluate(ask(&unknown, charged.charge + 1, &other_element))
            .await
            .expect_err("a charge number not reached");
        assert!(
            matches!(refused.code(), Code::Unavailable | Code::FailedPrecondition),
            "{refused:?}"
        );
        // The charged element itself: answered, the same share on the same element.
        liar.evaluate(ask(&attempt_id, charged.charge, &charged_element))
            .await?;
    }
    println!("node 3's certificate: 6 evaluation requests outside the charge refused");

    // 3. The storm: real charges, each followed by a made-up reset.
    lie(
        cluster,
        LIAR,
        "lie_skip_charge=off;lie_evaluate_unchecked=on;lie_fake_reset=on",
    )
    .await?;
    let attempts = GUESS_LIMIT as usize + 2;
    let phase3 = storm(cluster, attempts, 3).await?;
    phase3.print("guess storm with made-up resets");
    password_tests += phase3.wrong_password.load(Ordering::Relaxed);
    println!("password tests completed in all: {password_tests} (guess limit {GUESS_LIMIT})");
    assert!(
        password_tests <= GUESS_LIMIT,
        "{password_tests} password tests against a limit of {GUESS_LIMIT}"
    );
    assert!(
        phase3.destroyed.load(Ordering::Relaxed) > 0,
        "the storm ran the record out"
    );
    let log = cluster.node(LIAR)?.log_text();
    let refused_resets = log.matches("made-up reset refused").count();
    assert!(refused_resets > 0, "node 3 proposed made-up resets");
    assert!(
        !log.contains("made-up reset not refused"),
        "a made-up reset went through"
    );
    println!("node 3's made-up resets refused: {refused_resets}");
    for id in honest {
        let (ok, _) = evaluations(cluster, id).await?;
        let i = usize::try_from(id - 1)?;
        println!("node {id}: {} evaluations in all", ok - before[i].0);
        assert!(
            ok - before[i].0 <= f64::from(GUESS_LIMIT),
            "node {id} evaluated more than the guess limit"
        );
    }

    // The record is gone everywhere, the right password included.
    for id in [1u64, 2, 3] {
        let vault = cluster.vault(&[id], ACCOUNT).await?;
        let result = vault
            .recover(&account, SecretString::from(PASSWORD))
            .await
            .map(|r| r.key == registered.key);
        assert!(
            matches!(result, Err(VaultError::Destroyed | VaultError::NotFound)),
            "node {id}: {result:?}"
        );
    }
    Ok(())
}
