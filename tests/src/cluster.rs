//! [`Cluster`]: a bkv cluster of real `bkv-node` processes on loopback, set up the way an
//! operator does it (`cluster/up`): dev PKI, one SoftHSM token per node made by
//! `cluster/mk-token`, a TOML config per node, `init` on node 1 and the add-node ceremony for
//! the others. Handles to kill, freeze, restart, add and remove nodes, and to read the
//! cluster's state. Every wait is bounded; every process dies with the `Cluster` (also when
//! a test panics, after the tail of each node's log is printed).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bkv_admin::{AdminClient, AdminConfig};
use bkv_client::proto::{
    AddNodePhase, ClusterStatusResponse, MemberRole, NodeView, RefreshSharesProgress,
};
use bkv_client::{ClientConfig, KsfParams, TokenSource, VaultClient};
use bkv_core::token::{Claims, issue};
use ed25519_dalek::SigningKey;

use crate::chaos::PeerProxy;
use crate::netns::Member;
use crate::node::{NodeProcess, Ports, ProcessState};
use crate::options::ClusterOptions;
use crate::process::{free_port, workspace_binary};

/// The issuer name the nodes trust for the cluster's dev issuer key.
pub const ISSUER_NAME: &str = "bkv-test";

/// The file in the PKI dir holding the bearer token for writes on the nodes' HTTP ports
/// (`http.write_token_file`).
pub const HTTP_WRITE_TOKEN: &str = "http-write.token";

/// The ports of every node in a lab (each node has an address of its own there).
pub const LAB_PORTS: Ports = Ports {
    client: 7000,
    peer: 7001,
    admin: 7002,
    http: 7003,
};

/// A running test cluster. See the module documentation.
#[derive(Debug)]
pub struct Cluster {
    options: ClusterOptions,
    nodes: BTreeMap<u64, NodeProcess>,
    pki: PathBuf,
    ca_pem: Vec<u8>,
    issuer: SigningKey,
    /// The cluster identity key: signs the share maps.
    identity: SigningKey,
    node_bin: PathBuf,
    token_bin: PathBuf,
    proxy: Option<PeerProxy>,
    // Last: removed after every process is gone (see Drop).
    dir: tempfile::TempDir,
}

/// A node's `(applied_index, state_digest)`.
pub type Digest = (u64, String);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Polls `check` every `every` until it yields `Some`, or fails after `timeout` with `what`
/// and the last error seen.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let until = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => "condition not met".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= until {
            anyhow::bail!(
                "{what}: not within {} ms (last: {last})",
                timeout.as_millis()
            );
        }
        tokio::time::sleep(every).await;
    }
}

/// Runs a share refresh pass (`Admin.RefreshShares`) on the node `admin` speaks to and
/// returns its last progress (the one with `done`), within `timeout`; `each` sees the
/// progress after every batch before it.
pub async fn refresh_pass(
    admin: &AdminClient,
    timeout: Duration,
    mut each: impl FnMut(&RefreshSharesProgress),
) -> anyhow::Result<RefreshSharesProgress> {
    let mut progress = admin.refresh_shares().await?;
    tokio::time::timeout(timeout, async {
        // Bounded: the pass sends one message per batch of 64 records and a last one.
        for _ in 0..1_000 {
            match progress.next().await? {
                Some(p) if p.done => return Ok(p),
                Some(p) => each(&p),
                None => break,
            }
        }
        anyhow::bail!("the refresh pass ended without `done`")
    })
    .await
    .map_err(|_| anyhow::anyhow!("the refresh pass did not end within {timeout:?}"))?
}

impl Cluster {
    /// `n` nodes with [`ClusterOptions::new`].
    pub async fn start(n: u64) -> anyhow::Result<Self> {
        Self::start_with(ClusterOptions::new(n)).await
    }

    /// Builds the PKI, starts `options.nodes` nodes, initialises node 1, adds the others
    /// through the ceremony and waits until every node serves.
    pub async fn start_with(options: ClusterOptions) -> anyhow::Result<Self> {
        anyhow::ensure!(options.nodes >= 1, "a cluster needs a node");
        anyhow::ensure!(
            !(options.peer_proxy && options.netns.is_some()),
            "the peer proxy runs on loopback: not with a lab"
        );
        let dir = tempfile::Builder::new().prefix("bkv-cluster-").tempdir()?;
        let pki = dir.path().join("pki");
        bkv_devkit::pki::init(&pki, &options.cluster_name)?;
        let ca_pem = std::fs::read(pki.join(bkv_devkit::pki::CA_CERT))?;
        let issuer = bkv_devkit::pki::read_issuer_key(&pki.join(bkv_devkit::pki::ISSUER_KEY))?;
        let identity =
            bkv_devkit::pki::read_identity_key(&pki.join(bkv_devkit::pki::IDENTITY_KEY))?;
        // Writes on the nodes' HTTP ports (`/log-level`, `/failpoints`) need this token.
        let http_token = hex::encode(rand::random::<[u8; 32]>());
        std::fs::write(pki.join(HTTP_WRITE_TOKEN), &http_token)?;
        let proxy = options.peer_proxy.then(|| {
            let capture = dir.path().join("proxy");
            let _ = std::fs::create_dir_all(&capture);
            PeerProxy::new(dir.path().display().to_string(), Some(&capture), 64 << 20)
        });
        let node_bin = workspace_binary(&options.node_binary)?;
        let mut cluster = Self {
            options,
            nodes: BTreeMap::new(),
            pki,
            ca_pem,
            issuer,
            identity,
            node_bin,
            token_bin: workspace_binary("bkv-token")?,
            proxy,
            dir,
        };
        let started = Instant::now();
        let n = cluster.options.nodes;
        // All processes first, then the waits: first starts make RSA enrollment keys, which
        // is the slow part, and the nodes can do that side by side.
        for id in 1..=n {
            cluster.launch(id)?;
        }
        let launched = started.elapsed();
        let timeout = cluster.options.start_timeout;
        for node in cluster.nodes.values_mut() {
            node.wait_healthy(timeout).await?;
        }
        let healthy = started.elapsed();
        cluster.init(1).await?;
        let initialised = started.elapsed();
        for id in 2..=n {
            cluster.join(id).await?;
        }
        for id in 1..=n {
            cluster.wait_serving(id, timeout).await?;
        }
        println!(
            "cluster of {n} nodes serving after {} ms (tokens and processes {} ms, healthy {} \
             ms, initialised {} ms; dir {})",
            started.elapsed().as_millis(),
            launched.as_millis(),
            healthy.as_millis(),
            initialised.as_millis(),
            cluster.dir.path().display()
        );
        Ok(cluster)
    }

    /// The options the cluster was started with.
    pub fn options(&self) -> &ClusterOptions {
        &self.options
    }

    /// The cluster's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The PKI dir (`ca.pem`, `admin.pem`, `node<N>.pem`, `issuer.key`, ...).
    pub fn pki_dir(&self) -> &Path {
        &self.pki
    }

    /// The cluster CA certificate (PEM).
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }

    /// The peer proxy, when the cluster was started with `peer_proxy`.
    pub fn proxy(&self) -> Option<&PeerProxy> {
        self.proxy.as_ref()
    }

    /// The ids of every node the harness started and did not remove.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// The ids of the nodes whose process runs and is not frozen.
    pub fn up_ids(&mut self) -> Vec<u64> {
        self.nodes
            .iter_mut()
            .filter_map(|(id, n)| n.is_up().then_some(*id))
            .collect()
    }

    /// Node `id`.
    pub fn node(&self, id: u64) -> anyhow::Result<&NodeProcess> {
        self.nodes
            .get(&id)
            .ok_or_else(|| anyhow::anyhow!("no node {id}"))
    }

    /// Node `id`, to signal it.
    pub fn node_mut(&mut self, id: u64) -> anyhow::Result<&mut NodeProcess> {
        self.nodes
            .get_mut(&id)
            .ok_or_else(|| anyhow::anyhow!("no node {id}"))
    }

    /// SIGKILL node `id`.
    pub fn kill9(&mut self, id: u64) -> anyhow::Result<()> {
        self.node_mut(id)?.kill9();
        Ok(())
    }

    /// SIGTERM node `id` and check that it exits cleanly (status 0) within 20 s.
    pub async fn sigterm(&mut self, id: u64) -> anyhow::Result<()> {
        let status = self.node_mut(id)?.sigterm(Duration::from_secs(20)).await?;
        anyhow::ensure!(
            status.success(),
            "node {id} exited with {status} after SIGTERM; log:\n{}",
            self.node(id)?.log_tail(20)
        );
        Ok(())
    }

    /// SIGSTOP node `id`.
    pub fn sigstop(&mut self, id: u64) -> anyhow::Result<()> {
        self.node_mut(id)?.sigstop()
    }

    /// SIGCONT node `id`.
    pub fn sigcont(&mut self, id: u64) -> anyhow::Result<()> {
        self.node_mut(id)?.sigcont()
    }

    /// Starts node `id` again on the same data dir, token and ports, and waits for
    /// `/healthz` (not for it to serve: see [`Self::wait_serving`]).
    pub async fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        let timeout = self.options.start_timeout;
        let node = self.node_mut(id)?;
        if node.state() != ProcessState::Down {
            node.kill9();
        }
        node.spawn()?;
        node.wait_healthy(timeout).await
    }

    /// Makes node `id`'s certificate, token and configuration and starts its process
    /// (without waiting for it).
    fn launch(&mut self, id: u64) -> anyhow::Result<()> {
        anyhow::ensure!(!self.nodes.contains_key(&id), "node {id} exists");
        // In a lab, each node has a namespace and an address of its own: same ports for all.
        let (host, ports) = match &self.options.netns {
            Some(lab) => {
                anyhow::ensure!(
                    id <= lab.capacity(),
                    "node {id}: the lab has namespaces for {} nodes",
                    lab.capacity()
                );
                (IpAddr::V4(lab.ip(Member::Node(id))), LAB_PORTS)
            }
            None => (
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                Ports {
                    client: free_port()?,
                    peer: free_port()?,
                    admin: free_port()?,
                    http: free_port()?,
                },
            ),
        };
        bkv_devkit::pki::node(
            &self.pki,
            id,
            &[host.to_string(), "127.0.0.1".into(), "localhost".into()],
        )?;
        let token_dir = self.dir.path().join(format!("tokens/node{id}"));
        let label = format!("bkv-node{id}");
        let out = Command::new(repo_root().join("cluster/mk-token"))
            .arg(&token_dir)
            .arg(&label)
            .env("BKV_TOKEN_BIN", &self.token_bin)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "mk-token for node {id} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let data_dir = self.dir.path().join(format!("data/node{id}"));
        if let Some(lab) = &self.options.netns
            && self.options.data_disk_mib > 0
            && !data_dir.exists()
        {
            lab.mount_disk(&data_dir, self.options.data_disk_mib)?;
        }
        let config = self.dir.path().join(format!("node{id}.toml"));
        let mut toml = self.config_toml(id, host, ports, &data_dir, &token_dir);
        if let Some(proxy) = &self.proxy {
            let front = proxy.add_target(id, ([127, 0, 0, 1], ports.peer).into())?;
            toml.push_str(&format!("\n[advertise]\npeer = \"{front}\"\n"));
        }
        std::fs::write(&config, toml)?;
        let log = self.dir.path().join(format!("node{id}.log"));
        let mut node = NodeProcess::new(
            id,
            ports,
            config,
            data_dir,
            token_dir,
            log,
            self.node_bin.clone(),
        );
        node.set_http_token(std::fs::read_to_string(self.pki.join(HTTP_WRITE_TOKEN))?);
        if let Some(lab) = &self.options.netns {
            node.in_namespace(host, lab.ns(Member::Node(id)));
        }
        for (key, value) in &self.options.node_env {
            node.set_env(key, value);
        }
        // Kept even if it fails to start, so that Drop prints its log.
        self.nodes.entry(id).or_insert(node).spawn()
    }

    /// Starts a new node (next free id) that is in no cluster yet and waits until it is
    /// healthy; returns its id.
    pub async fn spawn_node(&mut self) -> anyhow::Result<u64> {
        let id = self.nodes.keys().max().copied().unwrap_or(0) + 1;
        self.launch(id)?;
        let timeout = self.options.start_timeout;
        self.node_mut(id)?.wait_healthy(timeout).await?;
        Ok(id)
    }

    /// Starts a new node and adds it through the ceremony; waits until it serves.
    pub async fn add_node(&mut self) -> anyhow::Result<u64> {
        let id = self.spawn_node().await?;
        self.join(id).await?;
        self.wait_serving(id, self.options.start_timeout).await?;
        Ok(id)
    }

    fn config_toml(
        &self,
        id: u64,
        host: IpAddr,
        ports: Ports,
        data_dir: &Path,
        token_dir: &Path,
    ) -> String {
        let r = &self.options.raft;
        let l = &self.options.limits;
        let pki = self.pki.display();
        let tokens = token_dir.display();
        format!(
            r#"# Written by the bkv-tests harness.
node_id = {id}
data_dir = "{data}"

[listen]
client = "{host}:{client}"
peer = "{host}:{peer}"
admin = "{host}:{admin}"
http = "{host}:{http}"

[tls]
ca_cert = "{pki}/ca.pem"
cert = "{pki}/node{id}.pem"
key = "{pki}/node{id}.key"

[hsm]
token_label = "bkv-node{id}"
user_pin_file = "{tokens}/user.pin"
so_pin_file = "{tokens}/so.pin"

[[auth.issuers]]
name = "{ISSUER_NAME}"
public_key_file = "{pki}/issuer.pub.pem"

[raft]
heartbeat_ms = {hb}
election_timeout_min_ms = {emin}
election_timeout_max_ms = {emax}
snapshot_every_logs = {snap}
logs_kept_after_snapshot = {kept}
rpc_timeout_ms = {rpc}

[recovery]
write_timeout_ms = {write}
ticket_ttl_secs = {ticket_ttl}
share_repair_period_ms = {repair}
share_refresh_interval_secs = {refresh}

[limits]
max_client_message_bytes = {max_message}
max_concurrent_streams = {max_streams}
max_client_connections = {max_connections}
max_client_connections_per_address = {max_connections_per_address}
max_connection_age_secs = {max_age}
max_connection_age_grace_secs = {max_age_grace}
max_client_requests_in_flight = {max_in_flight}
recover_per_account_per_min = {account_rate}
recover_per_account_burst = {account_burst}
recover_per_address_per_min = {address_rate}
recover_per_address_burst = {address_burst}

[http]
write_token_file = "{pki}/{HTTP_WRITE_TOKEN}"

[log]
level = "{level}"
"#,
            data = data_dir.display(),
            client = ports.client,
            peer = ports.peer,
            admin = ports.admin,
            http = ports.http,
            hb = r.heartbeat_ms,
            emin = r.election_timeout_min_ms,
            emax = r.election_timeout_max_ms,
            snap = r.snapshot_every_logs,
            kept = r.logs_kept_after_snapshot,
            rpc = r.rpc_timeout_ms,
            write = self.options.write_timeout_ms,
            ticket_ttl = self.options.ticket_ttl_secs,
            repair = self.options.share_repair_period_ms,
            refresh = self.options.share_refresh_interval_secs,
            max_message = l.max_client_message_bytes,
            max_streams = l.max_concurrent_streams,
            max_connections = l.max_client_connections,
            max_connections_per_address = l.max_client_connections_per_address,
            max_age = l.max_connection_age_secs,
            max_age_grace = l.max_connection_age_grace_secs,
            max_in_flight = l.max_client_requests_in_flight,
            account_rate = l.recover_per_account_per_min,
            account_burst = l.recover_per_account_burst,
            address_rate = l.recover_per_address_per_min,
            address_burst = l.recover_per_address_burst,
            level = self.options.log_level,
        )
    }

    /// `bkv admin init` on node `id`.
    pub async fn init(&self, id: u64) -> anyhow::Result<()> {
        let admin = self.admin_at(id).await?;
        let o = &self.options;
        admin
            .init(
                &o.cluster_name,
                o.default_guess_limit,
                o.max_guess_limit,
                &self.identity,
            )
            .await?;
        self.wait_serving(id, o.start_timeout).await
    }

    /// The add-node ceremony for node `id` (already running): node info, fingerprint,
    /// `AddNode` through the leader, progress read to `Done`.
    pub async fn join(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.node(id)?;
        let admin_addr = node.admin_addr();
        let info = self.admin_at(id).await?.node_info().await?;
        anyhow::ensure!(info.node_id == id, "node {id} says it is {}", info.node_id);
        let admin = self.admin().await?;
        let timeout = self.options.start_timeout;
        let until = Instant::now() + timeout;
        let mut stream = admin
            .add_node(id, &admin_addr, &info.enrollment_fingerprint, false)
            .await?;
        let mut last = None;
        loop {
            let remaining = until.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, stream.next()).await {
                Ok(Ok(Some(progress))) => last = Some(progress),
                Ok(Ok(None)) => break,
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => anyhow::bail!(
                    "add-node {id}: no end within {} s (last progress: {last:?})",
                    timeout.as_secs()
                ),
            }
        }
        let done = last
            .as_ref()
            .is_some_and(|p| p.phase == i32::from(AddNodePhase::Done));
        anyhow::ensure!(done, "add-node {id} ended without Done: {last:?}");
        self.publish_share_map().await
    }

    /// Signs the share map of the voters as they are now and puts it in force (what
    /// `bkv admin add-node` and `remove-node` do at their end).
    pub async fn publish_share_map(&mut self) -> anyhow::Result<()> {
        let identity = self.identity.clone();
        self.admin().await?.publish_share_map(&identity).await?;
        Ok(())
    }

    /// The cluster identity public key, as clients pin it.
    pub fn identity_public(&self) -> [u8; 32] {
        self.identity.verifying_key().to_bytes()
    }

    /// Removes node `id` from the membership (through the leader), then stops its process
    /// with SIGTERM (checking that it exits cleanly) and forgets it.
    pub async fn remove_node(&mut self, id: u64) -> anyhow::Result<()> {
        let admin = self.admin().await?;
        let answer = admin.remove_node(id).await?;
        anyhow::ensure!(
            !answer.voters.contains(&id) && !answer.learners.contains(&id),
            "node {id} still a member after removal: {answer:?}"
        );
        if self.node(id)?.state() != ProcessState::Down {
            self.sigterm(id).await?;
        }
        self.nodes.remove(&id);
        self.publish_share_map().await
    }

    /// An admin client (admin certificate) for the nodes that are up.
    pub async fn admin(&mut self) -> anyhow::Result<AdminClient> {
        let endpoints: Vec<String> = self
            .up_ids()
            .iter()
            .filter_map(|id| self.nodes.get(id).map(NodeProcess::admin_addr))
            .collect();
        anyhow::ensure!(!endpoints.is_empty(), "no node is up");
        self.admin_for(endpoints, "admin").await
    }

    /// An admin client (admin certificate) for node `id` only.
    pub async fn admin_at(&self, id: u64) -> anyhow::Result<AdminClient> {
        let addr = self.node(id)?.admin_addr();
        self.admin_for(vec![addr], "admin").await
    }

    /// An admin-API client for `endpoints` presenting the certificate `<stem>.pem` of the
    /// PKI dir (`admin`, or `node<N>` to act as a node).
    pub async fn admin_for(
        &self,
        endpoints: Vec<String>,
        stem: &str,
    ) -> anyhow::Result<AdminClient> {
        let cert = std::fs::read(self.pki.join(format!("{stem}.pem")))?;
        let key = std::fs::read(self.pki.join(format!("{stem}.key")))?;
        let mut config = AdminConfig::new(endpoints, self.ca_pem.clone(), cert, key);
        config.call_timeout = Duration::from_secs(10);
        Ok(AdminClient::connect(config).await?)
    }

    /// Node `id`'s own view (`NodeStatus`, without the state digest), within 3 s.
    pub async fn node_view(&self, id: u64) -> anyhow::Result<NodeView> {
        let admin = self.admin_at(id).await?;
        let view = tokio::time::timeout(Duration::from_secs(3), admin.node_status())
            .await
            .map_err(|_| anyhow::anyhow!("node {id}: no NodeStatus answer within 3 s"))??;
        Ok(view)
    }

    /// Node `id`'s applied index and state digest (`NodeStatus` with the digest), within 3 s.
    pub async fn digest_of(&self, id: u64) -> anyhow::Result<Digest> {
        let admin = self.admin_at(id).await?;
        let view = tokio::time::timeout(Duration::from_secs(3), admin.node_status_with_digest())
            .await
            .map_err(|_| anyhow::anyhow!("node {id}: no NodeStatus answer within 3 s"))??;
        anyhow::ensure!(
            !view.state_digest.is_empty(),
            "node {id}: NodeStatus has no digest although asked for one"
        );
        Ok((view.applied_index, view.state_digest))
    }

    /// The cluster status (admin `Status`) from the first node that is up and answers.
    pub async fn status(&mut self) -> anyhow::Result<ClusterStatusResponse> {
        let admin = self.admin().await?;
        Ok(admin.status().await?)
    }

    /// Waits up to `timeout` until node `id` reports `n` shares held (`bkv_shares_held`:
    /// installed ahead of recoveries, t17).
    pub async fn wait_shares_held(
        &self,
        id: u64,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let node = self.node(id)?;
        wait_for(
            &format!("node {id} to hold {n} shares"),
            timeout,
            Duration::from_millis(250),
            || async {
                let held = node.metrics().await?.count("bkv_shares_held", &[]);
                Ok((held == n as f64).then_some(()))
            },
        )
        .await
    }

    /// The leader, as the nodes that are up see it: the highest-term node that says it
    /// leads, once a majority of the nodes that are up name it. Waits up to `timeout`.
    pub async fn leader(&mut self, timeout: Duration) -> anyhow::Result<u64> {
        let ids = self.up_ids();
        let this = &*self;
        wait_for("a leader", timeout, Duration::from_millis(50), || {
            let ids = ids.clone();
            async move {
                let mut views = Vec::new();
                for id in &ids {
                    if let Ok(v) = this.node_view(*id).await {
                        views.push(v);
                    }
                }
                let Some(leader) = views
                    .iter()
                    .filter(|v| v.is_leader)
                    .max_by_key(|v| v.term)
                    .map(|v| (v.node_id, v.term))
                else {
                    return Ok(None);
                };
                let agree = views
                    .iter()
                    .filter(|v| v.leader_id == leader.0 && v.term == leader.1)
                    .count();
                Ok((agree * 2 > ids.len()).then_some(leader.0))
            }
        })
        .await
    }

    /// Waits up to `timeout` for node `id`'s `/readyz` to answer 200.
    pub async fn wait_serving(&self, id: u64, timeout: Duration) -> anyhow::Result<()> {
        let node = self.node(id)?;
        wait_for(
            &format!("node {id} serving"),
            timeout,
            Duration::from_millis(50),
            || async {
                let answer = node.readyz().await?;
                if answer.status == 200 {
                    Ok(Some(()))
                } else {
                    anyhow::bail!("/readyz {}: {}", answer.status, answer.body.trim())
                }
            },
        )
        .await
    }

    /// `(applied_index, state_digest)` of each node that is up and answers.
    pub async fn digests(&mut self) -> anyhow::Result<BTreeMap<u64, Digest>> {
        let mut out = BTreeMap::new();
        for id in self.up_ids() {
            if let Ok(d) = self.digest_of(id).await {
                out.insert(id, d);
            }
        }
        Ok(out)
    }

    /// Waits up to `timeout` until every node in `ids` reports the same digest at the same
    /// applied index; returns that pair.
    pub async fn wait_digests_equal(
        &self,
        ids: &[u64],
        timeout: Duration,
    ) -> anyhow::Result<Digest> {
        wait_for(
            &format!("equal digests on nodes {ids:?}"),
            timeout,
            Duration::from_millis(50),
            || async {
                let mut seen = BTreeMap::new();
                for id in ids {
                    seen.insert(*id, self.digest_of(*id).await?);
                }
                let mut values = seen.values();
                let first = values.next().cloned();
                match first {
                    Some(first) if first.0 > 0 && values.all(|v| *v == first) => Ok(Some(first)),
                    _ => anyhow::bail!("digests differ: {seen:?}"),
                }
            },
        )
        .await
    }

    /// Waits up to `timeout` until the membership (from any node that is up) has exactly
    /// `voters` as voters and no learner.
    pub async fn wait_voters(&mut self, voters: &[u64], timeout: Duration) -> anyhow::Result<()> {
        let admin = self.admin().await?;
        let mut want = voters.to_vec();
        want.sort_unstable();
        wait_for(
            &format!("voters {want:?}"),
            timeout,
            Duration::from_millis(100),
            || async {
                let s = admin.status().await?;
                let mut got: Vec<u64> = s
                    .members
                    .iter()
                    .filter(|m| m.role == i32::from(MemberRole::Voter))
                    .map(|m| m.node_id)
                    .collect();
                got.sort_unstable();
                let learners = s
                    .members
                    .iter()
                    .any(|m| m.role == i32::from(MemberRole::Learner));
                if got == want && !learners {
                    Ok(Some(()))
                } else {
                    anyhow::bail!("voters {got:?}, learners present: {learners}")
                }
            },
        )
        .await
    }

    /// Claims of a fresh account token for `account` (valid 10 minutes).
    pub fn claims(&self, account: &str) -> Claims {
        let now = now_secs();
        Claims {
            iss: ISSUER_NAME.into(),
            sub: account.into(),
            aud: self.options.cluster_name.clone(),
            iat: now,
            exp: now + 600,
            nbf: None,
        }
    }

    /// A fresh account token for `account`, signed by the cluster's dev issuer.
    pub fn token(&self, account: &str) -> String {
        issue(&self.issuer, &self.claims(account))
    }

    /// Signs `claims` with the cluster's dev issuer key.
    pub fn sign(&self, claims: &Claims) -> String {
        issue(&self.issuer, claims)
    }

    /// A token source that issues a fresh token for `account` on every call.
    pub fn token_source(&self, account: &str) -> TokenSource {
        let issuer = self.issuer.clone();
        let claims = self.claims(account);
        TokenSource::from_fn(move || {
            let now = now_secs();
            let claims = Claims {
                iat: now,
                exp: now + 600,
                ..claims.clone()
            };
            Ok(bkv_client::SecretString::from(issue(&issuer, &claims)))
        })
    }

    /// Client settings for the client ports of `ids` (in that order), with `token`, light
    /// Argon2id and the harness's timeouts.
    pub fn client_config(&self, ids: &[u64], token: TokenSource) -> anyhow::Result<ClientConfig> {
        let endpoints = ids
            .iter()
            .map(|id| self.node(*id).map(NodeProcess::client_url))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut config = ClientConfig::new(endpoints, self.ca_pem.clone(), token);
        config.identity_key = Some(self.identity_public());
        config.ksf = KsfParams::light();
        config.call_timeout = self.options.client_call_timeout;
        config.deadline = self.options.client_deadline;
        Ok(config)
    }

    /// A vault client for `account` through the client ports of `ids`, with fresh tokens.
    pub async fn vault(&self, ids: &[u64], account: &str) -> anyhow::Result<VaultClient> {
        let config = self.client_config(ids, self.token_source(account))?;
        Ok(VaultClient::connect(config).await?)
    }

    /// Commits `n` cheap log entries through the client ports of `ids` (each a `Delete` of
    /// an account that holds nothing), to grow the Raft log. One after the other: the leader
    /// groups concurrent commands into shared entries, so only sequential writes give one
    /// entry each.
    pub async fn write_entries(&self, ids: &[u64], n: usize) -> anyhow::Result<()> {
        let client = self.vault(ids, "filler").await?;
        for _ in 0..n {
            client.delete().await?;
        }
        Ok(())
    }

    /// A raw TLS channel to node `id`'s client port, for calls the SDK would not make.
    pub fn client_channel(&self, id: u64) -> anyhow::Result<tonic::transport::Channel> {
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.ca_pem));
        Ok(
            tonic::transport::Endpoint::from_shared(self.node(id)?.client_url())?
                .tls_config(tls)?
                .connect_timeout(Duration::from_secs(3))
                .timeout(self.options.client_call_timeout)
                .connect_lazy(),
        )
    }

    /// [`Self::client_channel`] from the local address `local` (any of 127.0.0.0/8: a
    /// client at another address, as a node's per-address limits see it).
    pub fn client_channel_from(
        &self,
        id: u64,
        local: std::net::IpAddr,
    ) -> anyhow::Result<tonic::transport::Channel> {
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.ca_pem));
        Ok(
            tonic::transport::Endpoint::from_shared(self.node(id)?.client_url())?
                .tls_config(tls)?
                .local_address(Some(local))
                .connect_timeout(Duration::from_secs(3))
                .timeout(self.options.client_call_timeout)
                .connect_lazy(),
        )
    }

    /// Prints the last `lines` lines of every node's log to stderr.
    pub fn print_logs(&self, lines: usize) {
        for (id, node) in &self.nodes {
            eprintln!(
                "----- node {id} ({:?}), last {lines} lines of {} -----\n{}",
                node.state(),
                node.log_path().display(),
                node.log_tail(lines)
            );
        }
    }

    /// The end of a test that stops nodes with SIGSTOP: prints the nodes' last 40 log lines
    /// if `result` failed, resumes every node whatever happened, and returns `result`.
    pub fn settle(&mut self, result: anyhow::Result<()>) -> anyhow::Result<()> {
        if let Err(e) = &result {
            // On stdout as well as at the end: a CI excerpt that cuts the node logs short
            // still shows why the test failed.
            println!("failed: {e:#}");
            self.print_logs(40);
        }
        for id in self.ids() {
            let _ = self.sigcont(id);
        }
        result
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs(40);
        }
        for node in self.nodes.values_mut() {
            node.kill9();
        }
        if let Some(lab) = &self.options.netns {
            lab.unmount_under(self.dir.path());
        }
        if std::env::var_os("BKV_TEST_KEEP_DIR").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("kept cluster dir {}", self.dir.path().display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_for_returns_the_value_or_fails_in_bounded_time_naming_the_wait() {
        let mut n = 0;
        let got = wait_for("three", Duration::from_secs(5), Duration::ZERO, || {
            n += 1;
            let v = n;
            async move { Ok((v == 3).then_some(v)) }
        })
        .await
        .unwrap();
        assert_eq!(got, 3);
        let started = Instant::now();
        let err = wait_for::<(), _, _>(
            "never",
            Duration::from_millis(100),
            Duration::from_millis(10),
            || async { anyhow::bail!("still no") },
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(err.contains("never") && err.contains("still no"), "{err}");
    }
}
