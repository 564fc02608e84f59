//! Raft and write forwarding between two nodes over mutual TLS under a test CA, as the node
//! configures its peer listener.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bkv_core::Outcome;
use bkv_raft::{BkvNode, DiscardAudit, NodeOptions, PeerOptions, RaftNode};
use common::{bootstrap_vault, stage};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, Server, ServerTlsConfig};

const WAIT: Duration = Duration::from_secs(10);

struct Pki {
    ca: Certificate,
    node: Identity,
}

fn pki() -> anyhow::Result<Pki> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let node_key = KeyPair::generate()?;
    let node_cert =
        CertificateParams::new(vec!["127.0.0.1".to_string()])?.signed_by(&node_key, &issuer)?;
    Ok(Pki {
        ca: Certificate::from_pem(ca_cert.pem()),
        node: Identity::from_pem(node_cert.pem(), node_key.serialize_pem()),
    })
}

async fn start(
    pki: &Pki,
    root: &TempDir,
    id: u64,
) -> anyhow::Result<(RaftNode, BkvNode, oneshot::Sender<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut opts = NodeOptions::new(id, root.path().join(id.to_string()), Arc::new(DiscardAudit));
    opts.peers = PeerOptions {
        tls: Some(
            ClientTlsConfig::new()
                .ca_certificate(pki.ca.clone())
                .identity(pki.node.clone()),
        ),
        ..PeerOptions::default()
    };
    let node = RaftNode::open(opts).await?;
    let mut server = Server::builder().tls_config(
        ServerTlsConfig::new()
            .identity(pki.node.clone())
            .client_ca_root(pki.ca.clone()),
    )?;
    let svc = node.service();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = server
            .add_service(svc)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            })
            .await;
    });
    let me = BkvNode::new(addr.to_string(), "127.0.0.1:1", "127.0.0.1:2");
    Ok((node, me, stop))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_over_mutual_tls() -> anyhow::Result<()> {
    let pki = pki()?;
    let root = TempDir::new()?;
    let (n1, me1, stop1) = start(&pki, &root, 1).await?;
    let (n2, me2, stop2) = start(&pki, &root, 2).await?;

    // --- phase 1: node 1 leads alone; node 2 joins as a voter over TLS.
    n1.initialize_single(me1).await?;
    n1.raft()
        .wait(Some(WAIT))
        .current_leader(1, "node 1 leads")
        .await?;
    bootstrap_vault(&n1.writer()).await?;
    n1.raft().add_learner(2, me2, true).await?;
    n1.raft()
        .change_membership(std::collections::BTreeSet::from([1, 2]), false)
        .await?;

    // --- phase 2: a write through node 2 is forwarded to node 1 over TLS.
    let w = n2.writer().write(stage(1)).await?;
    assert!(matches!(w.outcome, Outcome::Staged { .. }), "{w:?}");
    n2.raft()
        .wait(Some(WAIT))
        .applied_index_at_least(Some(w.log_index), "node 2 applies the write")
        .await?;
    assert_eq!(n1.state().digest_at(), n2.state().digest_at());

    // --- phase 3: shut down.
    n1.shutdown().await;
    n2.shutdown().await;
    let _ = stop1.send(());
    let _ = stop2.send(());
    Ok(())
}
