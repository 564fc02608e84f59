//! Settings of an [`crate::AdminClient`]: admin endpoints, the CA, the admin certificate.

use std::fmt;
use std::time::Duration;

use zeroize::Zeroizing;

/// Settings of an [`crate::AdminClient`].
#[derive(Clone)]
pub struct AdminConfig {
    /// Admin endpoints of nodes, `host:port` or `https://host:port`.
    pub endpoints: Vec<String>,
    /// The cluster CA certificate (PEM).
    pub ca_cert_pem: Vec<u8>,
    /// The admin certificate (PEM), with URI SAN `bkv://admin/<name>`.
    pub cert_pem: Vec<u8>,
    /// Its private key (PEM). Zeroized on drop, never shown by `Debug`.
    pub key_pem: Zeroizing<Vec<u8>>,
    /// Longest wait for one unary call (also the connect timeout).
    pub call_timeout: Duration,
}

impl AdminConfig {
    /// Settings with a 30-second call timeout.
    pub fn new(
        endpoints: Vec<String>,
        ca_cert_pem: Vec<u8>,
        cert_pem: Vec<u8>,
        key_pem: Vec<u8>,
    ) -> Self {
        Self {
            endpoints,
            ca_cert_pem,
            cert_pem,
            key_pem: Zeroizing::new(key_pem),
            call_timeout: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("endpoints", &self.endpoints)
            .field("call_timeout", &self.call_timeout)
            .finish_non_exhaustive()
    }
}
