//! A flood of bogus RecoverStart calls leaves a node's memory bounded. One node, no rate
//! limits (the worst case), several TLS connections with many calls in flight each: tokens
//! for random accounts, random attempt ids, malformed ids, garbage and oversized blinded
//! elements, garbage tokens, and well-formed requests for accounts that have no record (each
//! of those commits a Raft entry). The node's RSS is sampled before, during and after; it
//! stays under a fixed bound over the baseline and does not keep growing from the first half
//! of the flood to the second. Idle connections that never start TLS are closed by the node.
//!
//! A node built in debug mode spends milliseconds on each Ed25519 token it verifies, so most
//! calls carry a token that fails before its signature is checked: the flood is about memory,
//! and those calls still go through TLS, HTTP/2, message decoding and the error path.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bkv_client::proto::RecoverStartRequest;
use bkv_client::proto::vault_client::VaultClient as RawVault;
use bkv_client::{Recovery, SecretString};
use bkv_core::token::{Claims, issue};
use bkv_tests::process::rss_bytes;
use bkv_tests::{Cluster, ClusterOptions, ISSUER_NAME, raw};
use ed25519_dalek::SigningKey;
use rand::{Rng as _, RngCore as _};
use tokio::io::AsyncReadExt as _;
use tonic::transport::Channel;

/// Connections the flood uses, and calls in flight on each.
const CONNECTIONS: usize = 4;
const IN_FLIGHT: usize = 16;
/// Calls in each half of the flood, and the time each half may take at most.
const HALF: usize = 8_000;
const HALF_TIME: Duration = Duration::from_secs(20);
/// Distinct random accounts with valid tokens.
const TOKENS: usize = 256;
/// Calls before the baseline is taken (connections, caches and allocator arenas warm up).
const WARM_UP: usize = 1_500;
/// How far over the baseline the RSS may ever go, and how much it may grow in the second
/// half of the flood.
const BOUND: u64 = 64 * 1024 * 1024;
const SECOND_HALF_GROWTH: u64 = 16 * 1024 * 1024;
/// TCP connections opened at the start that never send a byte, and how long after their
/// opening the node must have closed them all.
const IDLE_CONNECTIONS: usize = 32;
const IDLE_WAIT: Duration = Duration::from_secs(15);

const MIB: f64 = 1024.0 * 1024.0;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

/// What the flood sends. A node built in debug mode spends milliseconds verifying one
/// Ed25519 token, so most calls carry a token that fails before its signature is checked;
/// one in eight carries a valid one (for one of a pool of random accounts).
struct Flood {
    /// Valid tokens for random accounts that have no record.
    tokens: Vec<String>,
    /// Tokens with the right shape, from an issuer the node does not trust.
    strangers: Vec<String>,
    /// Well-formed blinded elements (any will do: the accounts have no record).
    requests: Vec<Vec<u8>>,
    /// Random bytes that oversized requests are cut from (random bytes are slow to make in
    /// a debug build; slices of these are not).
    noise: Vec<u8>,
}

impl Flood {
    fn new(cluster: &Cluster, issuer: &SigningKey) -> anyhow::Result<Self> {
        let stranger = SigningKey::generate(&mut rand::rngs::OsRng);
        let now = now_secs();
        let claims = |iss: &str| Claims {
            iss: iss.into(),
            sub: format!("flood-{}", hex::encode(random(12))),
            aud: cluster.options().cluster_name.clone(),
            iat: now,
            exp: now + 900,
            nbf: None,
        };
        let mut requests = Vec::new();
        for _ in 0..32 {
            requests.push(
                Recovery::start(
                    &bkv_tests::account("flood"),
                    SecretString::from("flood".to_string()),
                )?
                .1,
            );
        }
        Ok(Self {
            tokens: (0..TOKENS)
                .map(|_| issue(issuer, &claims(ISSUER_NAME)))
                .collect(),
            strangers: (0..32)
                .map(|_| issue(&stranger, &claims("stranger")))
                .collect(),
            requests,
            noise: random(64 * 1024),
        })
    }

    /// `len` bytes of noise from a random offset.
    fn noise(&self, len: usize) -> Vec<u8> {
        let len = len.min(self.noise.len());
        let at = rand::thread_rng().gen_range(0..=self.noise.len() - len);
        self.noise[at..at + len].to_vec()
    }

    /// Call `n`'s request and token, by kind: `n % 16`.
    fn call(&self, n: usize) -> (RecoverStartRequest, Option<String>) {
        let mut rng = rand::thread_rng();
        let good = || self.requests[n % self.requests.len()].clone();
        let valid = || Some(self.tokens[n % self.tokens.len()].clone());
        let (attempt_id, blinded_element, token) = match n % 16 {
            // Well-formed, for an account with no record: a Raft entry each.
            0 => (random(16), good(), valid()),
            // A malformed attempt id or a garbage blinded element, with a valid token.
            1 if n % 32 == 1 => (random(rng.gen_range(0..40)), good(), valid()),
            1 => (random(16), self.noise(good().len()), valid()),
            // Oversized blinded elements (up to 60 KiB, under the message limit): the node
            // decodes the message before it looks at the token.
            2..=5 => (
                random(16),
                self.noise(rng.gen_range(33..60 * 1024)),
                Some(hex::encode(random(32))),
            ),
            // An untrusted issuer's token.
            6..=9 => (
                random(16),
                good(),
                Some(self.strangers[n % self.strangers.len()].clone()),
            ),
            // Garbage everywhere.
            10..=12 => (
                random(rng.gen_range(0..64)),
                self.noise(rng.gen_range(0..200)),
                Some(format!("{}.e30.AA", hex::encode(random(20)))),
            ),
            // No token at all.
            _ => (random(16), good(), None),
        };
        (
            RecoverStartRequest {
                attempt_id,
                blinded_element,
            },
            token,
        )
    }
}

/// Runs calls `from..to` over `channels` with [`IN_FLIGHT`] calls in flight on each, until
/// done or `deadline`; returns the answers by code.
async fn flood(
    flood: Arc<Flood>,
    channels: &[Channel],
    from: usize,
    to: usize,
    deadline: Duration,
) -> anyhow::Result<BTreeMap<String, usize>> {
    let next = Arc::new(AtomicUsize::new(from));
    let until = Instant::now() + deadline;
    let mut lanes = tokio::task::JoinSet::new();
    for channel in channels {
        for _ in 0..IN_FLIGHT {
            let (channel, next, flood) = (channel.clone(), next.clone(), flood.clone());
            lanes.spawn(async move {
                let mut codes: BTreeMap<String, usize> = BTreeMap::new();
                let mut client = RawVault::new(channel);
                // Bounded by the shared counter and by the deadline.
                while Instant::now() < until {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= to {
                        break;
                    }
                    let (message, token) = flood.call(n);
                    let request = raw::with_token(message, token.as_deref())?;
                    let code = match client.recover_start(request).await {
                        Ok(_) => "Ok".to_string(),
                        Err(s) => format!("{:?}", s.code()),
                    };
                    *codes.entry(code).or_default() += 1;
                }
                anyhow::Ok(codes)
            });
        }
    }
    let mut codes = BTreeMap::new();
    while let Some(lane) = lanes.join_next().await {
        for (code, n) in lane?? {
            *codes.entry(code).or_default() += n;
        }
    }
    Ok(codes)
}

fn total(codes: &BTreeMap<String, usize>) -> usize {
    codes.values().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_bogus_recovery_starts_leaves_memory_bounded() -> anyhow::Result<()> {
    let mut options = ClusterOptions::new(1);
    options.client_call_timeout = Duration::from_secs(10);
    let cluster = Cluster::start_with(options).await?;
    let node = cluster.node(1)?;
    let pid = node
        .pid()
        .ok_or_else(|| anyhow::anyhow!("node 1 has no process"))?;
    let issuer =
        bkv_devkit::pki::read_issuer_key(&cluster.pki_dir().join(bkv_devkit::pki::ISSUER_KEY))?;
    let flood_calls = Arc::new(Flood::new(&cluster, &issuer)?);
    // Separate endpoints: separate HTTP/2 connections.
    let channels = (0..CONNECTIONS)
        .map(|_| cluster.client_channel(1))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();

    // Idle connections that never start TLS, on the client, peer and admin ports.
    let ports = node.ports();
    let mut idle = Vec::new();
    for n in 0..IDLE_CONNECTIONS {
        let port = [ports.client, ports.client, ports.peer, ports.admin][n % 4];
        idle.push(tokio::net::TcpStream::connect(("127.0.0.1", port)).await?);
    }
    let idle_since = Instant::now();

    // Phase 1: warm up, then the baseline.
    let warm = flood(flood_calls.clone(), &channels, 0, WARM_UP, HALF_TIME).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = rss_bytes(pid)?;
    println!(
        "warm-up: {} calls {warm:?}; baseline RSS {:.1} MiB",
        total(&warm),
        base as f64 / MIB
    );

    // Phase 2: two equal halves, with the RSS sampled throughout.
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut peak = 0u64;
            let mut samples = 0u32;
            let until = Instant::now() + 3 * HALF_TIME;
            while sampling.load(Ordering::Relaxed) && Instant::now() < until {
                if let Ok(rss) = rss_bytes(pid) {
                    peak = peak.max(rss);
                    samples += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (peak, samples)
        })
    };
    let mut halves = Vec::new();
    for half in 0..2 {
        let from = WARM_UP + half * HALF;
        let t = Instant::now();
        let codes = flood(flood_calls.clone(), &channels, from, from + HALF, HALF_TIME).await?;
        let took = t.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss = rss_bytes(pid)?;
        println!(
            "half {}: {} calls in {} ms ({:.0}/s) {codes:?}; RSS {:.1} MiB",
            half + 1,
            total(&codes),
            took.as_millis(),
            total(&codes) as f64 / took.as_secs_f64(),
            rss as f64 / MIB
        );
        halves.push((total(&codes), codes, rss));
    }
    sampling.store(false, Ordering::Relaxed);
    let (peak, samples) = sampler.await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let end = rss_bytes(pid)?;
    let (first, second) = (&halves[0], &halves[1]);
    println!(
        "RSS: baseline {:.1} MiB, after half 1 {:.1} MiB, after half 2 {:.1} MiB, peak {:.1} \
         MiB ({samples} samples), 1 s later {:.1} MiB; flood of {} calls in {} ms",
        base as f64 / MIB,
        first.2 as f64 / MIB,
        second.2 as f64 / MIB,
        peak as f64 / MIB,
        end as f64 / MIB,
        first.0 + second.0,
        started.elapsed().as_millis()
    );

    // The flood was what it should be: every kind answered, nothing released.
    for (_, codes, _) in &halves {
        assert!(
            !codes.contains_key("Ok"),
            "a bogus start was answered: {codes:?}"
        );
        for code in ["NotFound", "InvalidArgument", "Unauthenticated"] {
            assert!(
                codes.get(code).is_some_and(|n| *n > 0),
                "no {code}: {codes:?}"
            );
        }
    }
    // Equal halves: both ran to the end, or neither hit its time bound unevenly.
    let smaller = first.0.min(second.0) as f64;
    let larger = first.0.max(second.0) as f64;
    assert!(
        smaller >= 0.8 * larger,
        "unequal halves: {} and {} calls",
        first.0,
        second.0
    );
    // A debug build on a busy machine manages some 150 calls a second; below 1000 calls a
    // half the flood would show nothing.
    assert!(
        first.0 >= HALF / 8,
        "the flood was too slow to mean anything: {} calls in a half",
        first.0
    );

    // Phase 3: the bounds.
    let limit = base + BOUND;
    assert!(
        peak <= limit && first.2 <= limit && second.2 <= limit,
        "RSS went over baseline + {} MiB: peak {:.1} MiB, baseline {:.1} MiB",
        BOUND / 1024 / 1024,
        peak as f64 / MIB,
        base as f64 / MIB
    );
    assert!(
        second.2 <= first.2 + SECOND_HALF_GROWTH,
        "RSS kept growing: {:.1} MiB after half 1, {:.1} MiB after half 2",
        first.2 as f64 / MIB,
        second.2 as f64 / MIB
    );

    // Phase 4: the idle connections that never started TLS were closed by the node (within
    // its handshake timeout, 10 s).
    let mut closed = 0;
    let read_until = idle_since + IDLE_WAIT;
    for stream in &mut idle {
        let mut byte = [0u8; 1];
        let left = read_until
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        match tokio::time::timeout(left, stream.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => closed += 1,
            _ => {}
        }
    }
    println!(
        "{closed} of {IDLE_CONNECTIONS} idle connections closed by the node within {} s",
        idle_since.elapsed().as_secs()
    );
    assert_eq!(
        closed, IDLE_CONNECTIONS,
        "idle pre-TLS connections left open"
    );

    // The node still serves.
    cluster.wait_serving(1, Duration::from_secs(5)).await?;
    let answer = raw::status(cluster.client_channel(1)?, Some(&cluster.token("after"))).await?;
    assert!(answer.is_ok(), "{answer:?}");
    Ok(())
}
