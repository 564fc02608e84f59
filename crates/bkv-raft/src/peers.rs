//! [`PeerChannels`]: the node's gRPC channels to its peers' Raft listeners, connected
//! lazily and cached per address; shared by the Raft network and write forwarding.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bkv_proto::v1::raft_client::RaftClient;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::config::MAX_MESSAGE_BYTES;

/// How a node connects to its peers.
#[derive(Clone, Debug)]
pub struct PeerOptions {
    /// TLS (mutual, under the cluster CA) for peer connections; `None` for plaintext
    /// (tests only).
    pub tls: Option<ClientTlsConfig>,
    /// Deadline for establishing a connection.
    pub connect_timeout: Duration,
    /// Interval of HTTP/2 keep-alive pings on idle connections.
    pub keep_alive_interval: Duration,
    /// How long to wait for a keep-alive answer before dropping the connection.
    pub keep_alive_timeout: Duration,
}

impl Default for PeerOptions {
    fn default() -> Self {
        Self {
            tls: None,
            connect_timeout: Duration::from_millis(500),
            keep_alive_interval: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(5),
        }
    }
}

/// Why a channel to a peer could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("bad peer address {addr:?}: {source}")]
pub struct PeerAddrError {
    /// The address.
    pub addr: String,
    /// What tonic said.
    #[source]
    pub source: tonic::transport::Error,
}

/// Cached, lazily connected channels to peers' Raft listeners. Cheap to clone.
#[derive(Clone)]
pub struct PeerChannels {
    options: Arc<PeerOptions>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl fmt::Debug for PeerChannels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerChannels")
            .field("tls", &self.options.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl PeerChannels {
    /// Channels made with `options`.
    pub fn new(options: PeerOptions) -> Self {
        Self {
            options: Arc::new(options),
            channels: Arc::default(),
        }
    }

    /// The channel to `addr` (`host:port`), created on first use. The connection itself is
    /// made on the first call and re-made after a failure.
    pub fn channel(&self, addr: &str) -> Result<Channel, PeerAddrError> {
        let mut map = self
            .channels
            .lock()
            // The map holds only channels; a panic elsewhere cannot leave it inconsistent.
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = map.get(addr) {
            return Ok(c.clone());
        }
        let channel = self.endpoint(addr)?.connect_lazy();
        map.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    /// A Raft client for `addr` with bkv's message size limits.
    pub fn raft_client(&self, addr: &str) -> Result<RaftClient<Channel>, PeerAddrError> {
        Ok(RaftClient::new(self.channel(addr)?)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    fn endpoint(&self, addr: &str) -> Result<Endpoint, PeerAddrError> {
        let o = &self.options;
        let scheme = if o.tls.is_some() { "https" } else { "http" };
        let err = |source| PeerAddrError {
            addr: addr.to_string(),
            source,
        };
        let mut ep = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(err)?
            .connect_timeout(o.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(o.keep_alive_interval)
            .keep_alive_timeout(o.keep_alive_timeout)
            .keep_alive_while_idle(true);
        if let Some(tls) = &o.tls {
            ep = ep.tls_config(tls.clone()).map_err(err)?;
        }
        Ok(ep)
    }
}
