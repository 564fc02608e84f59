//! Endpoint addresses: `host:port` or `https://host:port`, normalized to one form, and TLS
//! channels to them.

use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Why an endpoint cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Not `host:port` or `https://host:port`.
    #[error("endpoint {0:?} is not host:port or https://host:port")]
    Malformed(String),
    /// `http://`: bkv speaks TLS only.
    #[error("endpoint {0:?} is not https; bkv speaks TLS only")]
    NotHttps(String),
    /// tonic refused the endpoint or its TLS settings.
    #[error("endpoint {endpoint:?}: {reason}")]
    Rejected {
        /// The endpoint.
        endpoint: String,
        /// tonic's reason.
        reason: String,
    },
}

/// `https://host:port` for `host:port`, `https://host:port` or `https://host:port/`.
pub fn https_url(endpoint: &str) -> Result<String, EndpointError> {
    let trimmed = endpoint.trim();
    if trimmed.starts_with("http://") {
        return Err(EndpointError::NotHttps(endpoint.to_string()));
    }
    let authority = authority(trimmed).ok_or_else(|| EndpointError::Malformed(endpoint.into()))?;
    Ok(format!("https://{authority}"))
}

/// The lowercase `host:port` of an endpoint or address, for comparing a leader hint with
/// the configured endpoints. `None` if it has no port.
pub fn authority(address: &str) -> Option<String> {
    let rest = address
        .trim()
        .strip_prefix("https://")
        .or_else(|| address.trim().strip_prefix("http://"))
        .unwrap_or_else(|| address.trim());
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return None;
    }
    let (host, port) = rest.rsplit_once(':')?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return None;
    }
    // An IPv6 literal must be bracketed so that the port can be told apart.
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return None;
    }
    Some(format!("{}:{port}", host.to_ascii_lowercase()))
}

/// TLS settings trusting `ca_pem`, presenting `identity` if given.
pub fn tls(ca_pem: &[u8], identity: Option<Identity>) -> ClientTlsConfig {
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem));
    match identity {
        Some(id) => tls.identity(id),
        None => tls,
    }
}

/// A lazily connected TLS channel to `url` (already normalized by [`https_url`]).
pub fn channel(
    url: &str,
    tls: ClientTlsConfig,
    connect_timeout: Duration,
) -> Result<Channel, EndpointError> {
    let rejected = |e: tonic::transport::Error| EndpointError::Rejected {
        endpoint: url.to_string(),
        reason: e.to_string(),
    };
    Ok(Endpoint::from_shared(url.to_string())
        .map_err(rejected)?
        .tls_config(tls)
        .map_err(rejected)?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .connect_lazy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_normalize_to_https_and_compare_by_authority() {
        assert_eq!(
            https_url("127.0.0.1:7101").as_deref(),
            Ok("https://127.0.0.1:7101")
        );
        assert_eq!(
            https_url(" https://Node-1.example:443/ ").as_deref(),
            Ok("https://node-1.example:443")
        );
        assert_eq!(https_url("[::1]:7101").as_deref(), Ok("https://[::1]:7101"));
        assert!(matches!(
            https_url("http://127.0.0.1:1"),
            Err(EndpointError::NotHttps(_))
        ));
        for bad in [
            "",
            "host",
            "host:",
            "host:99999",
            "https://h:1/path",
            "::1:80",
            "u@h:1",
        ] {
            assert!(
                matches!(https_url(bad), Err(EndpointError::Malformed(_))),
                "{bad}"
            );
        }
        assert_eq!(
            authority("https://LOCALHOST:7101"),
            authority("localhost:7101")
        );
        assert_ne!(authority("localhost:7101"), authority("localhost:7102"));
    }
}
