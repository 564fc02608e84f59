//! A dev PKI in a temp dir and tonic servers under TLS on 127.0.0.1, for tests.

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::Router;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::pki;

/// A cluster's dev PKI in a temp dir: CA, node 1 (SANs 127.0.0.1, localhost), admin,
/// issuer.
#[derive(Debug)]
pub struct TestPki {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
}

impl TestPki {
    /// Makes the PKI. Panics on failure (test support).
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        pki::init(dir.path(), "bkv-test").expect("pki init");
        pki::node(
            dir.path(),
            1,
            &["127.0.0.1".to_string(), "localhost".to_string()],
        )
        .expect("pki node");
        Self { dir }
    }

    /// A file of the PKI.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A file's bytes.
    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).expect("read pki file")
    }

    /// The CA certificate (PEM).
    pub fn ca_pem(&self) -> Vec<u8> {
        self.read(pki::CA_CERT)
    }

    /// Node 1's certificate and key.
    pub fn node_identity(&self) -> Identity {
        Identity::from_pem(self.read("node1.pem"), self.read("node1.key"))
    }

    /// A client listener: server authentication only.
    pub fn server_tls(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(self.node_identity())
    }

    /// A mutual-TLS listener: a client certificate from this CA is required.
    pub fn mutual_server_tls(&self) -> ServerTlsConfig {
        self.server_tls()
            .client_ca_root(Certificate::from_pem(self.ca_pem()))
            .client_auth_optional(false)
    }

    /// The issuer's signing key.
    pub fn issuer_key(&self) -> ed25519_dalek::SigningKey {
        pki::read_issuer_key(&self.path(pki::ISSUER_KEY)).expect("issuer key")
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

/// A server running on 127.0.0.1 until dropped.
#[derive(Debug)]
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// `127.0.0.1:<port>`.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// Stops the server and waits (at most 5 s) for it to end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Serves what `routes` adds under `tls` on a fresh loopback port.
pub async fn serve(tls: ServerTlsConfig, routes: impl FnOnce(&mut Server) -> Router) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let mut server = Server::builder().tls_config(tls).expect("tls config");
    let router = routes(&mut server);
    let (tx, rx) = oneshot::channel::<()>();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let task = tokio::spawn(async move {
        let _ = router
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            })
            .await;
    });
    TestServer {
        addr,
        shutdown: Some(tx),
        task: Some(task),
    }
}

/// `https://127.0.0.1:<port>` where nothing listens (the port was just free).
pub async fn dead_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    format!("https://{addr}")
}
