//! Connection settings from flags or `BKV_*` variables, and the clients and tokens built
//! from them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bkv_admin::{AdminClient, AdminConfig};
use bkv_client::{ClientConfig, KsfParams, Routing, TokenSource, VaultClient};
use bkv_core::ids::AccountId;
use bkv_devkit::issue_token;
use clap::{Args, ValueEnum};
use secrecy::SecretString;

use crate::exit::Failure;
use crate::parse::parse_secs;
use crate::token::IssuerArgs;

/// Lifetime of tokens issued on the fly for one command.
const ON_THE_FLY_TTL_SECS: u64 = 300;

/// Where the client ports are and how to trust them.
#[derive(Debug, Clone, Args)]
pub struct ClientConn {
    /// Client endpoints of the nodes, comma-separated https://host:port URLs; several give
    /// failover
    #[arg(
        long,
        env = "BKV_ENDPOINTS",
        value_delimiter = ',',
        required = true,
        value_name = "URLS"
    )]
    pub endpoints: Vec<String>,
    /// The cluster CA certificate (PEM) that node certificates chain to
    #[arg(long, env = "BKV_CA_CERT", value_name = "FILE")]
    pub ca_cert: PathBuf,
    /// The cluster identity public key to pin (SPKI PEM, `identity.pub.pem`): registrations
    /// split their key only over a share map it signed
    #[arg(long, env = "BKV_IDENTITY_PUB", value_name = "FILE")]
    pub identity_pub: Option<PathBuf>,
    /// Longest wait for one attempt of one call, in seconds
    #[arg(long, default_value = "10", value_parser = parse_secs, value_name = "SECS")]
    pub timeout: Duration,
    /// Longest time for the whole command, retries and failover included, in seconds
    #[arg(long, default_value = "30", value_parser = parse_secs, value_name = "SECS")]
    pub deadline: Duration,
    /// Where calls go while every node answers: `stay` keeps to the endpoint that answered
    /// last, starting at the first; `leader` moves to the leader that the nodes name (no
    /// forwarding hop inside the cluster)
    #[arg(long, env = "BKV_ROUTING", value_enum, default_value = "stay")]
    pub routing: RoutingArg,
}

/// [`Routing`] as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoutingArg {
    /// Keep to the endpoint that answered last
    Stay,
    /// Follow the leader
    Leader,
}

impl From<RoutingArg> for Routing {
    fn from(arg: RoutingArg) -> Self {
        match arg {
            RoutingArg::Stay => Routing::Stay,
            RoutingArg::Leader => Routing::Leader,
        }
    }
}

impl ClientConn {
    /// A client configuration for `endpoints` (these settings' own, or a reordering of
    /// them) with these timeouts and routing.
    pub fn config(
        &self,
        endpoints: Vec<String>,
        ca: Vec<u8>,
        token: TokenSource,
        ksf: KsfParams,
    ) -> Result<ClientConfig, Failure> {
        let mut config = ClientConfig::new(endpoints, ca, token);
        config.identity_key = self
            .identity_pub
            .as_ref()
            .map(|p| bkv_devkit::pki::read_identity_public(p))
            .transpose()?;
        config.call_timeout = self.timeout;
        config.deadline = self.deadline;
        config.ksf = ksf;
        config.routing = self.routing.into();
        Ok(config)
    }
}

/// The account token: given, or issued on the fly with the dev issuer key.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The account token (JWT). Without it, a token is issued on the fly when an issuer
    /// key is set (dev set-ups)
    #[arg(long, env = "BKV_TOKEN", hide_env_values = true, value_name = "JWT")]
    pub token: Option<String>,
    #[command(flatten)]
    pub issuer: IssuerArgs,
}

impl TokenArgs {
    /// The token source for `account`.
    pub fn source(&self, account: &AccountId) -> Result<TokenSource, Failure> {
        if let Some(token) = &self.token {
            let token = SecretString::from(token.trim().to_string());
            if let Some(sub) = bkv_client::unverified_subject(&token)
                && sub != account.as_str()
            {
                return Err(Failure::usage(format!(
                    "the token is for account {sub:?}, not {:?}",
                    account.as_str()
                )));
            }
            return Ok(TokenSource::from_fn(move || Ok(token.clone())));
        }
        let Some(key_path) = &self.issuer.issuer_key else {
            return Err(Failure::usage(
                "no account token: set --token or BKV_TOKEN (or BKV_ISSUER_KEY in dev set-ups)",
            ));
        };
        let key = bkv_devkit::pki::read_issuer_key(key_path)?;
        let issuer = self.issuer.issuer.clone();
        let audience = self.issuer.audience.clone();
        let account = account.clone();
        Ok(TokenSource::from_fn(move || {
            Ok(SecretString::from(issue_token(
                &key,
                &issuer,
                &audience,
                &account,
                ON_THE_FLY_TTL_SECS,
            )?))
        }))
    }
}

/// Reads a file that the command needs, naming it in the error.
pub fn read_file(what: &str, path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::other(format!("{what} {}: {e}", path.display())))
}

/// A vault client for `account` from these settings.
pub async fn vault_client(
    conn: &ClientConn,
    token: &TokenArgs,
    account: &AccountId,
    ksf: KsfParams,
) -> Result<VaultClient, Failure> {
    let ca = read_file("CA certificate", &conn.ca_cert)?;
    let config = conn.config(conn.endpoints.clone(), ca, token.source(account)?, ksf)?;
    Ok(VaultClient::connect(config).await?)
}

/// Where the admin ports are, and the admin certificate.
#[derive(Debug, Clone, Args)]
pub struct AdminConn {
    /// Admin endpoints of the nodes, comma-separated host:port or https://host:port
    #[arg(
        long,
        env = "BKV_ADMIN_ENDPOINTS",
        value_delimiter = ',',
        value_name = "ADDRS"
    )]
    pub admin_endpoints: Vec<String>,
    /// The cluster CA certificate (PEM)
    #[arg(long, env = "BKV_CA_CERT", value_name = "FILE")]
    pub ca_cert: PathBuf,
    /// The admin certificate (PEM), URI SAN bkv://admin/NAME
    #[arg(long, env = "BKV_ADMIN_CERT", value_name = "FILE")]
    pub admin_cert: PathBuf,
    /// The admin certificate's private key (PEM)
    #[arg(long, env = "BKV_ADMIN_KEY", value_name = "FILE")]
    pub admin_key: PathBuf,
    /// The cluster identity private key (PKCS#8 PEM, `identity.key` of `bkv dev pki init`):
    /// signs the share map at init and after a voter is added or removed. Keep it off the
    /// nodes.
    #[arg(long, env = "BKV_IDENTITY_KEY", value_name = "FILE")]
    pub identity_key: Option<PathBuf>,
    /// Longest wait for one call, in seconds
    #[arg(long, default_value = "30", value_parser = parse_secs, value_name = "SECS")]
    pub timeout: Duration,
}

impl AdminConn {
    /// The cluster identity signing key.
    pub fn identity(&self) -> Result<ed25519_dalek::SigningKey, Failure> {
        let path = self.identity_key.as_ref().ok_or_else(|| {
            Failure::usage(
                "no cluster identity key: set --identity-key or BKV_IDENTITY_KEY \
                 (it signs the share map)",
            )
        })?;
        Ok(bkv_devkit::pki::read_identity_key(path)?)
    }

    /// An admin client for `endpoints`, or the configured admin endpoints.
    pub async fn client(&self, endpoints: Option<Vec<String>>) -> Result<AdminClient, Failure> {
        let endpoints = endpoints.unwrap_or_else(|| self.admin_endpoints.clone());
        if endpoints.is_empty() {
            return Err(Failure::usage(
                "no admin endpoint: set --admin-endpoints or BKV_ADMIN_ENDPOINTS",
            ));
        }
        let mut config = AdminConfig::new(
            endpoints,
            read_file("CA certificate", &self.ca_cert)?,
            read_file("admin certificate", &self.admin_cert)?,
            read_file("admin key", &self.admin_key)?,
        );
        config.call_timeout = self.timeout;
        Ok(AdminClient::connect(config).await?)
    }
}
