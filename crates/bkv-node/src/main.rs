//! `bkv-node`: runs one vault node.
//!
//! `bkv-node --config node.toml` (every key documented in `cluster/node.example.toml`);
//! `BKV_*` variables and the flags below override the file. Stops gracefully on SIGTERM or
//! SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use bkv_node::config::{FlagOverrides, ListenFlags, LogFlags, LogFormat, NodeConfig};
use clap::Parser;

/// A bkv vault node: an HSM partition, a Raft replica and the gRPC services.
#[derive(Debug, Parser)]
#[command(name = "bkv-node", version, about, long_about = None)]
struct Args {
    /// The configuration file (TOML).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// This node's id (overrides `node_id`).
    #[arg(long)]
    node_id: Option<u64>,
    /// Data directory (overrides `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Client listener (overrides `listen.client`).
    #[arg(long)]
    listen_client: Option<SocketAddr>,
    /// Peer listener (overrides `listen.peer`).
    #[arg(long)]
    listen_peer: Option<SocketAddr>,
    /// Admin listener (overrides `listen.admin`).
    #[arg(long)]
    listen_admin: Option<SocketAddr>,
    /// HTTP listener for health and metrics (overrides `listen.http`).
    #[arg(long)]
    listen_http: Option<SocketAddr>,
    /// Log format: human or json (overrides `log.format`).
    #[arg(long, value_parser = parse_format)]
    log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `bkv_node=debug,info` (overrides `log.level`).
    #[arg(long)]
    log_level: Option<String>,
    /// Repair after a rollback: forget the durability watermark in this node's token, then
    /// exit. Only with an empty data directory, after the node was removed from the cluster
    /// (OPERATIONS.md, "Rollback").
    #[arg(long)]
    reset_watermark: bool,
}

fn parse_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "human" => Ok(LogFormat::Human),
        "json" => Ok(LogFormat::Json),
        _ => Err("expected human or json".into()),
    }
}

/// mimalloc rather than glibc's malloc: the request path allocates many small buffers
/// (protobuf, h2, TLS records) across threads, where glibc's allocator cost about a tenth of
/// the node's CPU under `bkv bench` (docs/benchmarks-history.md §3).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let flags = FlagOverrides {
        node_id: args.node_id,
        data_dir: args.data_dir,
        listen: ListenFlags {
            client: args.listen_client,
            peer: args.listen_peer,
            admin: args.listen_admin,
            http: args.listen_http,
        },
        log: LogFlags {
            format: args.log_format,
            level: args.log_level,
        },
    };
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let config = NodeConfig::load(args.config.as_deref(), env, &flags)?;
    bkv_node::logging::init(&config.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bkv-node")
        .build()
        .context("tokio runtime")?;
    let reset = args.reset_watermark;
    runtime.block_on(async move {
        let result = if reset {
            bkv_node::server::reset_watermark(&config).await
        } else {
            bkv_node::server::run(config, shutdown_signal()).await
        };
        if let Err(e) = &result {
            tracing::error!(error = format!("{e:#}"), "bkv-node failed");
        }
        result
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the node runs until killed.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
}
