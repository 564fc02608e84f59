//! [`ClusterOptions`]: what a test cluster looks like (size, cluster settings, node
//! configuration keys that tests vary) and how long the harness waits for it.

use std::time::Duration;

/// Settings of a [`crate::Cluster`]. `ClusterOptions::new(3)` is a small, fast cluster with
/// the node defaults of `cluster/node.example.toml`.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Nodes started, initialised and joined by `start_with` (node ids `1..=nodes`).
    pub nodes: u64,
    /// The cluster name (the account tokens' audience).
    pub cluster_name: String,
    /// The cluster's default guess limit (0: the node's default).
    pub default_guess_limit: u32,
    /// The cluster's largest guess limit (0: the node's default).
    pub max_guess_limit: u32,
    /// `[raft]` of every node's configuration.
    pub raft: RaftOptions,
    /// `recovery.write_timeout_ms`.
    pub write_timeout_ms: u64,
    /// `recovery.ticket_ttl_secs`.
    pub ticket_ttl_secs: u64,
    /// `recovery.share_repair_period_ms` (0: share repair off).
    pub share_repair_period_ms: u64,
    /// `recovery.share_refresh_interval_secs` (0: no refresh schedule, the default).
    pub share_refresh_interval_secs: u64,
    /// `[limits]` of every node's configuration.
    pub limits: LimitsOptions,
    /// `log.level` of every node.
    pub log_level: String,
    /// Bound on each wait while starting (a node's `/healthz`, a ceremony, `/readyz`).
    pub start_timeout: Duration,
    /// `ClientConfig::call_timeout` of the vault clients the harness makes.
    pub client_call_timeout: Duration,
    /// `ClientConfig::deadline` of the vault clients the harness makes.
    pub client_deadline: Duration,
    /// The node binary (a name in the workspace's target dir): `bkv-node`, or
    /// [`FAILPOINTS_NODE_BINARY`] for chaos tests that set failpoints.
    pub node_binary: String,
    /// Route the peer (Raft) traffic between nodes through a [`crate::chaos::PeerProxy`]
    /// owned by the cluster: each node advertises its proxy front as `advertise.peer`.
    pub peer_proxy: bool,
    /// Extra environment variables of every node process (`BKV_FAILPOINTS`, ...).
    pub node_env: Vec<(String, String)>,
    /// Run node `i` in namespace `i` of this lab, listening on its address there, instead of
    /// on loopback (the kernel-fault harness, [`crate::netns`]). Not with `peer_proxy`.
    pub netns: Option<crate::netns::Lab>,
    /// With `netns`: each node's data dir on a `tmpfs` of this many MiB (0: on the disk), so
    /// that a test can fill it.
    pub data_disk_mib: u64,
}

/// The name of the `bkv-node` built with the `failpoints` feature (`make build` makes it).
pub const FAILPOINTS_NODE_BINARY: &str = "bkv-node-failpoints";

/// The `[raft]` keys of the node configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftOptions {
    /// `raft.heartbeat_ms`.
    pub heartbeat_ms: u64,
    /// `raft.election_timeout_min_ms`.
    pub election_timeout_min_ms: u64,
    /// `raft.election_timeout_max_ms`.
    pub election_timeout_max_ms: u64,
    /// `raft.snapshot_every_logs`.
    pub snapshot_every_logs: u64,
    /// `raft.logs_kept_after_snapshot`.
    pub logs_kept_after_snapshot: u64,
    /// `raft.rpc_timeout_ms`.
    pub rpc_timeout_ms: u64,
}

impl Default for RaftOptions {
    /// The node's own defaults.
    fn default() -> Self {
        Self {
            heartbeat_ms: 100,
            election_timeout_min_ms: 300,
            election_timeout_max_ms: 600,
            snapshot_every_logs: 20_000,
            logs_kept_after_snapshot: 1_000,
            rpc_timeout_ms: 1_000,
        }
    }
}

/// The `[limits]` keys of the node configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsOptions {
    /// `limits.max_client_message_bytes`.
    pub max_client_message_bytes: usize,
    /// `limits.max_concurrent_streams`.
    pub max_concurrent_streams: u32,
    /// `limits.max_client_connections`.
    pub max_client_connections: u32,
    /// `limits.max_client_connections_per_address` (0: none).
    pub max_client_connections_per_address: u32,
    /// `limits.max_connection_age_secs` (0: never).
    pub max_connection_age_secs: u64,
    /// `limits.max_connection_age_grace_secs`.
    pub max_connection_age_grace_secs: u64,
    /// `limits.max_client_requests_in_flight`.
    pub max_client_requests_in_flight: u32,
    /// `limits.recover_per_account_per_min` (0: unlimited).
    pub recover_per_account_per_min: u32,
    /// `limits.recover_per_account_burst`.
    pub recover_per_account_burst: u32,
    /// `limits.recover_per_address_per_min` (0: unlimited).
    pub recover_per_address_per_min: u32,
    /// `limits.recover_per_address_burst`.
    pub recover_per_address_burst: u32,
}

impl LimitsOptions {
    /// The node's own defaults (`bkv_node::config::Limits::default()`, the values of
    /// `cluster/node.example.toml`): every limit on.
    pub fn node_defaults() -> Self {
        let l = bkv_node::config::Limits::default();
        Self {
            max_client_message_bytes: l.max_client_message_bytes,
            max_concurrent_streams: l.max_concurrent_streams,
            max_client_connections: l.max_client_connections,
            max_client_connections_per_address: l.max_client_connections_per_address,
            max_connection_age_secs: l.max_connection_age_secs,
            max_connection_age_grace_secs: l.max_connection_age_grace_secs,
            max_client_requests_in_flight: l.max_client_requests_in_flight,
            recover_per_account_per_min: l.recover_per_account_per_min,
            recover_per_account_burst: l.recover_per_account_burst,
            recover_per_address_per_min: l.recover_per_address_per_min,
            recover_per_address_burst: l.recover_per_address_burst,
        }
    }
}

impl Default for LimitsOptions {
    /// What test clusters use: the node's defaults with the recovery rate limits off. Tests
    /// recover one account many times in a row from one address, which is what those limits
    /// are there to stop; `t81_rate_limits` and `t83_connection_limits` set them, and
    /// `t81` checks that a node left at its defaults limits.
    fn default() -> Self {
        Self {
            recover_per_account_per_min: 0,
            recover_per_account_burst: 0,
            recover_per_address_per_min: 0,
            recover_per_address_burst: 0,
            ..Self::node_defaults()
        }
    }
}

impl ClusterOptions {
    /// `nodes` nodes with the node defaults, guess limits 5 (default) and 10 (max).
    pub fn new(nodes: u64) -> Self {
        Self {
            nodes,
            cluster_name: "bkv-test".into(),
            default_guess_limit: 5,
            max_guess_limit: 10,
            raft: RaftOptions::default(),
            write_timeout_ms: 5_000,
            ticket_ttl_secs: 300,
            share_repair_period_ms: 500,
            share_refresh_interval_secs: 0,
            limits: LimitsOptions::default(),
            log_level: "info".into(),
            start_timeout: Duration::from_secs(60),
            client_call_timeout: Duration::from_secs(5),
            client_deadline: Duration::from_secs(30),
            node_binary: "bkv-node".into(),
            peer_proxy: false,
            node_env: Vec::new(),
            netns: None,
            data_disk_mib: 0,
        }
    }
}
