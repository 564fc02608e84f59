//! Starting a node: open the HSM partition and Raft, bind the four listeners (client, peer,
//! admin, HTTP), keep health and readiness current, and stop gracefully on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bkv_core::token::TrustedIssuers;
use bkv_hsm::{HsmConfig, Partition, Pin};
use bkv_proto::v1::admin_server::AdminServer;
use bkv_proto::v1::vault_server::VaultServer;
use bkv_raft::{NodeOptions, PeerOptions, RaftNode};
use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use tokio::sync::watch;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::admin::AdminService;
use crate::audit_log::{AccountHasher, AuditLog};
use crate::config::NodeConfig;
use crate::http;
use crate::metrics::Metrics;
use crate::node::Node;
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

fn bind(addr: SocketAddr, key: &str) -> anyhow::Result<TcpIncoming> {
    Ok(TcpIncoming::bind(addr)
        .with_context(|| format!("listen.{key}: cannot listen on {addr}"))?
        .with_nodelay(Some(true)))
}

/// Runs a node until `shutdown` resolves, then stops it gracefully.
pub async fn run(
    config: NodeConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("data_dir: cannot create {}", config.data_dir.display()))?;
    let tls = TlsMaterial::load(&config.tls)?;
    let issuers = load_issuers(&config)?;

    // Bind everything first: a port in use fails the start with the key named.
    let client_incoming = bind(config.listen.client, "client")?;
    let peer_incoming = bind(config.listen.peer, "peer")?;
    let admin_incoming = bind(config.listen.admin, "admin")?;
    let grpc_health_incoming = config
        .listen
        .grpc_health
        .map(|addr| bind(addr, "grpc_health"))
        .transpose()?;
    let http_listener = tokio::net::TcpListener::bind(config.listen.http)
        .await
        .with_context(|| format!("listen.http: cannot listen on {}", config.listen.http))?;

    let h = &config.hsm;
    let user_pin = pin(
        h.user_pin_file.as_deref(),
        h.user_pin_env.as_deref(),
        "user_pin",
    )?
    .context("hsm.user_pin_file: no user PIN configured")?;
    let so_pin = pin(h.so_pin_file.as_deref(), h.so_pin_env.as_deref(), "so_pin")?;
    let hsm = Partition::open(HsmConfig {
        module: h.module.clone(),
        token_label: h.token_label.clone(),
        user_pin,
        so_pin,
        workers: h.workers,
    })
    .await
    .with_context(|| format!("hsm: cannot open token {:?}", h.token_label))?;
    let enrollment = hsm.enrollment_key().await.context("hsm: enrollment key")?;
    tracing::info!(
        node_id = config.node_id,
        token = %h.token_label,
        fingerprint = %enrollment.fingerprint,
        "HSM partition open"
    );

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

    let (hasher_tx, hasher_rx) = watch::channel(None::<AccountHasher>);
    let (audit, queue) = AuditLog::start(&config.data_dir, hasher_rx, config.audit.rotation())
        .context("audit file")?;
    let mut options = NodeOptions::new(config.node_id, &config.data_dir, Arc::new(queue));
    options.config = raft_config(&config);
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
    let metrics = Metrics::new();
    let limits = config.limits.clone();
    let config_node_id = config.node_id;
    let node = Node::new(
        config,
        hsm,
        raft,
        issuers,
        tls.clone(),
        metrics.clone(),
        hasher_tx,
    );

    let (health, health_service) = tonic_health::server::health_reporter();
    // The client port's size limit holds for every service on it, health and reflection too.
    let health_service = health_service.max_decoding_message_size(limits.max_client_message_bytes);
    let mut health_at_shutdown = health.clone();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(bkv_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("reflection")?
        .max_decoding_message_size(limits.max_client_message_bytes);

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let vault = VaultServer::new(VaultService::new(node.clone()))
        .max_decoding_message_size(limits.max_client_message_bytes);
    let client_server = Server::builder()
        .tls_config(tls.client_listener())?
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .timeout(Duration::from_secs(30))
        .add_service(health_service.clone())
        .add_service(reflection)
        .add_service(vault)
        .serve_with_incoming_shutdown(client_incoming, stopped(stop_rx.clone()));

    let peer_service = tonic::service::interceptor::InterceptedService::new(
        node.raft().service(),
        |request: tonic::Request<()>| {
            require_role(&request, |r| r.is_node(), "the Raft service")?;
            Ok(request)
        },
    );
    let peer_server = Server::builder()
        .tls_config(tls.mutual_listener())?
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(5)))
        .add_service(peer_service)
        .serve_with_incoming_shutdown(peer_incoming, stopped(stop_rx.clone()));

    let admin_server = Server::builder()
        .tls_config(tls.mutual_listener())?
        .add_service(AdminServer::new(AdminService::new(node.clone(), audit)))
        .serve_with_incoming_shutdown(admin_incoming, stopped(stop_rx.clone()));

    let http_server = http::serve(
        http_listener,
        node.clone(),
        metrics,
        stopped(stop_rx.clone()),
    );
    let grpc_health_server = {
        let incoming = grpc_health_incoming;
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

    // Health follows readiness.
    let mut readiness = node.readiness();
    let health_task = tokio::spawn(async move {
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
    let readiness_task = tokio::spawn(node.clone().readiness_loop(Duration::from_millis(250)));
    let watermark_task = {
        let node = node.clone();
        tokio::spawn(watermark::keep_up(
            node.hsm().clone(),
            move || node.raft().watermark(),
            config_node_id,
            at_least,
            Duration::from_secs(1),
        ))
    };

    tracing::info!(
        node_id = node.id(),
        client = %node.config().listen.client,
        peer = %node.config().listen.peer,
        admin = %node.config().listen.admin,
        http = %node.config().listen.http,
        "bkv-node listening"
    );

    let servers = async {
        tokio::try_join!(
            async { client_server.await.context("client listener") },
            async { peer_server.await.context("peer listener") },
            async { admin_server.await.context("admin listener") },
            async { http_server.await.context("http listener") },
            grpc_health_server,
        )
    };
    tokio::pin!(servers);
    let result = tokio::select! {
        r = &mut servers => r.map(|_| ()),
        () = shutdown => {
            tracing::info!("shutting down");
            node.begin_shutdown();
            health_task.abort();
            for name in [VAULT_NAME, ""] {
                health_at_shutdown
                    .set_service_status(name, tonic_health::ServingStatus::NotServing)
                    .await;
            }
            // Let health checkers and load balancers see NOT_SERVING before the ports close.
            tokio::time::sleep(Duration::from_millis(200)).await;
            // Then end the health `Watch` streams: open streams would hold the drain below.
            for name in [VAULT_NAME, ""] {
                health_at_shutdown.clear_service_status(name).await;
            }
            let _ = stop_tx.send(true);
            match tokio::time::timeout(Duration::from_secs(10), &mut servers).await {
                Ok(r) => r.map(|_| ()),
                Err(_) => {
                    tracing::warn!("listeners did not drain within 10 s");
                    Ok(())
                }
            }
        }
    };
    node.begin_shutdown();
    node.raft().shutdown().await;
    watermark_task.abort();
    let mut written = at_least.unwrap_or_default();
    if let Err(e) =
        watermark::step(node.hsm(), node.raft().watermark(), node.id(), &mut written).await
    {
        tracing::warn!(error = %e, "cannot write the final durability watermark");
    }
    readiness_task.abort();
    health_task.abort();
    tracing::info!("stopped");
    result
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
    let h = &config.hsm;
    let user_pin = pin(
        h.user_pin_file.as_deref(),
        h.user_pin_env.as_deref(),
        "user_pin",
    )?
    .context("hsm.user_pin_file: no user PIN configured")?;
    let hsm = Partition::open(HsmConfig {
        module: h.module.clone(),
        token_label: h.token_label.clone(),
        user_pin,
        so_pin: None,
        workers: 1,
    })
    .await
    .with_context(|| format!("hsm: cannot open token {:?}", h.token_label))?;
    watermark::reset(&hsm).await.context("hsm: watermark")?;
    tracing::warn!(node_id = config.node_id, "durability watermark reset");
    Ok(())
}
