//! Connection limits on a node's client port, at the node's defaults
//! (`limits.max_client_connections` 4096, `max_client_connections_per_address` 256):
//!
//! 1. 1,000 established TLS + HTTP/2 connections: what one costs the node (printed).
//! 2. A client opens 10,000 TCP connections to node 1 from one address: 256 are kept, every
//!    other one is closed by the node at once (before TLS), and a client at another address
//!    is served by node 1 meanwhile.
//! 3. 10,000 connections from 40 addresses (250 each): the node keeps 4096 and closes the
//!    rest at once; a new client of node 1 is refused too, and an SDK client that knows all
//!    three nodes recovers its key through another one. Node 1's RSS is printed before, at
//!    its peak and after, and stays within a bound; once the flood is gone node 1 serves
//!    again.
//!
//! A second test sets `max_connection_age_secs` 10 and a grace of 2 s: a health `Watch`
//! stream is cut between 10 and 12 s (plus slack), not before, and an SDK client calling
//! every half second throughout never fails (its calls move to a new connection after the
//! GOAWAY).
//!
//! A third sets `max_client_requests_in_flight` to 4 and slows every log flush to 300 ms (a
//! failpoint; each recovery start commits its charge): of 16 recovery starts sent at once, 4
//! are handled and 12 answered UNAVAILABLE at once.
//!
//! The test process raises its open-files limit (to 16,384) before it starts the cluster;
//! the nodes inherit it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bkv_tests::process::{RssSampler, peak_rss_bytes, raise_open_files, rss_bytes};
use bkv_tests::{Cluster, ClusterOptions, LimitsOptions, account, password, raw, wait_for};
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpSocket, TcpStream};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const FLOOD: usize = 10_000;
/// Connects in flight at once while flooding.
const CONNECTING: usize = 256;
/// How long the node has to close a refused connection; one it keeps stays open past this.
const REFUSED_WITHIN: Duration = Duration::from_secs(2);
/// Established TLS connections measured in phase 1.
const ESTABLISHED: usize = 1_000;
/// How far node 1's RSS may go during the floods over what it was before them.
const BOUND: u64 = 128 * 1024 * 1024;
const MIB: f64 = 1024.0 * 1024.0;
const RIGHT: &str = "correct horse battery staple";

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// What a flood saw.
#[derive(Debug, Default)]
struct Flood {
    /// Connections the node kept (open after [`REFUSED_WITHIN`]).
    held: Vec<TcpStream>,
    /// Closed by the node within [`REFUSED_WITHIN`] (end of stream or reset).
    refused: usize,
    /// connect() itself failed.
    failed: usize,
    /// Time to open them all.
    opening: Duration,
}

/// Opens `n` TCP connections to `to`, spread evenly over `sources`, [`CONNECTING`] at a
/// time, and sorts them into kept and refused. Bounded: every connect and read has a
/// timeout.
async fn flood(to: SocketAddr, sources: &[IpAddr], n: usize) -> Flood {
    let started = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(CONNECTING));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let source = sources[i % sources.len()];
        let gate = gate.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(source, 0))?;
            tokio::time::timeout(Duration::from_secs(5), socket.connect(to))
                .await
                .map_err(|_| std::io::Error::other("connect timed out"))?
        });
    }
    let mut streams = Vec::with_capacity(n);
    let mut out = Flood::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(stream)) => streams.push(stream),
            _ => out.failed += 1,
        }
    }
    out.opening = started.elapsed();
    // Which ones did the node close? Read from all at once, each for REFUSED_WITHIN.
    let mut reads = tokio::task::JoinSet::new();
    for mut stream in streams {
        reads.spawn(async move {
            let mut byte = [0u8; 1];
            match tokio::time::timeout(REFUSED_WITHIN, stream.read(&mut byte)).await {
                Ok(Ok(0)) | Ok(Err(_)) => None,
                // Kept: the node waits for a TLS ClientHello (or sent something: also kept).
                _ => Some(stream),
            }
        });
    }
    while let Some(joined) = reads.join_next().await {
        match joined {
            Ok(Some(stream)) => out.held.push(stream),
            _ => out.refused += 1,
        }
    }
    out
}

/// Node `id`'s `bkv_client_connections` and refusals by reason.
async fn connection_metrics(cluster: &Cluster, id: u64) -> anyhow::Result<(f64, f64, f64)> {
    let m = cluster.node(id)?.metrics().await?;
    Ok((
        m.count("bkv_client_connections", &[]),
        m.count(
            "bkv_client_connections_refused_total",
            &[("reason", "limit")],
        ),
        m.count(
            "bkv_client_connections_refused_total",
            &[("reason", "address_limit")],
        ),
    ))
}

/// Waits until node `id` has at most `n` client connections open.
async fn wait_open_at_most(cluster: &Cluster, id: u64, n: f64) -> anyhow::Result<f64> {
    wait_for(
        "client connections to close",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || async {
            let (open, _, _) = connection_metrics(cluster, id).await?;
            Ok((open <= n).then_some(open))
        },
    )
    .await
}

async fn health_check(channel: tonic::transport::Channel) -> anyhow::Result<()> {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_connections_are_refused_past_the_limits_and_the_cluster_serves_on()
-> anyhow::Result<()> {
    let open_files = raise_open_files(16_384)?;
    let mut options = ClusterOptions::new(3);
    // The node's connection defaults; the rate limits are not what this test is about.
    options.limits = LimitsOptions::default();
    let limits = options.limits;
    let cluster = Cluster::start_with(options).await?;
    let node = cluster.node(1)?;
    let pid = node
        .pid()
        .ok_or_else(|| anyhow::anyhow!("node 1 has no process"))?;
    let client_port: SocketAddr = ([127, 0, 0, 1], node.ports().client).into();
    let alice = cluster.vault(&[1, 2, 3], "alice").await?;
    let registered = alice
        .register(&account("alice"), password(RIGHT), Some(10))
        .await?;
    drop(alice);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base = rss_bytes(pid)?;
    let (open_at_start, _, _) = connection_metrics(&cluster, 1).await?;
    println!(
        "open files {open_files}; node 1: RSS {:.1} MiB, {open_at_start} client connections \
         open",
        base as f64 / MIB
    );
    // Phase 1: what an established connection costs (TLS + HTTP/2, one health check each),
    // measured first, on memory the node has not used before.
    let before = rss_bytes(pid)?;
    let gate = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..ESTABLISHED {
        // 250 per address, under the per-address limit.
        let channel = cluster.client_channel_from(1, loopback(60 + (i / 250) as u8))?;
        let gate = gate.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            health_check(channel.clone()).await.map(|()| channel)
        });
    }
    let mut channels = Vec::with_capacity(ESTABLISHED);
    while let Some(joined) = tasks.join_next().await {
        channels.push(joined??);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (open, _, _) = connection_metrics(&cluster, 1).await?;
    let with = rss_bytes(pid)?;
    let max_total = limits.max_client_connections as usize;
    let each = with.saturating_sub(before) as f64 / ESTABLISHED as f64;
    println!(
        "phase 1: {ESTABLISHED} established TLS connections ({open} open): RSS {:.1} -> {:.1} \
         MiB, about {:.0} KiB each; {max_total} (the default limit) would be about {:.0} MiB",
        before as f64 / MIB,
        with as f64 / MIB,
        each / 1024.0,
        each * max_total as f64 / MIB
    );
    assert!(open >= ESTABLISHED as f64, "{open} open");
    drop(channels);
    wait_open_at_most(&cluster, 1, 0.0).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let sampler = RssSampler::start(pid);
    let flood_base = rss_bytes(pid)?;
    let (open_before, _, address_before) = connection_metrics(&cluster, 1).await?;

    // Phase 2: one address.
    let one = flood(client_port, &[loopback(1)], FLOOD).await;
    let (open, _, address_refused) = connection_metrics(&cluster, 1).await?;
    let per_address = limits.max_client_connections_per_address as usize;
    println!(
        "phase 2: {FLOOD} connections from 127.0.0.1 opened in {} ms: {} kept, {} closed by \
         the node within {} s, {} failed to connect; node 1: {open} open, {} refused \
         (address limit)",
        one.opening.as_millis(),
        one.held.len(),
        one.refused,
        REFUSED_WITHIN.as_secs(),
        one.failed,
        address_refused - address_before
    );
    assert_eq!(one.failed, 0, "connects failed");
    assert!(
        one.held.len() <= per_address,
        "{} kept from one address, limit {per_address}",
        one.held.len()
    );
    assert!(
        one.refused >= FLOOD - per_address,
        "only {} refused",
        one.refused
    );
    assert!(address_refused - address_before >= one.refused as f64);
    // A client at another address is served by node 1 meanwhile.
    health_check(cluster.client_channel_from(1, loopback(2))?).await?;
    let status = raw::status(
        cluster.client_channel_from(1, loopback(2))?,
        Some(&cluster.token("alice")),
    )
    .await?;
    assert!(status.is_ok(), "node 1 for another address: {status:?}");
    drop(one);
    wait_open_at_most(&cluster, 1, open_before + 2.0).await?;

    // Phase 3: many addresses, up to the total limit.
    let sources: Vec<IpAddr> = (10..50).map(loopback).collect();
    let (open_before, total_before, _) = connection_metrics(&cluster, 1).await?;
    let many = flood(client_port, &sources, FLOOD).await;
    let (open, total_refused, _) = connection_metrics(&cluster, 1).await?;
    println!(
        "phase 3: {FLOOD} connections from {} addresses opened in {} ms: {} kept, {} closed \
         by the node at once, {} failed to connect; node 1: {open} open (limit {max_total}), \
         {} refused (total limit)",
        sources.len(),
        many.opening.as_millis(),
        many.held.len(),
        many.refused,
        many.failed,
        total_refused - total_before
    );
    assert_eq!(many.failed, 0, "connects failed");
    assert!(open <= max_total as f64, "{open} open, limit {max_total}");
    assert!(
        many.held.len() + open_before as usize <= max_total,
        "{} kept",
        many.held.len()
    );
    assert!(
        many.refused >= FLOOD - max_total,
        "only {} refused",
        many.refused
    );
    // Node 1 is full: a new client of node 1 is refused before TLS...
    let refused = health_check(cluster.client_channel_from(1, loopback(3))?).await;
    assert!(refused.is_err(), "node 1 took a connection past its limit");
    // ...and an SDK client of the cluster recovers through another node.
    let t = Instant::now();
    let bob = cluster.vault(&[1, 2, 3], "alice").await?;
    let recovered = bob.recover(&account("alice"), password(RIGHT)).await?;
    assert_eq!(recovered.key, registered.key);
    println!(
        "phase 3: node 1 refuses a new client; the SDK recovered through another node in {} ms",
        t.elapsed().as_millis()
    );
    drop(bob);
    let during = rss_bytes(pid)?;
    drop(many);
    let peak = sampler.peak().await?.max(during);
    wait_open_at_most(&cluster, 1, open_before + 2.0).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_bytes(pid)?;
    // Node 1 serves again.
    health_check(cluster.client_channel_from(1, loopback(3))?).await?;
    let status = raw::status(cluster.client_channel(1)?, Some(&cluster.token("alice"))).await?;
    assert!(status.is_ok(), "node 1 after the flood: {status:?}");
    println!(
        "node 1 RSS: at start {:.1} MiB, before the floods {:.1} MiB, peak {:.1} MiB (sampled \
         every 50 ms; VmHWM {:.1} MiB), after {:.1} MiB",
        base as f64 / MIB,
        flood_base as f64 / MIB,
        peak as f64 / MIB,
        peak_rss_bytes(pid)? as f64 / MIB,
        after as f64 / MIB
    );
    assert!(
        peak <= flood_base + BOUND,
        "RSS peaked at {:.1} MiB, over baseline + {} MiB",
        peak as f64 / MIB,
        BOUND / 1024 / 1024
    );

    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_past_its_age_goes_away_and_is_closed_after_the_grace() -> anyhow::Result<()> {
    const AGE: Duration = Duration::from_secs(10);
    const GRACE: Duration = Duration::from_secs(2);
    let mut options = ClusterOptions::new(1);
    options.limits = LimitsOptions {
        max_connection_age_secs: AGE.as_secs(),
        max_connection_age_grace_secs: GRACE.as_secs(),
        ..LimitsOptions::default()
    };
    let cluster = Cluster::start_with(options).await?;
    let alice = cluster.vault(&[1], "alice").await?;
    alice
        .register(&account("alice"), password(RIGHT), Some(10))
        .await?;

    // A health Watch stream on a connection of its own: it never ends by itself.
    let started = Instant::now();
    let mut watch = HealthClient::new(cluster.client_channel_from(1, loopback(70))?)
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await?
        .into_inner();
    let watcher = tokio::spawn(async move {
        let limit = AGE + GRACE + Duration::from_secs(10);
        loop {
            match tokio::time::timeout(limit.saturating_sub(started.elapsed()), watch.message())
                .await
            {
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) => return (started.elapsed(), "ended".to_string()),
                Ok(Err(status)) => return (started.elapsed(), format!("{:?}", status.code())),
                Err(_) => return (started.elapsed(), "still open".to_string()),
            }
        }
    });

    // Meanwhile an SDK client calls every half second, across the GOAWAY.
    let mut calls = 0;
    while started.elapsed() < AGE + GRACE + Duration::from_secs(2) {
        let status = alice.status().await?;
        assert_eq!(status.state, bkv_client::RecordState::Active);
        calls += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (ended_after, how) = watcher.await?;
    println!(
        "Watch stream {how} after {} ms (age {} s, grace {} s); {calls} SDK calls across it, \
         none failed",
        ended_after.as_millis(),
        AGE.as_secs(),
        GRACE.as_secs()
    );
    assert_ne!(how, "still open", "the stream outlived age + grace");
    assert!(
        ended_after >= AGE,
        "cut before the age: {} ms",
        ended_after.as_millis()
    );
    assert!(
        ended_after <= AGE + GRACE + Duration::from_secs(3),
        "cut late: {} ms",
        ended_after.as_millis()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vault_requests_past_the_in_flight_bound_are_unavailable_at_once() -> anyhow::Result<()> {
    const BOUND: u32 = 4;
    const CALLS: usize = 16;
    let mut options = ClusterOptions::new(1);
    options.node_binary = bkv_tests::FAILPOINTS_NODE_BINARY.into();
    options.limits = LimitsOptions {
        max_client_requests_in_flight: BOUND,
        ..LimitsOptions::default()
    };
    let cluster = Cluster::start_with(options).await?;
    let alice = cluster.vault(&[1], "alice").await?;
    alice
        .register(&account("alice"), password(RIGHT), Some(10))
        .await?;
    // Every log flush (a recovery start commits its charge) now takes 300 ms; set over the
    // HTTP port with the node's write token.
    let node = cluster.node(1)?;
    let set = node
        .http_send(
            "PUT",
            "/failpoints",
            "log_flush=sleep(300)",
            Duration::from_secs(3),
        )
        .await?;
    assert_eq!(set.status, 200, "{}", set.body);

    // CALLS recovery starts at once on one connection: BOUND are handled, the others are
    // answered UNAVAILABLE before the first is done; a health check is not held back.
    // The requests are made first (blinding is the client's work), then sent; each call is
    // timed from its own send.
    let channel = cluster.client_channel(1)?;
    health_check(channel.clone()).await?;
    let token = cluster.token("alice");
    let mut requests = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let (_recovery, blinded_element) = raw::blind(&bkv_tests::account("alice"), RIGHT)?;
        requests.push(raw::with_token(
            bkv_client::proto::RecoverStartRequest {
                attempt_id: raw::fresh_id(),
                blinded_element,
            },
            Some(&token),
        )?);
    }
    let mut calls = tokio::task::JoinSet::new();
    for request in requests {
        let mut client = bkv_client::proto::vault_client::VaultClient::new(channel.clone());
        calls.spawn(async move {
            let sent = Instant::now();
            let answer = client.recover_start(request).await;
            (answer, sent.elapsed())
        });
    }
    let (mut handled, mut shed, mut shed_took) = (0, 0, Duration::ZERO);
    while let Some(joined) = calls.join_next().await {
        let (answer, took) = joined?;
        match answer {
            Ok(_) => handled += 1,
            Err(s) if s.code() == tonic::Code::Unavailable => {
                assert!(
                    s.message().contains("max_client_requests_in_flight"),
                    "{s:?}"
                );
                shed += 1;
                shed_took = shed_took.max(took);
            }
            Err(s) => anyhow::bail!("unexpected answer: {s:?}"),
        }
    }
    let m = node.metrics().await?;
    println!(
        "{CALLS} starts at once with {BOUND} allowed in flight: {handled} handled, {shed} \
         UNAVAILABLE (each within {} ms of its send); bkv_client_requests_shed_total {}",
        shed_took.as_millis(),
        m.count("bkv_client_requests_shed_total", &[])
    );
    assert_eq!(handled, BOUND as usize);
    assert_eq!(shed, CALLS - BOUND as usize);
    assert!(
        shed_took < Duration::from_millis(300),
        "a shed call waited {} ms, as long as a log flush",
        shed_took.as_millis()
    );
    assert_eq!(m.count("bkv_client_requests_shed_total", &[]), shed as f64);
    Ok(())
}
