//! Shared set-up of the bkv-raft benchmarks: a test CA and node identity, TLS settings as
//! the node uses them on its peer listener, a multi-threaded runtime of two workers (the
//! benchmark machine's size), and three Raft nodes serving each other over mutual TLS on
//! loopback.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bkv_core::{AccountId, Command, GuessLimit, Request};
use bkv_raft::{BkvNode, DiscardAudit, NodeOptions, PeerOptions, RaftNode};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, Server, ServerTlsConfig};

/// A CA and one identity it signed for 127.0.0.1.
pub struct Pki {
    pub ca: Certificate,
    pub node: Identity,
}

impl Pki {
    pub fn new() -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let node_key = KeyPair::generate().expect("node key");
        let node_cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .expect("node params")
            .signed_by(&node_key, &issuer)
            .expect("node certificate");
        Self {
            ca: Certificate::from_pem(ca_cert.pem()),
            node: Identity::from_pem(node_cert.pem(), node_key.serialize_pem()),
        }
    }

    /// The peer listener's TLS: this identity, clients must present one of the CA.
    pub fn server_tls(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.node.clone())
            .client_ca_root(self.ca.clone())
    }

    /// The peer client's TLS.
    pub fn client_tls(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.node.clone())
    }
}

/// A two-worker runtime, as on the two-core benchmark machine.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs `rounds` rounds of `n` concurrent `call()`s on `rt`, each round waiting for all of
/// its calls, and returns how long that took (for criterion's `iter_custom`).
pub fn concurrent_rounds<F, Fut, T, E>(
    rt: &tokio::runtime::Runtime,
    rounds: u64,
    n: u64,
    call: F,
) -> Duration
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Debug + Send + 'static,
{
    rt.block_on(async {
        let started = Instant::now();
        for _ in 0..rounds {
            let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(call())).collect();
            for t in tasks {
                t.await.expect("task").expect("call");
            }
        }
        started.elapsed()
    })
}

/// Three nodes, each with its sled store in a temp dir and its Raft service on a loopback
/// port under mutual TLS; node 1 leads.
pub struct Trio {
    pub nodes: Vec<RaftNode>,
    _dir: TempDir,
}

impl Trio {
    pub async fn start(pki: &Pki) -> Self {
        let dir = TempDir::new().expect("temp dir");
        let mut nodes = Vec::new();
        let mut members = Vec::new();
        for id in 1..=3u64 {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let mut opts = NodeOptions::new(
                id,
                dir.path().join(format!("n{id}")),
                Arc::new(DiscardAudit),
            );
            opts.peers = PeerOptions {
                tls: Some(pki.client_tls()),
                ..PeerOptions::default()
            };
            let node = RaftNode::open(opts).await.expect("open raft");
            let svc = node.service();
            let tls = pki.server_tls();
            tokio::spawn(async move {
                let _ = Server::builder()
                    .tls_config(tls)
                    .expect("tls")
                    .add_service(svc)
                    .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
                    .await;
            });
            members.push(BkvNode::new(addr.to_string(), "127.0.0.1:1", "127.0.0.1:2"));
            nodes.push(node);
        }
        let wait = Some(Duration::from_secs(10));
        nodes[0]
            .initialize_single(members[0].clone())
            .await
            .expect("initialise");
        nodes[0]
            .raft()
            .wait(wait)
            .current_leader(1, "node 1 leads")
            .await
            .expect("leader");
        nodes[0]
            .writer()
            .write(bootstrap())
            .await
            .expect("bootstrap");
        for id in [2u64, 3] {
            nodes[0]
                .raft()
                .add_learner(id, members[id as usize - 1].clone(), true)
                .await
                .expect("learner");
        }
        nodes[0]
            .raft()
            .change_membership(BTreeSet::from([1, 2, 3]), false)
            .await
            .expect("voters");
        Self { nodes, _dir: dir }
    }
}

/// The `Bootstrap` of a bench cluster.
pub fn bootstrap() -> Request {
    Request {
        at_unix_ms: 1_700_000_000_000,
        command: bkv_core::fixtures::bootstrap(GuessLimit::DEFAULT, GuessLimit::DEFAULT),
    }
}

/// A cheap write that always applies: `Delete` of an account that holds nothing.
pub fn delete(n: u64) -> Request {
    Request {
        at_unix_ms: 1_700_000_000_000,
        command: Command::Delete {
            account: AccountId::parse(&format!("bench-{n}")).expect("account id"),
        },
    }
}
