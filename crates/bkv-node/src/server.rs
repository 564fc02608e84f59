//! Starting a node, in named phases ([`run`]): read the files the configuration names, bind
//! the listeners (client, peer, admin, HTTP, optional plaintext health), open the HSM
//! partition and storage (watermark, audit file, Raft), build the services, serve (health
//! follows readiness), and shut down gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bkv_core::oprf::P256PublicKey;
use bkv_core::token::TrustedIssuers;
use bkv_hsm::{HsmConfig, Partition, Pin};
use bkv_proto::v1::admin_server::AdminServer;
use bkv_proto::v1::vault_server::VaultServer;
use bkv_raft::{DurableState, NodeOptions, PeerOptions, RaftNode};
use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use tokio::sync::watch;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::admin::AdminService;
use crate::audit_log::{AccountHasher, AuditLog};
use crate::config::NodeConfig;
use crate::connections::{self, ClientConnections, ConnectionLimits, LimitedIncoming};
use crate::http::{self, WriteToken};
use crate::in_flight::InFlightLimit;
use crate::metrics::Metrics;
use crate::node::Node;
use crate::shares::{self, NodeShares, NodeState, SharesService, SledLedgers};
use crate::tls::{TlsMaterial, require_role};
use crate::vault::VaultService;
use crate::watermark;

/// Reads the trusted account-token issuers' public keys.
pub fn load_issuers(config: &NodeConfig) -> anyhow::Result<TrustedIssuers> {
    let auth = &config.auth;
    let mut issuers = TrustedIssuers::new(auth.max_token_lifetime_secs, auth.clock_skew_secs);
    for issuer in &auth.issuers {
        let pem = std::fs::read_to_string(&issuer.public_key_file).with_context(|| {
            format!(
                "auth.issuers: cannot read the public key of {:?} at {}",
                issuer.name,
                issuer.public_key_file.display()
            )
        })?;
        let key = VerifyingKey::from_public_key_pem(&pem).with_context(|| {
            format!(
                "auth.issuers: {} is not an Ed25519 public key (PEM)",
                issuer.public_key_file.display()
            )
        })?;
        issuers.insert(issuer.name.clone(), key);
    }
    Ok(issuers)
}

fn pin(file: Option<&Path>, env: Option<&str>, key: &str) -> anyhow::Result<Option<Pin>> {
    Ok(match (file, env) {
        (Some(f), _) => Some(Pin::from_file(f).with_context(|| format!("hsm.{key}_file"))?),
        (None, Some(v)) => Some(Pin::from_env(v).with_context(|| format!("hsm.{key}_env"))?),
        (None, None) => None,
    })
}

fn raft_config(config: &NodeConfig) -> openraft::Config {
    let r = &config.raft;
    openraft::Config {
        cluster_name: "bkv".into(),
        heartbeat_interval: r.heartbeat_ms,
        election_timeout_min: r.election_timeout_min_ms,
        election_timeout_max: r.election_timeout_max_ms,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(r.snapshot_every_logs),
        max_in_snapshot_log_to_keep: r.logs_kept_after_snapshot,
        ..bkv_raft::raft_config()
    }
}

/// The name the health service reports the vault under.
const VAULT_NAME: &str = <VaultServer<VaultService> as tonic::server::NamedService>::NAME;

type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

fn bind(addr: SocketAddr, key: &str) -> anyhow::Result<TcpIncoming> {
    Ok(TcpIncoming::bind(addr)
        .with_context(|| format!("listen.{key}: cannot listen on {addr}"))?
        .with_nodelay(Some(true)))
}

/// Opens the HSM partition named in `[hsm]`, with the SO PIN when `with_so_pin`.
async fn open_hsm(
    config: &NodeConfig,
    with_so_pin: bool,
    workers: usize,
) -> anyhow::Result<Partition> {
    let h = &config.hsm;
    let user_pin = pin(
        h.user_pin_file.as_deref(),
        h.user_pin_env.as_deref(),
        "user_pin",
    )?
    .context("hsm.user_pin_file: no user PIN configured")?;
    let so_pin = if with_so_pin {
        pin(h.so_pin_file.as_deref(), h.so_pin_env.as_deref(), "so_pin")?
    } else {
        None
    };
    Partition::open(HsmConfig {
        module: h.module.clone(),
        token_label: h.token_label.clone(),
        user_pin,
        so_pin,
        workers,
    })
    .await
    .with_context(|| format!("hsm: cannot open token {:?}", h.token_label))
}

/// Runs a node until `shutdown` resolves, then stops it gracefully: check the files the
/// configuration names, bind the listeners, open the HSM and storage, build the services,
/// serve, shut down.
pub async fn run(
    config: NodeConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let files = Files::read(&config)?;
    let metrics = Metrics::new();
    // Bind everything first: a port in use fails the start with the key named.
    let listeners = Listeners::bind(&config, &metrics).await?;
    let storage = Storage::open(&config, &files.tls, &metrics).await?;
    let at_least = storage.at_least;
    let Files {
        tls,
        issuers,
        write_token,
    } = files;
    let (node, audit) = storage.into_node(config, issuers, tls, metrics.clone());
    let services = Services::build(&node, audit, listeners, write_token, metrics)?;
    let background = Background::start(&node, services.health.clone(), at_least);
    tracing::info!(
        node_id = node.id(),
        client = %node.config().listen.client,
        peer = %node.config().listen.peer,
        admin = %node.config().listen.admin,
        http = %node.config().listen.http,
        "bkv-node listening"
    );
    let result = services.serve(&node, &background, shutdown).await;
    shut_down(&node, background, at_least).await;
    result
}

/// The node's share ledgers, under its data directory.
const SHARES_DIR: &str = "shares";

/// How often a node erases the shares of records that are gone.
const SHARE_SWEEP_PERIOD: Duration = Duration::from_secs(5);

/// Phase 0: what the configuration names and the node reads before it binds anything.
struct Files {
    tls: TlsMaterial,
    issuers: TrustedIssuers,
    write_token: Option<WriteToken>,
}

impl Files {
    fn read(config: &NodeConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("data_dir: cannot create {}", config.data_dir.display()))?;
        let tls = TlsMaterial::load(&config.tls)?;
        let issuers = load_issuers(config)?;
        let write_token = config
            .http
            .write_token_file
            .as_deref()
            .map(WriteToken::from_file)
            .transpose()?;
        let open_files = connections::ensure_fd_limit(config.limits.max_client_connections)?;
        tracing::debug!(?open_files, "open-files limit");
        Ok(Self {
            tls,
            issuers,
            write_token,
        })
    }
}

/// Phase 1: the bound listeners.
struct Listeners {
    client: LimitedIncoming,
    peer: TcpIncoming,
    admin: TcpIncoming,
    grpc_health: Option<TcpIncoming>,
    http: tokio::net::TcpListener,
}

impl Listeners {
    async fn bind(config: &NodeConfig, metrics: &Metrics) -> anyhow::Result<Self> {
        let l = &config.listen;
        let connections = ClientConnections::new(
            ConnectionLimits::from_config(&config.limits),
            Some(metrics.clone()),
        );
        let client = connections
            .bind(l.client)
            .with_context(|| format!("listen.client: cannot listen on {}", l.client))?;
        let peer = bind(l.peer, "peer")?;
        let admin = bind(l.admin, "admin")?;
        let grpc_health = l
            .grpc_health
            .map(|addr| bind(addr, "grpc_health"))
            .transpose()?;
        let http = tokio::net::TcpListener::bind(l.http)
            .await
            .with_context(|| format!("listen.http: cannot listen on {}", l.http))?;
        Ok(Self {
            client,
            peer,
            admin,
            grpc_health,
            http,
        })
    }
}

/// Phase 2: the HSM partition, the durability watermark, the audit file and Raft's storage.
struct Storage {
    hsm: Partition,
    raft: RaftNode,
    audit: AuditLog,
    hasher: watch::Sender<Option<AccountHasher>>,
    at_least: Option<DurableState>,
    /// The node's share-receiving public key (made in its token on first start).
    receive_key: P256PublicKey,
    /// The node's share ledgers (`<data_dir>/shares`).
    ledgers: SledLedgers,
}

impl Storage {
    async fn open(
        config: &NodeConfig,
        tls: &TlsMaterial,
        metrics: &Metrics,
    ) -> anyhow::Result<Self> {
        let hsm = open_hsm(config, true, config.hsm.workers).await?;
        let enrollment = hsm.enrollment_key().await.context("hsm: enrollment key")?;
        tracing::info!(
            node_id = config.node_id,
            token = %config.hsm.token_label,
            fingerprint = %enrollment.fingerprint,
            "HSM partition open"
        );

        let share_key = hsm
            .share_receive_key()
            .await
            .context("hsm: share-receiving key")?;
        let receive_key = P256PublicKey::parse(&share_key.public)
            .context("hsm: the share-receiving key is not a P-256 point")?;
        tracing::info!(fingerprint = %share_key.fingerprint, "share-receiving key");
        let ledgers =
            SledLedgers::open(&config.data_dir.join(SHARES_DIR)).context("share ledgers")?;

        let at_least = watermark::read(&hsm, config.node_id)
            .await
            .context("hsm: watermark")?;
        if let Some(w) = at_least {
            tracing::info!(
                log_index = w.last_log_index,
                vote_term = w.vote_term,
                "durability watermark"
            );
        }

        let (hasher, hasher_rx) = watch::channel(None::<AccountHasher>);
        let (audit, queue) = AuditLog::start(
            &config.data_dir,
            hasher_rx,
            config.audit.rotation(),
            Some(metrics.clone()),
        )
        .context("audit file")?;
        let mut options = NodeOptions::new(config.node_id, &config.data_dir, Arc::new(queue));
        options.config = raft_config(config);
        options.peers = PeerOptions {
            tls: Some(tls.peer_client()),
            connect_timeout: Duration::from_millis(config.raft.rpc_timeout_ms.min(2_000)),
            ..PeerOptions::default()
        };
        options.write_deadline = Duration::from_millis(config.recovery.write_timeout_ms);
        options.forward_timeout = Duration::from_millis(
            config
                .recovery
                .write_timeout_ms
                .saturating_sub(500)
                .max(100),
        );
        options.batch = bkv_raft::BatchOptions {
            max_commands: config.raft.max_commands_per_entry,
            entries_in_flight: config.raft.entries_in_flight,
        };
        options.at_least = at_least;
        let raft = match RaftNode::open(options).await {
            Ok(raft) => raft,
            Err(e @ bkv_raft::OpenError::RolledBack { .. }) => {
                anyhow::bail!(
                    "{e}. This node will not vote or serve on it. Repair (OPERATIONS.md, \"Rollback\"): \
                     remove node {id} from the cluster on a healthy member (bkv admin remove-node \
                     --node-id {id}), wipe {dir}, run bkv-node --reset-watermark with this config, \
                     start it, and add it again (bkv admin add-node)",
                    id = config.node_id,
                    dir = config.data_dir.display()
                )
            }
            Err(e) => return Err(e).context("raft"),
        };
        Ok(Self {
            hsm,
            raft,
            audit,
            hasher,
            at_least,
            receive_key,
            ledgers,
        })
    }

    /// The node over this storage, and its audit log.
    fn into_node(
        self,
        config: NodeConfig,
        issuers: TrustedIssuers,
        tls: TlsMaterial,
        metrics: Metrics,
    ) -> (Node, AuditLog) {
        let node = Node::new(
            config,
            self.hsm,
            self.raft,
            issuers,
            tls,
            metrics,
            self.hasher,
        );
        node.set_shares(Arc::new(NodeShares::new(
            node.id(),
            self.receive_key,
            node.sealer().clone(),
            self.ledgers,
            NodeState::of(node.raft()),
        )));
        (node, self.audit)
    }
}

/// Phase 3: the five servers (client, peer, admin, HTTP, optional plaintext health), built
/// over the bound listeners and ready to run until `stop` is sent.
struct Services {
    servers: BoxFuture<anyhow::Result<()>>,
    health: tonic_health::server::HealthReporter,
    stop: watch::Sender<bool>,
}

impl Services {
    fn build(
        node: &Node,
        audit: AuditLog,
        listeners: Listeners,
        write_token: Option<WriteToken>,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let limits = node.config().limits.clone();
        let tls = node.tls();
        let (health, health_service) = tonic_health::server::health_reporter();
        // The client port's size limit holds for every service on it, health and
        // reflection too.
        let health_service =
            health_service.max_decoding_message_size(limits.max_client_message_bytes);
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(bkv_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .context("reflection")?
            .max_decoding_message_size(limits.max_client_message_bytes);

        let (stop, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };

        let vault = VaultServer::new(VaultService::new(node.clone()))
            .max_decoding_message_size(limits.max_client_message_bytes);
        let in_flight = InFlightLimit::new(
            limits.max_client_requests_in_flight as usize,
            Some(metrics.clone()),
            {
                let node = node.clone();
                // Another node, if it leads: this one is overloaded.
                Arc::new(move || {
                    let leader = node.raft().leader();
                    (leader.id != Some(node.id()))
                        .then(|| node.leader_client_addr())
                        .flatten()
                })
            },
        );
        let mut client_builder = Server::builder()
            .tls_config(tls.client_listener())?
            .max_concurrent_streams(limits.max_concurrent_streams)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .timeout(Duration::from_secs(30));
        // GOAWAY at the age; the connection itself closes after the grace (connections.rs:
        // tonic 0.14 sends no GOAWAY at all when it is given a grace).
        if let Some(age) = limits.max_connection_age() {
            client_builder = client_builder.max_connection_age(age);
        }
        let client_server = client_builder
            .layer(in_flight)
            .add_service(health_service.clone())
            .add_service(reflection)
            .add_service(vault)
            .serve_with_incoming_shutdown(listeners.client, stopped(stop_rx.clone()));

        let nodes_only = |request: tonic::Request<()>| {
            require_role(&request, |r| r.is_node(), "the peer services")?;
            Ok(request)
        };
        let peer_service =
            tonic::service::interceptor::InterceptedService::new(node.raft().service(), nodes_only);
        let shares = node
            .shares()
            .cloned()
            .context("the node's share-holder is not set")?;
        let shares_service = tonic::service::interceptor::InterceptedService::new(
            SharesService::new(shares, metrics.clone()).into_server(),
            nodes_only,
        );
        let peer_server = Server::builder()
            .tls_config(tls.mutual_listener())?
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .http2_keepalive_timeout(Some(Duration::from_secs(5)))
            .add_service(peer_service)
            .add_service(shares_service)
            .serve_with_incoming_shutdown(listeners.peer, stopped(stop_rx.clone()));

        let admin_server = Server::builder()
            .tls_config(tls.mutual_listener())?
            .add_service(AdminServer::new(AdminService::new(node.clone(), audit)))
            .serve_with_incoming_shutdown(listeners.admin, stopped(stop_rx.clone()));

        let http_server = http::serve(
            listeners.http,
            node.clone(),
            metrics,
            write_token,
            stopped(stop_rx.clone()),
        );
        let grpc_health_server = {
            let incoming = listeners.grpc_health;
            let service = health_service.clone();
            let stop = stopped(stop_rx.clone());
            async move {
                match incoming {
                    Some(incoming) => Server::builder()
                        .add_service(service)
                        .serve_with_incoming_shutdown(incoming, stop)
                        .await
                        .context("grpc_health listener"),
                    None => Ok(()),
                }
            }
        };
        let servers = Box::pin(async move {
            tokio::try_join!(
                async { client_server.await.context("client listener") },
                async { peer_server.await.context("peer listener") },
                async { admin_server.await.context("admin listener") },
                async { http_server.await.context("http listener") },
                grpc_health_server,
            )
            .map(|_| ())
        });
        Ok(Self {
            servers,
            health,
            stop,
        })
    }

    /// Phase 4: serves until a server fails or `shutdown` resolves; then reports
    /// NOT_SERVING, lets checkers see it for 200 ms, and drains the listeners (10 s at most).
    async fn serve(
        self,
        node: &Node,
        background: &Background,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let Self {
            mut servers,
            mut health,
            stop,
        } = self;
        tokio::select! {
            r = &mut servers => r,
            () = shutdown => {
                tracing::info!("shutting down");
                node.begin_shutdown();
                background.health.abort();
                for name in [VAULT_NAME, ""] {
                    health
                        .set_service_status(name, tonic_health::ServingStatus::NotServing)
                        .await;
                }
                // Let health checkers and load balancers see NOT_SERVING before the ports
                // close.
                tokio::time::sleep(Duration::from_millis(200)).await;
                // Then end the health `Watch` streams: open streams would hold the drain below.
                for name in [VAULT_NAME, ""] {
                    health.clear_service_status(name).await;
                }
                let _ = stop.send(true);
                match tokio::time::timeout(Duration::from_secs(10), &mut servers).await {
                    Ok(r) => r,
                    Err(_) => {
                        tracing::warn!("listeners did not drain within 10 s");
                        Ok(())
                    }
                }
            }
        }
    }
}

/// The tasks that run beside the servers: health follows readiness, readiness checks, the
/// durability watermark.
struct Background {
    health: tokio::task::JoinHandle<()>,
    readiness: tokio::task::JoinHandle<()>,
    watermark: tokio::task::JoinHandle<()>,
    sweep: tokio::task::JoinHandle<()>,
    repair: tokio::task::JoinHandle<()>,
    /// The share refresh schedule (a task that ends at once when it is off).
    schedule: tokio::task::JoinHandle<()>,
    stop_sweep: watch::Sender<bool>,
}

impl Background {
    fn start(
        node: &Node,
        health: tonic_health::server::HealthReporter,
        at_least: Option<DurableState>,
    ) -> Self {
        // Health follows readiness.
        let mut readiness = node.readiness();
        let health = tokio::spawn(async move {
            loop {
                let serving = readiness.borrow_and_update().is_serving();
                if serving {
                    health.set_serving::<VaultServer<VaultService>>().await;
                    health
                        .set_service_status("", tonic_health::ServingStatus::Serving)
                        .await;
                } else {
                    health.set_not_serving::<VaultServer<VaultService>>().await;
                    health
                        .set_service_status("", tonic_health::ServingStatus::NotServing)
                        .await;
                }
                if readiness.changed().await.is_err() {
                    return;
                }
            }
        });
        let readiness = tokio::spawn(node.clone().readiness_loop(Duration::from_millis(250)));
        let watermark = {
            let node = node.clone();
            tokio::spawn(watermark::keep_up(
                node.hsm().clone(),
                {
                    let node = node.clone();
                    move || node.raft().watermark()
                },
                node.id(),
                at_least,
                Duration::from_secs(1),
            ))
        };
        // The shares of records that are gone are erased (and counted for the metrics).
        let (stop_sweep, stop_rx) = watch::channel(false);
        let (sweep, repair, schedule) = match node.shares().cloned() {
            Some(shares) => {
                let metrics = node.metrics().clone();
                let period = node.config().recovery.share_repair_period_ms;
                let repair = if period == 0 {
                    tokio::spawn(async {})
                } else {
                    tokio::spawn(shares::repair::repair_loop(
                        node.clone(),
                        shares.clone(),
                        Duration::from_millis(period),
                        stop_rx.clone(),
                    ))
                };
                let refresh_every = node.config().recovery.share_refresh_interval_secs;
                let schedule = if refresh_every == 0 {
                    tokio::spawn(async {})
                } else {
                    tokio::spawn(shares::refresh::schedule_loop(
                        node.clone(),
                        shares.clone(),
                        Duration::from_secs(refresh_every),
                        stop_rx.clone(),
                    ))
                };
                // The ledger store can be ahead of the applied state after a restart: the
                // state is replayed up to the commit index Raft had saved, which may lag what
                // the node had applied (and installed shares for) before it stopped. Until
                // the state has applied every entry in the log at startup, the sweep waits.
                let raft_metrics = node.raft().metrics();
                let replay_to = raft_metrics.borrow().last_log_index.unwrap_or(0);
                let caught_up = move || {
                    raft_metrics
                        .borrow()
                        .last_applied
                        .is_some_and(|l| l.index >= replay_to)
                        || replay_to == 0
                };
                let sweep = tokio::spawn(shares::sweep_loop(
                    shares,
                    SHARE_SWEEP_PERIOD,
                    caught_up,
                    move |held| metrics.set_shares_held(held),
                    stop_rx,
                ));
                (sweep, repair, schedule)
            }
            None => (
                tokio::spawn(async {}),
                tokio::spawn(async {}),
                tokio::spawn(async {}),
            ),
        };
        Self {
            repair,
            schedule,
            health,
            readiness,
            watermark,
            sweep,
            stop_sweep,
        }
    }
}

/// Phase 5: stops Raft, writes the final watermark, ends the background tasks.
async fn shut_down(node: &Node, background: Background, at_least: Option<DurableState>) {
    node.begin_shutdown();
    node.raft().shutdown().await;
    background.watermark.abort();
    let mut written = at_least.unwrap_or_default();
    if let Err(e) =
        watermark::step(node.hsm(), node.raft().watermark(), node.id(), &mut written).await
    {
        tracing::warn!(error = %e, "cannot write the final durability watermark");
    }
    let _ = background.stop_sweep.send(true);
    background.sweep.abort();
    background.repair.abort();
    background.schedule.abort();
    background.readiness.abort();
    background.health.abort();
    tracing::info!("stopped");
}

/// Forgets the durability watermark in this node's token (the repair procedure after a
/// rollback; see OPERATIONS.md). Refuses while the data directory still holds Raft data.
pub async fn reset_watermark(config: &NodeConfig) -> anyhow::Result<()> {
    let raft_dir = config.data_dir.join(bkv_raft::storage::RAFT_DB_DIR);
    anyhow::ensure!(
        !raft_dir.exists(),
        "{} still exists: remove the node from the cluster and wipe its data directory first",
        raft_dir.display()
    );
    let hsm = open_hsm(config, false, 1).await?;
    watermark::reset(&hsm).await.context("hsm: watermark")?;
    tracing::warn!(node_id = config.node_id, "durability watermark reset");
    Ok(())
}
