//! `/metrics` after a session on one node: requests by method and code, latency counts,
//! guesses charged, recoveries, records destroyed, share evaluations and shares held, HSM
//! operation counts (records, tickets, and the share-holder's ECDH and share sealing) and the
//! Raft gauges all moved by what the session did; and `PUT /log-level` changes the log filter at run
//! time (debug lines appear, then stop) and refuses a bad filter with 400. Writes need the
//! node's bearer token (`http.write_token_file`): without it, or with another, 401 and no
//! change.

use std::time::Duration;

use bkv_client::VaultError;
use bkv_client::proto::RecoverStartRequest;
use bkv_client::proto::vault_client::VaultClient as RawVault;
use bkv_tests::{Cluster, ClusterOptions, Metrics, account, password, raw, wait_for};

const RIGHT: &str = "correct horse battery staple";
const WRONG: &str = "Tr0ub4dor&3";

/// `after - before` of the samples named `name` with `labels`.
fn delta(before: &Metrics, after: &Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.count(name, labels) - before.count(name, labels)
}

fn requests(before: &Metrics, after: &Metrics, method: &str, code: &str) -> f64 {
    delta(
        before,
        after,
        "bkv_requests_total",
        &[("method", method), ("code", code)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_move_with_a_session_and_the_log_level_changes_at_run_time() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(ClusterOptions::new(1)).await?;
    let node = cluster.node(1)?;
    let before = node.metrics().await?;
    for name in [
        "bkv_serving",
        "bkv_raft_term",
        "bkv_raft_leader",
        "bkv_raft_is_leader",
        "bkv_raft_last_log_index",
        "bkv_raft_applied_index",
        "bkv_raft_apply_lag",
        "bkv_raft_snapshot_index",
        "bkv_snapshot_bytes",
        "bkv_guesses_charged_total",
        "bkv_recoveries_total",
        "bkv_records_destroyed_total",
        "bkv_share_holder_failures_total",
        "bkv_shares_held",
    ] {
        assert!(
            before.get(name, &[]).is_some(),
            "{name} missing on /metrics"
        );
    }

    // Phase 1: the session. Alice registers, guesses wrong once, recovers; Bob (one guess)
    // guesses wrong and his next start destroys the record; two refused calls.
    let alice = cluster.vault(&[1], "alice").await?;
    alice
        .register(&account("alice"), password(RIGHT), None)
        .await?;
    let wrong = alice.recover(&account("alice"), password(WRONG)).await;
    assert!(
        matches!(wrong, Err(VaultError::WrongPassword { .. })),
        "{wrong:?}"
    );
    alice.recover(&account("alice"), password(RIGHT)).await?;
    let bob = cluster.vault(&[1], "bob").await?;
    bob.register(&account("bob"), password(RIGHT), Some(1))
        .await?;
    let wrong = bob.recover(&account("bob"), password(WRONG)).await;
    assert!(
        matches!(
            wrong,
            Err(VaultError::WrongPassword {
                guesses_remaining: 0
            })
        ),
        "{wrong:?}"
    );
    let gone = bob.recover(&account("bob"), password(RIGHT)).await;
    assert!(matches!(gone, Err(VaultError::Destroyed)), "{gone:?}");
    let no_token = raw::status(cluster.client_channel(1)?, None).await?;
    assert_eq!(
        no_token.err().map(|s| s.code()),
        Some(tonic::Code::Unauthenticated)
    );
    let bad_attempt = RawVault::new(cluster.client_channel(1)?)
        .recover_start(raw::with_token(
            RecoverStartRequest {
                attempt_id: vec![1, 2, 3],
                blinded_element: vec![],
            },
            Some(&cluster.token("alice")),
        )?)
        .await;
    assert_eq!(
        bad_attempt.err().map(|s| s.code()),
        Some(tonic::Code::InvalidArgument)
    );

    // Phase 2: the counters moved by exactly that much.
    let after = wait_for(
        "the Raft gauges to catch up",
        Duration::from_secs(5),
        Duration::from_millis(100),
        || async {
            let m = node.metrics().await?;
            let applied = m.count("bkv_raft_applied_index", &[]);
            let last = m.count("bkv_raft_last_log_index", &[]);
            // Stage, Activate, 2 charges, a reset for alice; Stage, Activate, a charge and
            // the destroying charge for bob: 9 entries.
            let moved = applied - before.count("bkv_raft_applied_index", &[]);
            Ok((moved >= 9.0 && applied == last).then_some(m))
        },
    )
    .await?;
    let expected = [
        ("RegisterStart", "Ok", 2.0),
        ("RegisterFinish", "Ok", 2.0),
        ("Activate", "Ok", 2.0),
        ("RecoverStart", "Ok", 3.0),
        ("RecoverStart", "FailedPrecondition", 1.0),
        ("RecoverStart", "InvalidArgument", 1.0),
        ("RecoverLogin", "Ok", 3.0),
        ("RecoverFinish", "Ok", 1.0),
        ("Status", "Unauthenticated", 1.0),
    ];
    for (method, code, n) in expected {
        assert_eq!(
            requests(&before, &after, method, code),
            n,
            "bkv_requests_total{{method={method},code={code}}}"
        );
    }
    let counted = delta(&before, &after, "bkv_requests_total", &[]);
    let listed: f64 = expected.iter().map(|(_, _, n)| n).sum();
    assert_eq!(
        counted, listed,
        "calls counted that the session did not make"
    );
    assert_eq!(
        delta(
            &before,
            &after,
            "bkv_request_duration_seconds_count",
            &[("method", "RecoverStart")]
        ),
        5.0
    );
    // The share sweep (every few seconds) counts the shares of live records: alice's; bob's
    // went with his record.
    let held = wait_for(
        "bkv_shares_held to count alice's share only",
        Duration::from_secs(15),
        Duration::from_millis(250),
        || async {
            let m = node.metrics().await?;
            let held = m.count("bkv_shares_held", &[]);
            Ok((held == 1.0).then_some(held))
        },
    )
    .await?;
    for (name, n) in [
        ("bkv_guesses_charged_total", 3.0),
        ("bkv_recoveries_total", 1.0),
        ("bkv_records_destroyed_total", 1.0),
        ("bkv_share_holder_failures_total", 0.0),
    ] {
        assert_eq!(delta(&before, &after, name, &[]), n, "{name}");
    }
    // One node: threshold 1, so each of the three charged starts got this node's own
    // evaluation, and none was refused.
    for (result, n) in [("ok", 3.0), ("refused", 0.0)] {
        assert_eq!(
            delta(
                &before,
                &after,
                "bkv_share_evaluations_total",
                &[("result", result)]
            ),
            n,
            "bkv_share_evaluations_total{{result={result}}}"
        );
    }
    let hsm = |op: &str| {
        delta(
            &before,
            &after,
            "bkv_hsm_op_duration_seconds_count",
            &[("op", op)],
        )
    };
    // Seals: two records and three tickets (one per RecoverLogin); unseals: three records
    // and one ticket. Each record's share is opened with the token's ECDH and sealed under
    // its share key once: ahead of its first recovery or at it, whichever comes first.
    let (seals, unseals) = (hsm("seal"), hsm("unseal"));
    assert!(
        seals >= 5.0 && unseals >= 4.0,
        "seals {seals}, unseals {unseals}"
    );
    let (ecdh, share_seals) = (hsm("share_ecdh"), hsm("seal_share"));
    assert_eq!(
        (ecdh, share_seals),
        (2.0, 2.0),
        "share ECDH and share seals: one per record"
    );
    assert_eq!(after.count("bkv_hsm_errors_total", &[]), 0.0);
    assert_eq!(after.count("bkv_serving", &[]), 1.0);
    assert_eq!(after.count("bkv_raft_leader", &[]), 1.0);
    assert_eq!(after.count("bkv_raft_is_leader", &[]), 1.0);
    assert_eq!(after.count("bkv_raft_apply_lag", &[]), 0.0);
    assert!(after.count("bkv_raft_term", &[]) >= 1.0);
    println!(
        "after the session: {counted} calls counted, {seals} seals, {unseals} unseals, \
         {ecdh} share ECDH, {share_seals} share seals, {held} shares held, applied index {} \
         -> {}",
        before.count("bkv_raft_applied_index", &[]),
        after.count("bkv_raft_applied_index", &[])
    );

    // Phase 3: the log level. At `info`, refused calls are not logged; at debug they are;
    // back at `info` they are not; a bad filter is refused and changes nothing.
    let refused_lines = || {
        node.log_text()
            .lines()
            .filter(|l| l.contains("call refused"))
            .count()
    };
    assert_eq!(refused_lines(), 0, "debug lines at level info");
    for authorization in [
        None,
        Some("Bearer not-the-token-of-this-node"),
        Some("debug"),
    ] {
        let refused = node
            .http_send_as(
                "PUT",
                "/log-level",
                "debug",
                authorization,
                Duration::from_secs(3),
            )
            .await?;
        assert_eq!(refused.status, 401, "{authorization:?}: {}", refused.body);
    }
    raw::status(cluster.client_channel(1)?, None).await?.ok();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        refused_lines(),
        0,
        "a write without the token changed the level"
    );
    println!("PUT /log-level without the bearer token: 401, level unchanged");
    let set = node
        .http_put("/log-level", "bkv_node=debug,info", Duration::from_secs(3))
        .await?;
    assert_eq!(set.status, 200, "{}", set.body);
    raw::status(cluster.client_channel(1)?, None).await?.ok();
    let at_debug = wait_for(
        "a debug line",
        Duration::from_secs(3),
        Duration::from_millis(50),
        || async { Ok(Some(refused_lines()).filter(|n| *n > 0)) },
    )
    .await?;
    let bad = node
        .http_put("/log-level", "bkv_node=loud", Duration::from_secs(3))
        .await?;
    assert_eq!(bad.status, 400, "a bad filter: {}", bad.body);
    println!("bad filter refused: {}", bad.body.trim());
    // Still at debug: the bad filter changed nothing.
    raw::status(cluster.client_channel(1)?, None).await?.ok();
    wait_for(
        "another debug line",
        Duration::from_secs(3),
        Duration::from_millis(50),
        || async { Ok((refused_lines() > at_debug).then_some(())) },
    )
    .await?;
    let set = node
        .http_put("/log-level", "info", Duration::from_secs(3))
        .await?;
    assert_eq!(set.status, 200, "{}", set.body);
    let at_info = refused_lines();
    for _ in 0..3 {
        raw::status(cluster.client_channel(1)?, None).await?.ok();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        refused_lines(),
        at_info,
        "debug lines after going back to info"
    );
    let wrong_method = node.http_get("/log-level", Duration::from_secs(3)).await?;
    assert_eq!(wrong_method.status, 405, "GET /log-level");
    Ok(())
}
