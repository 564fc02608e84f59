//! The replicated state machine: [`SledStateMachine`] and its snapshot builder.
//!
//! The vault state lives in memory (behind a [`StateHandle`]); what is durable is the latest
//! snapshot, in file `current.snap` of the snapshot directory, written to a temporary file,
//! synced and renamed before a snapshot is reported built or installed. A restarted node
//! loads that snapshot, and openraft then re-applies the committed log above it.
//!
//! The snapshot is a file rather than a value in the sled database that holds the Raft log:
//! at a million accounts it is 370 MB, and writing it through sled held up the log's
//! appends (and so the heartbeats' answers) long enough to cost elections. Builds before
//! this kept it in sled tree `raft_snapshot`; such a snapshot is still read, and dropped
//! once a file replaces it.

use std::fmt;
use std::fs;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use openraft::storage::RaftStateMachine;
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder, StorageIOError,
};
use serde::{Deserialize, Serialize};

use crate::audit::{AuditEntry, AuditRecord, AuditSink};
use crate::codec;
use crate::snapshot::{SnapshotImage, encode_parts};
use crate::state_handle::{Machine, StateHandle};
use crate::types::{
    EntryResponse, LogEntry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership,
    TypeConfig, command_position,
};

const SNAPSHOT_TREE: &str = "raft_snapshot";
const KEY_CURRENT: &[u8] = b"current";
const SNAPSHOT_FILE: &str = "current.snap";
const SNAPSHOT_TMP: &str = "current.snap.tmp";

/// The latest snapshot as kept on disk: openraft's metadata and the snapshot data.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    #[serde(with = "bkv_core::bytes")]
    data: Vec<u8>,
}

/// The state machine of a node: the vault state in memory, snapshots in a file.
pub struct SledStateMachine {
    store: SnapshotStore,
    shared: StateHandle,
    audit: Arc<dyn AuditSink>,
    snapshot_seq: Arc<AtomicU64>,
}

impl fmt::Debug for SledStateMachine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStateMachine")
            .field("state", &self.shared)
            .finish_non_exhaustive()
    }
}

fn read_snapshot_err(e: &(dyn std::error::Error + 'static)) -> StorageError {
    StorageIOError::read_snapshot(None, openraft::AnyError::from_dyn(e, None)).into()
}

fn write_snapshot_err(e: &(dyn std::error::Error + 'static)) -> StorageError {
    StorageIOError::write_snapshot(None, openraft::AnyError::from_dyn(e, None)).into()
}

/// Snapshot data that disagrees with its metadata.
#[derive(Debug, thiserror::Error)]
#[error("snapshot data disagrees with its metadata (last applied or membership)")]
struct MetaMismatch;

/// The state machine lock was poisoned by a panic in an earlier apply.
#[derive(Debug, thiserror::Error)]
#[error("state machine lock poisoned by an earlier panic")]
struct Poisoned;

impl SledStateMachine {
    /// Opens the state machine with snapshots in directory `dir` (created if missing),
    /// restoring the latest snapshot if there is one (or one an earlier build left in `db`).
    /// Applied records go to `audit`.
    pub fn open(
        db: &sled::Db,
        dir: &Path,
        audit: Arc<dyn AuditSink>,
    ) -> Result<Self, StorageError> {
        let legacy = db
            .open_tree(SNAPSHOT_TREE)
            .map_err(|e| read_snapshot_err(&e))?;
        fs::create_dir_all(dir).map_err(|e| read_snapshot_err(&e))?;
        let mut sm = Self {
            store: SnapshotStore {
                dir: dir.to_path_buf(),
                legacy,
                written: Arc::default(),
            },
            shared: StateHandle::default(),
            audit,
            snapshot_seq: Arc::new(AtomicU64::new(0)),
        };
        if let Some(stored) = sm.store.load()? {
            *sm.store.lock_written() = SnapshotOnDisk::of(&stored);
            let image = SnapshotImage::decode(&stored.data).map_err(|e| read_snapshot_err(&e))?;
            sm.shared = StateHandle::new(Machine {
                state: image.state,
                last_applied: image.last_applied,
                membership: image.membership,
            });
        }
        Ok(sm)
    }

    /// A handle on the applied state, for the node's reads.
    pub fn handle(&self) -> StateHandle {
        self.shared.clone()
    }

    /// A function that tells which snapshot is on disk now (shared with clones), without
    /// reading it: `RaftStateMachine::get_current_snapshot` loads the whole file, hundreds
    /// of MB at a million accounts, on the task that applies entries.
    pub fn snapshot_reader(&self) -> impl Fn() -> SnapshotOnDisk + Send + Sync + 'static {
        let store = self.store.clone();
        move || store.lock_written().clone()
    }
}

/// The snapshot a node has on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotOnDisk {
    /// Its last log id (`None`: no snapshot yet).
    pub last_log_id: Option<LogId>,
    /// The size of its data (the encoded state machine), in bytes.
    pub bytes: u64,
}

impl SnapshotOnDisk {
    fn of(stored: &StoredSnapshot) -> Self {
        Self {
            last_log_id: stored.meta.last_log_id,
            bytes: stored.data.len() as u64,
        }
    }
}

/// Where the current snapshot is kept: a file in `dir`; `legacy` is the sled tree where
/// earlier builds kept it.
#[derive(Clone)]
struct SnapshotStore {
    dir: PathBuf,
    legacy: sled::Tree,
    /// The snapshot on disk. openraft builds a snapshot in a task of its own, so a build and
    /// an installed snapshot can be written at the same time: writes take this lock, and an
    /// older snapshot never replaces a newer one.
    written: Arc<std::sync::Mutex<SnapshotOnDisk>>,
}

impl SnapshotStore {
    fn load(&self) -> Result<Option<StoredSnapshot>, StorageError> {
        let bytes = match fs::read(self.dir.join(SNAPSHOT_FILE)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match self
                    .legacy
                    .get(KEY_CURRENT)
                    .map_err(|e| read_snapshot_err(&e))?
                {
                    Some(bytes) => bytes.to_vec(),
                    None => return Ok(None),
                }
            }
            Err(e) => return Err(read_snapshot_err(&e)),
        };
        let stored: StoredSnapshot = codec::decode(&bytes).map_err(|e| read_snapshot_err(&e))?;
        Ok(Some(stored))
    }

    fn lock_written(&self) -> std::sync::MutexGuard<'_, SnapshotOnDisk> {
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes `stored` as the current snapshot unless the one on disk is newer: a temporary
    /// file, synced as it is written (every [`SYNC_EVERY_BYTES`]), renamed over the current
    /// one, and the directory synced; then drops a legacy copy. Blocking.
    fn write(&self, stored: &StoredSnapshot) -> Result<(), PersistError> {
        let mut written = self.lock_written();
        // `None` (nothing written yet) is below every log id.
        if stored.meta.last_log_id < written.last_log_id {
            return Ok(());
        }
        let bytes = codec::encode(stored)?;
        let tmp = self.dir.join(SNAPSHOT_TMP);
        let mut file = fs::File::create(&tmp)?;
        for piece in bytes.chunks(SYNC_EVERY_BYTES) {
            let started = Instant::now();
            file.write_all(piece)?;
            file.sync_data()?;
            // Leave the disk to the Raft log as long as the piece took (at most 100 ms).
            std::thread::sleep(started.elapsed().min(Duration::from_millis(100)));
        }
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, self.dir.join(SNAPSHOT_FILE))?;
        fs::File::open(&self.dir)?.sync_all()?;
        // Stale now that the file is durable; if this removal is lost, the file still wins.
        self.legacy.remove(KEY_CURRENT)?;
        *written = SnapshotOnDisk::of(stored);
        Ok(())
    }
}

/// Bytes of a snapshot file written between two syncs. One sync at the end of a whole
/// snapshot (78 MB at 200 k accounts) made every flush of the Raft log on the same disk
/// wait for all of it: 380 to 400 ms without a commit, cluster-wide, while the nodes wrote
/// their snapshots (docs/benchmarks-history.md §4). Syncing piece by piece bounds that wait
/// to one piece, and after each piece the writer pauses as long as the piece took: a
/// follower writing a 370 MB snapshot without pauses answered the leader's appends so late
/// (44 replication timeouts in a minute) that it called an election when done.
const SYNC_EVERY_BYTES: usize = 8 << 20;

/// Writes `stored` as the current snapshot (durably) and gives it back, with the time the
/// write took.
async fn persist(
    store: &SnapshotStore,
    stored: StoredSnapshot,
) -> Result<(StoredSnapshot, Duration), StorageError> {
    let sig = Some(stored.meta.signature());
    let err = |e: &(dyn std::error::Error + 'static)| -> StorageError {
        StorageIOError::new(
            ErrorSubject::Snapshot(sig.clone()),
            ErrorVerb::Write,
            openraft::AnyError::from_dyn(e, None),
        )
        .into()
    };
    #[cfg(feature = "failpoints")]
    bkv_failpoints::hit("snapshot_persist")
        .await
        .map_err(|e| err(&e))?;
    // Encoding and writing hundreds of MB (a million accounts) is blocking work.
    let store = store.clone();
    let started = Instant::now();
    let stored = off_runtime(move || {
        store.write(&stored)?;
        Ok::<_, PersistError>(stored)
    })
    .await
    .map_err(|e| err(&e))?
    .map_err(|e| err(&e))?;
    Ok((stored, started.elapsed()))
}

/// Why a snapshot could not be written.
#[derive(Debug, thiserror::Error)]
enum PersistError {
    #[error(transparent)]
    Codec(#[from] codec::CodecError),
    #[error(transparent)]
    Sled(#[from] sled::Error),
    #[error("snapshot file: {0}")]
    File(#[from] std::io::Error),
}

/// The blocking thread that ran snapshot work panicked or was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("snapshot work on a blocking thread did not finish: {0}")]
struct Blocking(String);

/// Runs CPU-heavy or blocking snapshot work on tokio's blocking pool, so that a snapshot of
/// a large state never holds a runtime thread (and the heartbeats and client calls queued
/// behind it) for seconds: at a million accounts that had cost elections
/// (docs/benchmarks-history.md §4).
async fn off_runtime<T, F>(f: F) -> Result<T, Blocking>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Blocking(e.to_string()))
}

fn snapshot_of(stored: StoredSnapshot) -> Snapshot {
    Snapshot {
        meta: stored.meta,
        snapshot: Box::new(Cursor::new(stored.data)),
    }
}

fn membership_record(log_index: u64, membership: &StoredMembership) -> AuditRecord {
    let m = membership.membership();
    AuditRecord {
        log_index,
        at_unix_ms: None,
        entry: AuditEntry::Membership {
            voters: m.voter_ids().collect(),
            learners: m.learner_ids().collect(),
        },
    }
}

impl RaftStateMachine<TypeConfig> for SledStateMachine {
    type SnapshotBuilder = SledSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<crate::types::LogId>, StoredMembership), StorageError> {
        let m = self.shared.read_machine();
        Ok((m.last_applied, m.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<EntryResponse>, StorageError>
    where
        I: IntoIterator<Item = LogEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        #[cfg(feature = "failpoints")]
        bkv_failpoints::hit("sm_apply")
            .await
            .map_err(|e| StorageIOError::write_state_machine(&e))?;
        let mut responses = Vec::new();
        let mut records = Vec::new();
        {
            let Some(mut m) = self.shared.write_machine().await else {
                return Err(StorageIOError::write_state_machine(&Poisoned).into());
            };
            for entry in entries {
                let log_id = entry.log_id;
                m.last_applied = Some(log_id);
                match entry.payload {
                    EntryPayload::Blank => responses.push(EntryResponse::default()),
                    EntryPayload::Normal(proposal) => {
                        let mut outcomes = Vec::with_capacity(proposal.requests.len());
                        for (i, request) in proposal.requests.iter().enumerate() {
                            let position = command_position(log_id.index, i);
                            let applied = m.state.apply(position, request);
                            records.extend(applied.events.into_iter().map(|event| AuditRecord {
                                log_index: log_id.index,
                                at_unix_ms: Some(request.at_unix_ms),
                                entry: AuditEntry::Vault(event),
                            }));
                            outcomes.push(applied.outcome);
                        }
                        responses.push(EntryResponse { outcomes });
                    }
                    EntryPayload::Membership(membership) => {
                        m.membership = StoredMembership::new(Some(log_id), membership);
                        records.push(membership_record(log_id.index, &m.membership));
                        responses.push(EntryResponse::default());
                    }
                }
            }
        }
        for r in records {
            self.audit.record(r);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SledSnapshotBuilder {
            store: self.store.clone(),
            shared: self.shared.clone(),
            snapshot_seq: self.snapshot_seq.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let sig = Some(meta.signature());
        let read_err = |e: &(dyn std::error::Error + 'static)| -> StorageError {
            StorageIOError::read_snapshot(sig.clone(), openraft::AnyError::from_dyn(e, None)).into()
        };
        let data = snapshot.into_inner();
        // Decoding builds the whole state (seconds at a million accounts): off the runtime.
        let (image, data) = off_runtime(move || (SnapshotImage::decode(&data), data))
            .await
            .map_err(|e| read_err(&e))?;
        let image = image.map_err(|e| read_err(&e))?;
        if image.last_applied != meta.last_log_id || image.membership != meta.last_membership {
            return Err(read_err(&MetaMismatch));
        }
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        persist(&self.store, stored).await?;
        {
            let Some(mut m) = self.shared.write_machine().await else {
                return Err(StorageIOError::write_state_machine(&Poisoned).into());
            };
            *m = Machine {
                state: image.state,
                last_applied: image.last_applied,
                membership: image.membership,
            };
        }
        self.audit.record(AuditRecord {
            log_index: meta.last_log_id.map_or(0, |l| l.index),
            at_unix_ms: None,
            entry: AuditEntry::SnapshotInstalled,
        });
        if let Some(l) = meta.last_log_id {
            self.audit
                .record(membership_record(l.index, &meta.last_membership));
        }
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        // Reading and decoding the file is blocking work like writing it (hundreds of MB).
        let store = self.store.clone();
        let stored = off_runtime(move || store.load())
            .await
            .map_err(|e| read_snapshot_err(&e))??;
        Ok(stored.map(snapshot_of))
    }
}

/// Builds a snapshot of the state machine as it stands, and makes it the current one.
pub struct SledSnapshotBuilder {
    store: SnapshotStore,
    shared: StateHandle,
    snapshot_seq: Arc<AtomicU64>,
}

impl fmt::Debug for SledSnapshotBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledSnapshotBuilder")
            .finish_non_exhaustive()
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SledSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let shared = self.shared.clone();
        // The state lock is held only to clone the state, which shares its chunks of
        // accounts (microseconds, even at a million accounts); the clone is encoded with the
        // lock released while applies go on. All of it runs off the async runtime.
        let started = Instant::now();
        let (data, last_applied, membership, locked) = off_runtime(move || {
            let (state, last_applied, membership, locked) = {
                let m = shared.read_machine();
                (
                    m.state.clone(),
                    m.last_applied,
                    m.membership.clone(),
                    started.elapsed(),
                )
            };
            encode_parts(&last_applied, &membership, &state.encode())
                .map(|d| (d, last_applied, membership, locked))
        })
        .await
        .map_err(|e| write_snapshot_err(&e))?
        .map_err(|e| write_snapshot_err(&e))?;
        let encoded = started.elapsed();
        let seq = self.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match &last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, seq),
            None => format!("none-{seq}"),
        };
        let stored = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: last_applied,
                last_membership: membership,
                snapshot_id,
            },
            data,
        };
        let (stored, written) = persist(&self.store, stored).await?;
        tracing::info!(
            index = stored.meta.last_log_id.map_or(0, |l| l.index),
            bytes = stored.data.len(),
            state_locked_ms = locked.as_millis() as u64,
            encoded_ms = encoded.as_millis() as u64,
            written_ms = written.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "snapshot built and written"
        );
        Ok(snapshot_of(stored))
    }
}
