//! Rate limits on the recovery path (`limits.recover_per_account_*` and
//! `limits.recover_per_address_*`): past its burst an account's RecoverStart gets
//! RESOURCE_EXHAUSTED with a `RetryInfo` delay in the details, burns no guess, and leaves other
//! accounts alone; after the delay it passes again. Past the address burst, every account
//! from that address is refused, also one that never tried before, again without a charge.
//! A start refused by one limit costs the other nothing. A node left at its defaults limits
//! both (`cluster/node.example.toml`).

use std::time::Duration;

use bkv_client::VaultError;
use bkv_client::error_details;
use bkv_tests::{Cluster, ClusterOptions, LimitsOptions, account, password, raw};
use tonic::Code;

const RIGHT: &str = "correct horse battery staple";
/// One token every 5 s per account, three at once.
const ACCOUNT_PER_MIN: u32 = 12;
const ACCOUNT_BURST: u32 = 3;
/// One token a minute per address, twelve at once.
const ADDRESS_PER_MIN: u32 = 1;
const ADDRESS_BURST: u32 = 12;

/// The retry delay of a RESOURCE_EXHAUSTED answer, checked to be in `1..=max_ms`.
fn retry_after(status: &tonic::Status, max_ms: u64) -> u64 {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let detail = error_details(status).unwrap_or_default();
    assert_eq!(detail.reason, "RATE_LIMITED", "{status:?}");
    let ms = detail
        .retry_delay
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    assert!(
        (1..=max_ms).contains(&ms),
        "retry delay {ms} ms not in 1..={max_ms}"
    );
    ms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recovery_starts_are_rate_limited_per_account_and_per_address() -> anyhow::Result<()> {
    let mut options = ClusterOptions::new(1);
    options.limits = LimitsOptions {
        recover_per_account_per_min: ACCOUNT_PER_MIN,
        recover_per_account_burst: ACCOUNT_BURST,
        recover_per_address_per_min: ADDRESS_PER_MIN,
        recover_per_address_burst: ADDRESS_BURST,
        ..LimitsOptions::default()
    };
    let cluster = Cluster::start_with(options).await?;
    let node = cluster.node(1)?;
    let before = node.metrics().await?;
    let mut clients = Vec::new();
    for name in ["alice", "bob", "erin"] {
        let client = cluster.vault(&[1], name).await?;
        // Registration is not on the limited path.
        client
            .register(&account(name), password(RIGHT), Some(10))
            .await?;
        clients.push(client);
    }
    let (alice, bob, erin) = (&clients[0], &clients[1], &clients[2]);
    let start = |name: &str| {
        let token = cluster.token(name);
        let channel = cluster.client_channel(1);
        let account = account(name);
        async move { raw::recover_start(channel?, Some(&token), &account, RIGHT).await }
    };
    let mut refused = 0u32;
    let mut passed_address = 0u32;

    // Phase 1: alice's burst passes (each start charges a guess), the next is refused with a
    // delay of at most one refill period and charges nothing.
    for n in 0..ACCOUNT_BURST {
        let answer = start("alice").await?;
        assert!(
            answer.is_ok(),
            "alice's start {n} within the burst: {answer:?}"
        );
        passed_address += 1;
    }
    assert_eq!(alice.status().await?.guesses_used, ACCOUNT_BURST);
    let status = start("alice")
        .await?
        .err()
        .ok_or_else(|| anyhow::anyhow!("alice's start past the burst was answered"))?;
    let wait_ms = retry_after(&status, 60_000 / u64::from(ACCOUNT_PER_MIN));
    refused += 1;
    // Through the SDK: a typed error, not a retry and not a charge.
    let sdk = alice.recover(&account("alice"), password(RIGHT)).await;
    assert!(
        matches!(&sdk, Err(VaultError::RateLimited { retry_after }) if !retry_after.is_zero()),
        "{sdk:?}"
    );
    refused += 1;
    assert_eq!(
        alice.status().await?.guesses_used,
        ACCOUNT_BURST,
        "a refused start charged a guess"
    );
    println!("alice refused past her burst of {ACCOUNT_BURST}: retry after {wait_ms} ms");

    // Phase 2: bob is not affected by alice's limit.
    let answer = start("bob").await?;
    assert!(answer.is_ok(), "bob: {answer:?}");
    passed_address += 1;
    assert_eq!(bob.status().await?.guesses_used, 1);

    // Phase 3: after the delay alice passes again (one token came back).
    let status = start("alice")
        .await?
        .err()
        .ok_or_else(|| anyhow::anyhow!("alice passed again before the delay"))?;
    let wait_ms = retry_after(&status, 60_000 / u64::from(ACCOUNT_PER_MIN));
    refused += 1;
    tokio::time::sleep(Duration::from_millis(wait_ms + 100)).await;
    let answer = start("alice").await?;
    assert!(answer.is_ok(), "alice after {wait_ms} ms: {answer:?}");
    passed_address += 1;
    assert_eq!(alice.status().await?.guesses_used, ACCOUNT_BURST + 1);

    // Phase 4: the address. The account refusals above cost it nothing. Fresh accounts (no
    // record: NOT_FOUND, still taking the address's tokens) until the address bucket runs
    // dry; bounded by the burst.
    let mut fresh = 0u32;
    let dry = loop {
        anyhow::ensure!(
            passed_address <= ADDRESS_BURST,
            "{passed_address} starts passed an address burst of {ADDRESS_BURST}"
        );
        let answer = start(&format!("walker-{fresh}")).await?;
        fresh += 1;
        match answer {
            Err(s) if s.code() == Code::NotFound => passed_address += 1,
            Err(s) if s.code() == Code::ResourceExhausted => break s,
            other => anyhow::bail!("a fresh account's start: {other:?}"),
        }
    };
    let address_wait = retry_after(&dry, 60_000 / u64::from(ADDRESS_PER_MIN));
    refused += 1;
    assert_eq!(
        passed_address, ADDRESS_BURST,
        "starts that passed the address check before it ran dry"
    );
    // Erin never tried: refused by the address, nothing charged.
    let status = start("erin")
        .await?
        .err()
        .ok_or_else(|| anyhow::anyhow!("erin passed a dry address bucket"))?;
    retry_after(&status, 60_000 / u64::from(ADDRESS_PER_MIN));
    refused += 1;
    assert_eq!(erin.status().await?.guesses_used, 0);
    println!(
        "address dry after {passed_address} starts ({fresh} fresh accounts tried): retry after \
         {address_wait} ms; erin refused without a charge"
    );

    // The refusals are counted as such.
    let after = node.metrics().await?;
    let counted = after.count(
        "bkv_requests_total",
        &[("method", "RecoverStart"), ("code", "ResourceExhausted")],
    ) - before.count(
        "bkv_requests_total",
        &[("method", "RecoverStart"), ("code", "ResourceExhausted")],
    );
    assert_eq!(counted, f64::from(refused));
    println!("{refused} refusals, all counted in bkv_requests_total");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_left_at_its_defaults_limits_recovery_starts() -> anyhow::Result<()> {
    let mut options = ClusterOptions::new(1);
    options.limits = LimitsOptions::node_defaults();
    let cluster = Cluster::start_with(options).await?;
    let burst = LimitsOptions::node_defaults().recover_per_account_burst;
    let per_min = LimitsOptions::node_defaults().recover_per_account_per_min;
    // An account with no record: each start is checked by the limits, then answered
    // NOT_FOUND.
    let token = cluster.token("mallory");
    for n in 0..burst {
        let answer = raw::recover_start(
            cluster.client_channel(1)?,
            Some(&token),
            &account("mallory"),
            RIGHT,
        )
        .await?;
        assert_eq!(
            answer.err().map(|s| s.code()),
            Some(Code::NotFound),
            "start {n} within the default burst of {burst}"
        );
    }
    let status = raw::recover_start(
        cluster.client_channel(1)?,
        Some(&token),
        &account("mallory"),
        RIGHT,
    )
    .await?
    .err()
    .ok_or_else(|| anyhow::anyhow!("a start past the default burst was answered"))?;
    let wait_ms = retry_after(&status, 60_000 / u64::from(per_min));
    // Another account from the same address is well within the address's default.
    let other = raw::recover_start(
        cluster.client_channel(1)?,
        Some(&cluster.token("trent")),
        &account("trent"),
        RIGHT,
    )
    .await?;
    assert_eq!(other.err().map(|s| s.code()), Some(Code::NotFound));
    println!(
        "defaults: {burst} starts of one account passed, the next refused (retry after \
         {wait_ms} ms); another account from the same address passed"
    );
    Ok(())
}
