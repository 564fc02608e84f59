//! The node's configuration: `node.toml`, overridden by `BKV_*` environment variables, then
//! by command-line flags. Every key has a documented default (see `cluster/node.example.toml`)
//! except `node_id`, `data_dir` and the TLS files. Invalid configuration fails at start with a
//! message naming the key.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Value};
use serde::{Deserialize, Serialize};

/// Top-level keys; environment variables outside these are not config (the `bkv` CLI's own
/// `BKV_ENDPOINTS`, `BKV_TOKEN`, ... may be set in the same shell).
const TOP_LEVEL_KEYS: &[&str] = &[
    "node_id",
    "data_dir",
    "listen",
    "advertise",
    "tls",
    "hsm",
    "auth",
    "raft",
    "recovery",
    "limits",
    "log",
    "audit",
    "http",
];

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or a variable did not parse, or a key has the wrong type or is unknown.
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// A key has a value outside its allowed range or form.
    #[error("invalid configuration key `{key}`: {reason}")]
    Invalid {
        /// The key, dotted (`hsm.token_label`).
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// Refuses `value` of `key` outside `1..=max`.
fn one_to<T: PartialOrd + From<u8> + fmt::Display>(
    key: &'static str,
    value: T,
    max: T,
) -> Result<(), ConfigError> {
    if value < T::from(1) || value > max {
        return Err(invalid(key, format!("must be in 1..={max}")));
    }
    Ok(())
}

/// The whole configuration of one node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id: non-zero, unique in the cluster, never reused.
    pub node_id: u64,
    /// Where the node keeps its Raft log, snapshots, state and audit file.
    pub data_dir: PathBuf,
    /// Addresses to listen on.
    #[serde(default)]
    pub listen: Listen,
    /// Addresses other nodes and clients are told; each defaults to its `listen` address.
    #[serde(default)]
    pub advertise: Advertise,
    /// Certificates (cluster CA, this node's certificate and key).
    pub tls: Tls,
    /// The node's HSM partition.
    #[serde(default)]
    pub hsm: Hsm,
    /// Account-token issuers.
    #[serde(default)]
    pub auth: Auth,
    /// Consensus timing and snapshots.
    #[serde(default)]
    pub raft: Raft,
    /// Recovery protocol settings.
    #[serde(default)]
    pub recovery: Recovery,
    /// Resource and rate limits.
    #[serde(default)]
    pub limits: Limits,
    /// Logging.
    #[serde(default)]
    pub log: Log,
    /// The audit file's rotation.
    #[serde(default)]
    pub audit: Audit,
    /// Writes on the HTTP port.
    #[serde(default)]
    pub http: Http,
}

/// Listen addresses.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    /// `bkv.v1.Vault`, gRPC health and reflection, under TLS.
    pub client: SocketAddr,
    /// `bkv.v1.Raft` (node to node), under mutual TLS with node certificates.
    pub peer: SocketAddr,
    /// `bkv.v1.Admin`, under mutual TLS with admin (or node) certificates.
    pub admin: SocketAddr,
    /// Plain HTTP: `/healthz`, `/readyz`, `/metrics`. Keep it on a private interface.
    pub http: SocketAddr,
    /// Optional plaintext gRPC port serving only `grpc.health.v1` (for probes that cannot
    /// speak TLS, such as Kubernetes' native gRPC probes). Off unless set.
    pub grpc_health: Option<SocketAddr>,
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            client: SocketAddr::from(([127, 0, 0, 1], 7101)),
            peer: SocketAddr::from(([127, 0, 0, 1], 7201)),
            admin: SocketAddr::from(([127, 0, 0, 1], 7301)),
            http: SocketAddr::from(([127, 0, 0, 1], 7401)),
            grpc_health: None,
        }
    }
}

/// Advertised addresses (`host:port`); empty means the listen address.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Advertise {
    /// Client address.
    pub client: String,
    /// Peer (Raft) address.
    pub peer: String,
    /// Admin address.
    pub admin: String,
}

/// TLS files (PEM). Relative paths are relative to the config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// The cluster CA certificate: verifies peers, admins and is what clients trust.
    pub ca_cert: PathBuf,
    /// This node's certificate (role node, SANs for every address it is reached at).
    pub cert: PathBuf,
    /// This node's private key.
    pub key: PathBuf,
}

/// The HSM partition.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hsm {
    /// PKCS#11 module.
    pub module: PathBuf,
    /// Token label (tokens are looked up by label, never by slot).
    pub token_label: String,
    /// File holding the user PIN.
    pub user_pin_file: Option<PathBuf>,
    /// Environment variable holding the user PIN (if no file is given).
    pub user_pin_env: Option<String>,
    /// File holding the security-officer PIN, needed to trust a joining node's key.
    pub so_pin_file: Option<PathBuf>,
    /// Environment variable holding the SO PIN (if no file is given).
    pub so_pin_env: Option<String>,
    /// HSM worker threads (each owns one session).
    pub workers: usize,
}

impl Default for Hsm {
    fn default() -> Self {
        Self {
            module: PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"),
            token_label: String::new(),
            user_pin_file: None,
            user_pin_env: None,
            so_pin_file: None,
            so_pin_env: None,
            workers: 2,
        }
    }
}

/// One trusted account-token issuer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Issuer {
    /// The issuer's name, as in the tokens' `iss`.
    pub name: String,
    /// Its Ed25519 public key (PEM, SubjectPublicKeyInfo).
    pub public_key_file: PathBuf,
}

/// Account-token checking.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// Issuers whose tokens are accepted.
    pub issuers: Vec<Issuer>,
    /// Longest token lifetime accepted (`exp` - now), seconds.
    pub max_token_lifetime_secs: u64,
    /// Clock difference tolerated with issuers, seconds.
    pub clock_skew_secs: u64,
}

impl Default for Auth {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            max_token_lifetime_secs: 3600,
            clock_skew_secs: 60,
        }
    }
}

/// Consensus timing and snapshots.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Raft {
    /// Leader heartbeat interval, ms.
    pub heartbeat_ms: u64,
    /// Election timeout lower bound, ms.
    pub election_timeout_min_ms: u64,
    /// Election timeout upper bound, ms.
    pub election_timeout_max_ms: u64,
    /// Build a snapshot after this many log entries.
    pub snapshot_every_logs: u64,
    /// Group commit: the most client commands the leader puts in one log entry (1 turns
    /// grouping off).
    pub max_commands_per_entry: usize,
    /// Group commit: log entries the leader keeps in flight (proposed, not yet applied)
    /// before it groups what arrives into the next one.
    pub entries_in_flight: usize,
    /// Log entries kept behind a snapshot (for followers that lag a little).
    pub logs_kept_after_snapshot: u64,
    /// Timeout of one node-to-node RPC, ms.
    pub rpc_timeout_ms: u64,
}

impl Default for Raft {
    fn default() -> Self {
        Self {
            heartbeat_ms: 100,
            election_timeout_min_ms: 300,
            election_timeout_max_ms: 600,
            snapshot_every_logs: 20_000,
            max_commands_per_entry: 256,
            entries_in_flight: 2,
            logs_kept_after_snapshot: 1_000,
            rpc_timeout_ms: 1_000,
        }
    }
}

/// Recovery protocol settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recovery {
    /// How long a recovery ticket stays valid, seconds.
    pub ticket_ttl_secs: u64,
    /// How long a client write may wait for the cluster (commit, leader change), ms.
    pub write_timeout_ms: u64,
    /// How often the node looks for active records it holds no share of and repairs them
    /// (share repair), ms; 0 turns share repair off on this node.
    pub share_repair_period_ms: u64,
    /// The refresh schedule: while this node leads, it refreshes the shares of every active
    /// record whose sharing (dealt at registration or at the last refresh) is older than
    /// this many seconds; 0 (the default) leaves refreshes to the operator
    /// (`bkv admin refresh-shares`).
    pub share_refresh_interval_secs: u64,
}

impl Default for Recovery {
    fn default() -> Self {
        Self {
            ticket_ttl_secs: 300,
            write_timeout_ms: 5_000,
            share_repair_period_ms: 2_000,
            share_refresh_interval_secs: 0,
        }
    }
}

/// Rotation of the audit file (`<data_dir>/audit.jsonl`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Audit {
    /// Rotate the file once it holds this many MiB.
    pub max_file_mib: u64,
    /// Rotated files kept (`audit.jsonl.1` is the newest; at least 1); older ones are
    /// deleted.
    pub keep_files: u32,
}

impl Default for Audit {
    fn default() -> Self {
        Self {
            max_file_mib: 256,
            keep_files: 4,
        }
    }
}

impl Audit {
    /// The rotation these settings give.
    pub fn rotation(&self) -> crate::audit_log::Rotation {
        crate::audit_log::Rotation {
            max_file_bytes: self.max_file_mib.saturating_mul(1 << 20),
            keep_files: self.keep_files,
        }
    }
}

/// Resource and rate limits. The defaults are on: see `cluster/node.example.toml` for why
/// each number is what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest gRPC message accepted from a client, bytes.
    pub max_client_message_bytes: usize,
    /// Concurrent requests per client connection.
    pub max_concurrent_streams: u32,
    /// Client connections open at once (TLS handshakes included); more are closed at once.
    pub max_client_connections: u32,
    /// Client connections open at once from one address (an IPv6 /64 counts as one
    /// address; 0 = no per-address limit).
    pub max_client_connections_per_address: u32,
    /// Age at which a client connection is asked to go away (HTTP/2 GOAWAY), seconds
    /// (0 = never).
    pub max_connection_age_secs: u64,
    /// How long a connection asked to go away may still finish its calls before it is
    /// closed, seconds.
    pub max_connection_age_grace_secs: u64,
    /// Requests the client port handles at once, over all connections; more are answered
    /// UNAVAILABLE at once.
    pub max_client_requests_in_flight: u32,
    /// Recovery starts allowed per account per minute (token bucket; 0 = unlimited).
    pub recover_per_account_per_min: u32,
    /// Burst for the per-account bucket.
    pub recover_per_account_burst: u32,
    /// Recovery starts allowed per client address per minute (an IPv6 /64 counts as one
    /// address; 0 = unlimited).
    pub recover_per_address_per_min: u32,
    /// Burst for the per-address bucket.
    pub recover_per_address_burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_client_message_bytes: 64 * 1024,
            max_concurrent_streams: 256,
            max_client_connections: 4096,
            max_client_connections_per_address: 256,
            max_connection_age_secs: 900,
            max_connection_age_grace_secs: 30,
            max_client_requests_in_flight: 2048,
            recover_per_account_per_min: 10,
            recover_per_account_burst: 10,
            recover_per_address_per_min: 600,
            recover_per_address_burst: 200,
        }
    }
}

/// Writes on the HTTP port (`PUT /log-level`, and `/failpoints` in test builds). Reads
/// (`/healthz`, `/readyz`, `/metrics`) need nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// A file holding the bearer token that writes must carry (`Authorization: Bearer
    /// ...`, at least 16 characters after trimming). Unset, the port takes no writes.
    pub write_token_file: Option<PathBuf>,
}

impl Limits {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_client_message_bytes < 4096 {
            return Err(invalid(
                "limits.max_client_message_bytes",
                "must be at least 4096",
            ));
        }
        one_to(
            "limits.max_concurrent_streams",
            self.max_concurrent_streams,
            65_536,
        )?;
        one_to(
            "limits.max_client_connections",
            self.max_client_connections,
            1_000_000,
        )?;
        if self.max_client_connections_per_address > self.max_client_connections {
            return Err(invalid(
                "limits.max_client_connections_per_address",
                "must not exceed limits.max_client_connections",
            ));
        }
        if self.max_connection_age_secs > 0 && self.max_connection_age_secs < 10 {
            return Err(invalid(
                "limits.max_connection_age_secs",
                "must be 0 (never) or at least 10",
            ));
        }
        if self.max_connection_age_grace_secs > 3600 {
            return Err(invalid(
                "limits.max_connection_age_grace_secs",
                "must be at most 3600",
            ));
        }
        one_to(
            "limits.max_client_requests_in_flight",
            self.max_client_requests_in_flight,
            1_000_000,
        )?;
        for (rate_key, rate, burst_key, burst) in [
            (
                "limits.recover_per_account_per_min",
                self.recover_per_account_per_min,
                "limits.recover_per_account_burst",
                self.recover_per_account_burst,
            ),
            (
                "limits.recover_per_address_per_min",
                self.recover_per_address_per_min,
                "limits.recover_per_address_burst",
                self.recover_per_address_burst,
            ),
        ] {
            if rate > 1_000_000 {
                return Err(invalid(rate_key, "must be at most 1000000"));
            }
            if rate > 0 {
                one_to(burst_key, burst, 1_000_000)?;
            }
        }
        Ok(())
    }

    /// The connection age limit, if any.
    pub fn max_connection_age(&self) -> Option<std::time::Duration> {
        (self.max_connection_age_secs > 0)
            .then(|| std::time::Duration::from_secs(self.max_connection_age_secs))
    }
}

/// Log output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// `human` or `json`.
    pub format: LogFormat,
    /// A tracing filter (`info`, `bkv_node=debug,info`, ...). Changeable at run time.
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per event.
    Json,
}

/// Values given as command-line flags; `None` leaves the file and environment alone.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FlagOverrides {
    /// `--node-id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u64>,
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--listen-*`.
    #[serde(skip_serializing_if = "ListenFlags::is_empty")]
    pub listen: ListenFlags,
    /// `--log-*`.
    #[serde(skip_serializing_if = "LogFlags::is_empty")]
    pub log: LogFlags,
}

/// `--listen-*` flags.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ListenFlags {
    /// `--listen-client`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<SocketAddr>,
    /// `--listen-peer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<SocketAddr>,
    /// `--listen-admin`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<SocketAddr>,
    /// `--listen-http`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<SocketAddr>,
}

impl ListenFlags {
    fn is_empty(&self) -> bool {
        self.client.is_none() && self.peer.is_none() && self.admin.is_none() && self.http.is_none()
    }
}

/// `--log-*` flags.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LogFlags {
    /// `--log-format`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<LogFormat>,
    /// `--log-level`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
}

impl LogFlags {
    fn is_empty(&self) -> bool {
        self.format.is_none() && self.level.is_none()
    }
}

impl NodeConfig {
    /// Loads the configuration: file (if given), then `BKV_*` variables from `env`, then
    /// flags. Nested keys use a double underscore: `BKV_HSM__TOKEN_LABEL`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &FlagOverrides,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Parse(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment.merge(Serialized::defaults(env_dict(env)));
        figment = figment.merge(Serialized::defaults(flags));
        let mut config: NodeConfig = figment
            .extract()
            .map_err(|e| ConfigError::Parse(error_text(&e)))?;
        if let Some(dir) = file.and_then(Path::parent) {
            config.resolve_relative_to(dir);
        }
        config.validate()?;
        Ok(config)
    }

    fn resolve_relative_to(&mut self, dir: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = dir.join(&*p);
            }
        };
        fix(&mut self.data_dir);
        fix(&mut self.tls.ca_cert);
        fix(&mut self.tls.cert);
        fix(&mut self.tls.key);
        for p in [&mut self.hsm.user_pin_file, &mut self.hsm.so_pin_file]
            .into_iter()
            .flatten()
        {
            fix(p);
        }
        for issuer in &mut self.auth.issuers {
            fix(&mut issuer.public_key_file);
        }
        if let Some(p) = &mut self.http.write_token_file {
            fix(p);
        }
    }

    /// Checks ranges and relations that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id == 0 {
            return Err(invalid("node_id", "must be non-zero"));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must be set"));
        }
        if self.hsm.token_label.is_empty() {
            return Err(invalid("hsm.token_label", "must be set"));
        }
        if self.hsm.user_pin_file.is_none() && self.hsm.user_pin_env.is_none() {
            return Err(invalid("hsm.user_pin_file", "set it or hsm.user_pin_env"));
        }
        one_to("hsm.workers", self.hsm.workers, 64)?;
        if self.auth.issuers.is_empty() {
            return Err(invalid(
                "auth.issuers",
                "at least one account-token issuer is needed",
            ));
        }
        one_to(
            "auth.max_token_lifetime_secs",
            self.auth.max_token_lifetime_secs,
            86_400,
        )?;
        let r = &self.raft;
        if r.heartbeat_ms == 0 {
            return Err(invalid("raft.heartbeat_ms", "must be non-zero"));
        }
        if r.election_timeout_min_ms <= r.heartbeat_ms {
            return Err(invalid(
                "raft.election_timeout_min_ms",
                "must exceed raft.heartbeat_ms",
            ));
        }
        if r.election_timeout_max_ms <= r.election_timeout_min_ms {
            return Err(invalid(
                "raft.election_timeout_max_ms",
                "must exceed raft.election_timeout_min_ms",
            ));
        }
        if r.snapshot_every_logs == 0 {
            return Err(invalid("raft.snapshot_every_logs", "must be non-zero"));
        }
        if r.rpc_timeout_ms == 0 {
            return Err(invalid("raft.rpc_timeout_ms", "must be non-zero"));
        }
        one_to(
            "raft.max_commands_per_entry",
            r.max_commands_per_entry,
            bkv_raft::batcher::MAX_COMMANDS_PER_ENTRY,
        )?;
        one_to(
            "raft.entries_in_flight",
            r.entries_in_flight,
            bkv_raft::batcher::MAX_ENTRIES_IN_FLIGHT,
        )?;
        one_to(
            "recovery.ticket_ttl_secs",
            self.recovery.ticket_ttl_secs,
            3600,
        )?;
        if self.recovery.write_timeout_ms < 100 {
            return Err(invalid("recovery.write_timeout_ms", "must be at least 100"));
        }
        one_to("audit.max_file_mib", self.audit.max_file_mib, 1 << 20)?;
        // At least one rotated file: right after a rotation it holds where the audit file
        // resumes (seq and log index) across a restart.
        one_to("audit.keep_files", self.audit.keep_files, 1000)?;
        self.limits.validate()?;
        for (key, value) in [
            ("advertise.client", &self.advertise.client),
            ("advertise.peer", &self.advertise.peer),
            ("advertise.admin", &self.advertise.admin),
        ] {
            if !value.is_empty() && !value.contains(':') {
                return Err(invalid(key, "must be host:port"));
            }
        }
        Ok(())
    }

    /// The advertised client address.
    pub fn client_addr(&self) -> String {
        pick(&self.advertise.client, self.listen.client)
    }

    /// The advertised peer address.
    pub fn peer_addr(&self) -> String {
        pick(&self.advertise.peer, self.listen.peer)
    }

    /// The advertised admin address.
    pub fn admin_addr(&self) -> String {
        pick(&self.advertise.admin, self.listen.admin)
    }
}

/// Turns `BKV_*` variables into a nested dictionary: `BKV_HSM__TOKEN_LABEL=x` becomes
/// `hsm.token_label = "x"`. Values are typed the way figment types environment values.
/// Variables whose first segment is not a config key, and empty ones, are ignored.
fn env_dict(env: impl IntoIterator<Item = (String, String)>) -> Dict {
    let mut root = Dict::new();
    for (k, v) in env {
        let Some(rest) = k.strip_prefix("BKV_") else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        // An empty variable is as good as unset (compose files pass `${X:-}` through).
        if !TOP_LEVEL_KEYS.contains(&path[0].as_str())
            || path.iter().any(String::is_empty)
            || v.is_empty()
        {
            continue;
        }
        let value: Value = v.parse().unwrap_or_else(|_| Value::from(v.clone()));
        insert_path(&mut root, &path, value);
    }
    root
}

fn insert_path(dict: &mut Dict, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry(first.clone())
                .or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            } else {
                let mut inner = Dict::new();
                insert_path(&mut inner, rest, value);
                *entry = Value::from(inner);
            }
        }
    }
}

fn pick(advertised: &str, listen: SocketAddr) -> String {
    if advertised.is_empty() {
        listen.to_string()
    } else {
        advertised.to_string()
    }
}

/// Figment's error, with the key path it failed at.
fn error_text(e: &figment::Error) -> String {
    e.clone()
        .into_iter()
        .map(|e| {
            let path = e.path.join(".");
            if path.is_empty() {
                e.kind.to_string()
            } else {
                format!("key `{path}`: {}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests;
