//! [`ClientKit`]: what a client task of a chaos run needs to reach the cluster from a
//! spawned task: the CA, the token issuer, the node endpoints (which change with
//! membership), and a cached raw channel per node.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use bkv_client::proto::vault_client::VaultClient as RawVault;
use bkv_client::{ClientConfig, KsfParams, Routing, SecretString, TokenSource, VaultClient};
use bkv_core::token::{Claims, issue};
use ed25519_dalek::SigningKey;
use tonic::transport::Channel;

use super::history::now_ms;
use crate::cluster::{Cluster, ISSUER_NAME};

/// What a client task needs to reach the cluster: CA, token issuer, node endpoints.
#[derive(Clone)]
pub struct ClientKit {
    ca_pem: Vec<u8>,
    identity_key: [u8; 32],
    issuer: SigningKey,
    cluster_name: String,
    endpoints: Arc<RwLock<BTreeMap<u64, String>>>,
    channels: Arc<Mutex<HashMap<u64, (String, Channel)>>>,
    /// Per-call timeout of clients.
    pub call_timeout: Duration,
    /// Overall deadline of an SDK call (its failover retries until then).
    pub deadline: Duration,
}

impl std::fmt::Debug for ClientKit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKit")
            .field("nodes", &self.nodes())
            .finish_non_exhaustive()
    }
}

impl ClientKit {
    /// A kit for `cluster`'s current nodes.
    pub fn new(cluster: &Cluster) -> anyhow::Result<Self> {
        let issuer =
            bkv_devkit::pki::read_issuer_key(&cluster.pki_dir().join(bkv_devkit::pki::ISSUER_KEY))?;
        let kit = Self {
            ca_pem: cluster.ca_pem().to_vec(),
            identity_key: cluster.identity_public(),
            issuer,
            cluster_name: cluster.options().cluster_name.clone(),
            endpoints: Arc::default(),
            channels: Arc::default(),
            call_timeout: Duration::from_secs(3),
            deadline: Duration::from_secs(10),
        };
        kit.refresh(cluster);
        Ok(kit)
    }

    /// Takes the cluster's current nodes as the endpoints (a node added again under its id
    /// gets new ports: its cached channel goes).
    pub fn refresh(&self, cluster: &Cluster) {
        let mut map = BTreeMap::new();
        for id in cluster.ids() {
            if let Ok(n) = cluster.node(id) {
                map.insert(id, n.client_url());
            }
        }
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        channels.retain(|id, (url, _)| map.get(id) == Some(url));
        *self
            .endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner) = map;
    }

    /// The node ids known.
    pub fn nodes(&self) -> Vec<u64> {
        self.endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect()
    }

    /// A fresh account token for `account` (valid 10 minutes).
    pub fn token(&self, account: &str) -> String {
        let now = now_ms() / 1000;
        issue(
            &self.issuer,
            &Claims {
                iss: ISSUER_NAME.into(),
                sub: account.into(),
                aud: self.cluster_name.clone(),
                iat: now,
                exp: now + 600,
                nbf: None,
            },
        )
    }

    /// An SDK client for `account` over every known node, starting at a node picked by
    /// `first` (so clients spread over the nodes). Odd `first` routes to the leader
    /// (`Routing::Leader`), even stays where it starts, so that both routings meet the
    /// faults.
    pub async fn vault(&self, account: &str, first: usize) -> anyhow::Result<VaultClient> {
        let mut urls: Vec<String> = self
            .endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        anyhow::ensure!(!urls.is_empty(), "no endpoint");
        let n = urls.len();
        urls.rotate_left(first % n);
        let kit = self.clone();
        let account_owned = account.to_string();
        let token = TokenSource::from_fn(move || Ok(SecretString::from(kit.token(&account_owned))));
        let mut config = ClientConfig::new(urls, self.ca_pem.clone(), token);
        config.identity_key = Some(self.identity_key);
        config.ksf = KsfParams::light();
        config.call_timeout = self.call_timeout;
        config.deadline = self.deadline;
        config.routing = if first % 2 == 1 {
            Routing::Leader
        } else {
            Routing::Stay
        };
        Ok(VaultClient::connect(config).await?)
    }

    /// The cluster's name (account tokens' audience; reset signatures name it).
    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    /// A raw client of node `id`'s vault service (channel cached per node).
    pub fn raw(&self, id: u64) -> anyhow::Result<RawVault<Channel>> {
        Ok(RawVault::new(self.channel(id)?))
    }

    /// A channel to node `id`'s client port (cached per node), for [`crate::raw`] calls.
    pub fn channel(&self, id: u64) -> anyhow::Result<Channel> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, c)) = channels.get(&id) {
            return Ok(c.clone());
        }
        let url = self
            .endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no node {id}"))?;
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.ca_pem));
        let channel = tonic::transport::Endpoint::from_shared(url.clone())?
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(2))
            .timeout(self.call_timeout)
            .connect_lazy();
        channels.insert(id, (url, channel.clone()));
        Ok(channel)
    }

    /// `message` with `account`'s bearer token.
    pub fn request<T>(&self, account: &str, message: T) -> anyhow::Result<tonic::Request<T>> {
        crate::raw::with_token(message, Some(&self.token(account)))
    }
}
