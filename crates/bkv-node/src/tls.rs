//! TLS for the node's listeners and its calls to peers, and the role check on mutual-TLS
//! listeners.
//!
//! The client listener presents the node certificate and asks for none; the peer and admin
//! listeners require a client certificate from the cluster CA; handlers then check the role
//! that certificate names (`bkv_core::identity::Role`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

use bkv_core::identity::Role;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::config;
use crate::error::VaultError;

/// How long a connection may take to complete its TLS handshake. Without a bound, a
/// connection that never sends a ClientHello holds a socket and a task for ever.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {key} file {path}: {source}")]
    Read {
        /// The config key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file holds no PEM block of the expected kind.
    #[error("{key} file {path} holds no PEM {what}")]
    NotPem {
        /// The config key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What was expected.
        what: &'static str,
    },
}

/// The node's certificates, loaded once at start.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    ca: Certificate,
    identity: Identity,
}

fn read_pem(key: &'static str, path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.to_path_buf(),
        source,
    })?;
    let marker = format!("-----BEGIN {what}");
    let text = String::from_utf8_lossy(&bytes);
    // Any PEM private key ("PRIVATE KEY", "EC PRIVATE KEY", ...) will do for the key file.
    let found =
        text.contains(&marker) || (what == "PRIVATE KEY" && text.contains("PRIVATE KEY-----"));
    if !found {
        return Err(TlsError::NotPem {
            key,
            path: path.to_path_buf(),
            what,
        });
    }
    Ok(bytes)
}

impl TlsMaterial {
    /// Loads the CA certificate and the node's certificate and key.
    pub fn load(tls: &config::Tls) -> Result<Self, TlsError> {
        let ca = read_pem("tls.ca_cert", &tls.ca_cert, "CERTIFICATE")?;
        let cert = read_pem("tls.cert", &tls.cert, "CERTIFICATE")?;
        let key = read_pem("tls.key", &tls.key, "PRIVATE KEY")?;
        Ok(Self {
            ca: Certificate::from_pem(ca),
            identity: Identity::from_pem(cert, key),
        })
    }

    /// The client listener: server authentication only.
    pub fn client_listener(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .timeout(HANDSHAKE_TIMEOUT)
    }

    /// A peer or admin listener: the client must present a certificate from the cluster CA.
    pub fn mutual_listener(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .timeout(HANDSHAKE_TIMEOUT)
            .client_ca_root(self.ca.clone())
            .client_auth_optional(false)
    }

    /// Calls to other nodes: trust the cluster CA, present the node certificate.
    pub fn peer_client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.identity.clone())
    }
}

/// The role named by the client certificate of a mutual-TLS request, if any.
pub fn peer_role<T>(request: &tonic::Request<T>) -> Option<Role> {
    let certs = request.peer_certs()?;
    let leaf = certs.first()?;
    role_of_certificate_cached(leaf.as_ref())
}

/// Client certificates remembered by [`role_of_certificate_cached`]: a cluster has a
/// handful of node and operator certificates; when more are seen, the cache starts over.
const ROLE_CACHE_CAPACITY: usize = 256;

/// Roles by the exact DER bytes of the certificate that names them (or `None`).
type RolesSeen = HashMap<Box<[u8]>, Option<Role>>;

/// The roles of the client certificates seen lately.
static ROLES: LazyLock<Mutex<RolesSeen>> = LazyLock::new(Mutex::default);

/// [`role_of_certificate`], remembered per certificate. Every call on the peer and admin
/// listeners asks for its caller's role, and a connection presents the same certificate on
/// every call: parsing it each time was about 2% of a leader's CPU under load (one parse per
/// forwarded write and per Raft message, measured with `perf record`). The key is the
/// certificate's bytes, so a remembered answer is the parser's answer for exactly those
/// bytes; TLS has verified the chain before any call gets here, cached or not.
pub fn role_of_certificate_cached(der: &[u8]) -> Option<Role> {
    let lock = || ROLES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(role) = lock().get(der) {
        return role.clone();
    }
    let role = role_of_certificate(der);
    let mut roles = lock();
    if roles.len() >= ROLE_CACHE_CAPACITY {
        roles.clear();
    }
    roles.insert(der.into(), role.clone());
    role
}

/// The role named by a DER certificate's URI SANs, if exactly one bkv role is named.
pub fn role_of_certificate(der: &[u8]) -> Option<Role> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let mut roles = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Role::from_uri(uri),
            _ => None,
        });
    let role = roles.next()?;
    // A certificate naming two roles is refused rather than guessed at.
    roles.next().is_none().then_some(role)
}

/// Checks that a mutual-TLS request comes from a certificate whose role `allowed` accepts:
/// PERMISSION_DENIED for another role, UNAUTHENTICATED for none.
pub fn require_role<T>(
    request: &tonic::Request<T>,
    allowed: impl Fn(&Role) -> bool,
    what: &str,
) -> Result<Role, VaultError> {
    match peer_role(request) {
        Some(role) if allowed(&role) => Ok(role),
        Some(role) => Err(VaultError::Forbidden(format!("{role} may not call {what}"))),
        None => Err(VaultError::NoRole(format!(
            "{what} needs a client certificate with a bkv role"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, SanType};

    fn cert(uris: &[&str]) -> Vec<u8> {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        for uri in uris {
            params
                .subject_alt_names
                .push(SanType::URI((*uri).try_into().expect("uri")));
        }
        let key = KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn the_cached_role_is_the_parsed_role_for_every_kind_of_certificate() {
        let node = Role::Node(3).uri();
        let admin = Role::Admin("ops".into()).uri();
        let cases = [
            (cert(&[&node]), Some(Role::Node(3))),
            (cert(&[&admin]), Some(Role::Admin("ops".into()))),
            // Two roles: refused rather than guessed at.
            (cert(&[&node, &admin]), None),
            (cert(&["https://example.com/"]), None),
            (cert(&[]), None),
            (b"not a certificate".to_vec(), None),
        ];
        for (der, want) in &cases {
            assert_eq!(role_of_certificate(der), *want);
            // First call parses and remembers, the second answers from memory.
            assert_eq!(role_of_certificate_cached(der), *want);
            assert_eq!(role_of_certificate_cached(der), *want);
        }
    }

    #[test]
    fn the_role_cache_stays_bounded() {
        let node = Role::Node(9).uri();
        let der = cert(&[&node]);
        // Distinct byte strings (none a certificate) fill the cache past its capacity.
        for i in 0..ROLE_CACHE_CAPACITY + 10 {
            assert_eq!(
                role_of_certificate_cached(format!("junk {i}").as_bytes()),
                None
            );
            let len = ROLES.lock().map(|r| r.len()).unwrap_or_default();
            assert!(len <= ROLE_CACHE_CAPACITY, "cache holds {len}");
        }
        assert_eq!(role_of_certificate_cached(&der), Some(Role::Node(9)));
    }
}
