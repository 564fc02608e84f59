//! [`RaftNode`]: a node's Raft, opened from its data directory, with the handles the node
//! needs: the gRPC service, the write path, the applied state and the metrics.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bkv_proto::v1::raft_server::RaftServer;
use openraft::error::{Fatal, InitializeError, RaftError};
use openraft::{ConfigError, SnapshotPolicy};
use tokio::sync::{oneshot, watch};

use crate::audit::AuditSink;
use crate::config::raft_config;
use crate::log_store::DurableState;
use crate::network::GrpcNetworkFactory;
use crate::peers::{PeerChannels, PeerOptions};
use crate::service::RaftService;
use crate::snapshot_schedule;
use crate::state_handle::StateHandle;
use crate::state_machine::SnapshotOnDisk;
use crate::storage::open_storage;
use crate::types::{BkvNode, BkvRaft, NodeId, RaftMetrics, StorageError};
use crate::write::{BatchOptions, Batcher, LeaderHint, Writer};

/// What a node's Raft is opened with.
pub struct NodeOptions {
    /// This node's id.
    pub id: NodeId,
    /// The node's data directory; Raft keeps its sled database in `<data_dir>/raft`.
    pub data_dir: PathBuf,
    /// The Raft configuration (start from [`raft_config`]).
    pub config: openraft::Config,
    /// How to reach peers (TLS, timeouts).
    pub peers: PeerOptions,
    /// Where applied audit records go.
    pub audit: Arc<dyn AuditSink>,
    /// How long [`Writer::write`] keeps trying, across leader changes.
    pub write_deadline: Duration,
    /// How long the leader waits for a forwarded write to commit.
    pub forward_timeout: Duration,
    /// How the leader groups commands into log entries.
    pub batch: BatchOptions,
    /// The least the data directory must hold (the watermark kept outside it, in the HSM):
    /// a disk with less was rolled back or wiped, and the node refuses to start rather than
    /// vote or serve on it.
    pub at_least: Option<DurableState>,
}

impl fmt::Debug for NodeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeOptions")
            .field("id", &self.id)
            .field("data_dir", &self.data_dir)
            .field("peers", &self.peers)
            .field("write_deadline", &self.write_deadline)
            .finish_non_exhaustive()
    }
}

impl NodeOptions {
    /// Options with bkv's defaults: [`raft_config`], plaintext peers, a 5 s write deadline
    /// and a 4 s forward timeout.
    pub fn new(id: NodeId, data_dir: impl Into<PathBuf>, audit: Arc<dyn AuditSink>) -> Self {
        Self {
            id,
            data_dir: data_dir.into(),
            config: raft_config(),
            peers: PeerOptions::default(),
            audit,
            write_deadline: Duration::from_secs(5),
            forward_timeout: Duration::from_secs(4),
            batch: BatchOptions::default(),
            at_least: None,
        }
    }
}

/// Why a node's Raft could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The Raft configuration is inconsistent.
    #[error("raft config: {0}")]
    Config(#[from] ConfigError),
    /// The sled database could not be opened or read.
    #[error("raft storage: {0}")]
    Storage(#[from] StorageError),
    /// openraft refused to start.
    #[error("raft: {0}")]
    Raft(#[from] Fatal<NodeId>),
    /// The data directory holds less than it once durably held: it was rolled back or wiped.
    #[error(
        "the data directory was rolled back or wiped: it holds log index {found_index} and vote \
         term {found_term}, but this node had durably reached log index {expected_index} and \
         vote term {expected_term}"
    )]
    RolledBack {
        /// Last log index on disk now.
        found_index: u64,
        /// Vote term on disk now.
        found_term: u64,
        /// What the watermark says the node had reached.
        expected_index: u64,
        /// What the watermark says the node had voted in.
        expected_term: u64,
    },
}

/// Why initialising a cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// openraft refused (for example: this node already has log entries).
    #[error("initialise: {0}")]
    Refused(#[from] RaftError<NodeId, InitializeError<NodeId, BkvNode>>),
    /// The Raft stopped.
    #[error("raft: {0}")]
    Fatal(#[from] Fatal<NodeId>),
}

/// A node's running Raft and its handles.
pub struct RaftNode {
    id: NodeId,
    /// Group commit of local and forwarded writes (one per node, so both kinds share
    /// entries).
    batcher: Batcher,
    committed: Arc<AtomicU64>,
    durable: Arc<dyn Fn() -> DurableState + Send + Sync>,
    snapshot: Arc<dyn Fn() -> SnapshotOnDisk + Send + Sync>,
    raft: BkvRaft,
    state: StateHandle,
    peers: PeerChannels,
    write_deadline: Duration,
    forward_timeout: Duration,
    /// Dropped with the node: stops its snapshot schedule (which holds a handle on the Raft).
    _schedule: Option<oneshot::Sender<()>>,
}

impl fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaftNode")
            .field("id", &self.id)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl RaftNode {
    /// Opens the node's storage and starts its Raft. A restarted node restores its latest
    /// snapshot and re-applies its committed log.
    pub async fn open(options: NodeOptions) -> Result<Self, OpenError> {
        // openraft's `LogsSinceLast` snapshots every node at the same index; the schedule
        // spreads them (crate::snapshot_schedule).
        let mut config = options.config;
        let every = match config.snapshot_policy {
            SnapshotPolicy::LogsSinceLast(n) => {
                config.snapshot_policy = SnapshotPolicy::Never;
                Some(n)
            }
            SnapshotPolicy::Never => None,
        };
        let config = Arc::new(config.validate()?);
        let (log, sm) = open_storage(&options.data_dir, options.audit)?;
        let found = log.durable_state();
        if let Some(expected) = options.at_least
            && (found.last_log_index < expected.last_log_index
                || found.vote_term < expected.vote_term)
        {
            return Err(OpenError::RolledBack {
                found_index: found.last_log_index,
                found_term: found.vote_term,
                expected_index: expected.last_log_index,
                expected_term: expected.vote_term,
            });
        }
        let durable = Arc::new(log.durable_reader()) as Arc<dyn Fn() -> DurableState + Send + Sync>;
        let state = sm.handle();
        let snapshot =
            Arc::new(sm.snapshot_reader()) as Arc<dyn Fn() -> SnapshotOnDisk + Send + Sync>;
        let committed = log.committed_index();
        let peers = PeerChannels::new(options.peers);
        let network = GrpcNetworkFactory::new(options.id, peers.clone());
        let raft = BkvRaft::new(options.id, config, network, log, sm).await?;
        let schedule = every.map(|every| {
            let (stop, stopped) = oneshot::channel();
            tokio::spawn(snapshot_schedule::run(
                raft.clone(),
                options.id,
                every,
                stopped,
            ));
            stop
        });
        Ok(Self {
            id: options.id,
            batcher: Batcher::start(raft.clone(), options.batch),
            committed,
            durable,
            snapshot,
            raft,
            state,
            peers,
            write_deadline: options.write_deadline,
            forward_timeout: options.forward_timeout,
            _schedule: schedule,
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The openraft instance (membership changes, leadership transfer, ...).
    pub fn raft(&self) -> &BkvRaft {
        &self.raft
    }

    /// The last committed log index this node knows of (0 before any).
    pub fn committed_index(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    /// The flushed state of this node's log and vote.
    pub fn durable_state(&self) -> DurableState {
        (self.durable)()
    }

    /// What may be recorded as this node's watermark now: the committed index as far as it
    /// is on this node's disk (committed entries are never truncated, so a later disk with
    /// less was rolled back), and the durable vote term.
    pub fn watermark(&self) -> DurableState {
        let durable = self.durable_state();
        DurableState {
            last_log_index: durable.last_log_index.min(self.committed_index()),
            vote_term: durable.vote_term,
        }
    }

    /// Read access to the applied state.
    pub fn state(&self) -> &StateHandle {
        &self.state
    }

    /// The channels to peers (also used to forward writes).
    pub fn peers(&self) -> &PeerChannels {
        &self.peers
    }

    /// The write path for client writes.
    pub fn writer(&self) -> Writer {
        Writer::new(
            self.id,
            self.raft.clone(),
            self.batcher.clone(),
            self.peers.clone(),
            self.write_deadline,
        )
    }

    /// The `bkv.v1.Raft` gRPC service, to serve on the node's peer listener.
    pub fn service(&self) -> RaftServer<RaftService> {
        RaftService::new(
            self.raft.clone(),
            self.batcher.clone(),
            self.forward_timeout,
        )
        .into_server()
    }

    /// Raft metrics (state, leader, log and applied indexes, membership, replication).
    pub fn metrics(&self) -> watch::Receiver<RaftMetrics> {
        self.raft.metrics()
    }

    /// Who leads, as far as this node knows.
    pub fn leader(&self) -> LeaderHint {
        LeaderHint::of(&self.raft)
    }

    /// Initialises a one-node cluster of this node at `me`. Returns `false` if this node
    /// was initialised before (nothing is done then).
    pub async fn initialize_single(&self, me: BkvNode) -> Result<bool, InitError> {
        if self.raft.is_initialized().await? {
            return Ok(false);
        }
        self.raft
            .initialize(BTreeMap::from([(self.id, me)]))
            .await?;
        Ok(true)
    }

    /// The snapshot on this node's disk (which one, and its size), without reading it.
    pub fn snapshot_on_disk(&self) -> SnapshotOnDisk {
        (self.snapshot)()
    }

    /// Asks Raft to build a snapshot now (it then purges the log per its configuration).
    pub async fn trigger_snapshot(&self) -> Result<(), Fatal<NodeId>> {
        self.raft.trigger().snapshot().await
    }

    /// Stops the Raft. The sled database closes when the last handle on it is dropped.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft core did not stop cleanly");
        }
    }
}
