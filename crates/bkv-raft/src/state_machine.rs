//! The replicated state machine on sled: [`SledStateMachine`] and its snapshot builder.
//!
//! The vault state lives in memory (behind a [`StateHandle`]); what is durable is the latest
//! snapshot, in tree `raft_snapshot` of the node's sled database, flushed before a snapshot
//! is reported built or installed. A restarted node loads that snapshot, and openraft then
//! re-applies the committed log above it.

use std::fmt;
use std::io::Cursor;
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
    EntryResponse, LogEntry, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
    command_position,
};

const SNAPSHOT_TREE: &str = "raft_snapshot";
const KEY_CURRENT: &[u8] = b"current";

/// The latest snapshot as kept on disk: openraft's metadata and the snapshot data.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    #[serde(with = "bkv_core::bytes")]
    data: Vec<u8>,
}

/// The state machine of a node: the vault state in memory, snapshots in sled.
pub struct SledStateMachine {
    db: sled::Db,
    tree: sled::Tree,
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
    /// Opens the state machine in `db`, restoring the latest snapshot if there is one.
    /// Applied records go to `audit`.
    pub fn open(db: &sled::Db, audit: Arc<dyn AuditSink>) -> Result<Self, StorageError> {
        let tree = db
            .open_tree(SNAPSHOT_TREE)
            .map_err(|e| read_snapshot_err(&e))?;
        let mut sm = Self {
            db: db.clone(),
            tree,
            shared: StateHandle::default(),
            audit,
            snapshot_seq: Arc::new(AtomicU64::new(0)),
        };
        if let Some(stored) = sm.load()? {
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

    fn load(&self) -> Result<Option<StoredSnapshot>, StorageError> {
        let Some(bytes) = self
            .tree
            .get(KEY_CURRENT)
            .map_err(|e| read_snapshot_err(&e))?
        else {
            return Ok(None);
        };
        let stored: StoredSnapshot = codec::decode(&bytes).map_err(|e| read_snapshot_err(&e))?;
        Ok(Some(stored))
    }
}

/// Writes `stored` as the current snapshot and flushes; gives it back, with the time the
/// flush took.
async fn persist(
    db: &sled::Db,
    tree: &sled::Tree,
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
    let tree = tree.clone();
    let stored = off_runtime(move || {
        let bytes = codec::encode(&stored)?;
        tree.insert(KEY_CURRENT, bytes)?;
        Ok::<_, PersistError>(stored)
    })
    .await
    .map_err(|e| err(&e))?
    .map_err(|e| err(&e))?;
    let flushing = Instant::now();
    db.flush_async().await.map_err(|e| err(&e))?;
    Ok((stored, flushing.elapsed()))
}

/// Why a snapshot could not be written.
#[derive(Debug, thiserror::Error)]
enum PersistError {
    #[error(transparent)]
    Codec(#[from] codec::CodecError),
    #[error(transparent)]
    Sled(#[from] sled::Error),
}

/// The blocking thread that ran snapshot work panicked or was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("snapshot work on a blocking thread did not finish: {0}")]
struct Blocking(String);

/// Runs CPU-heavy or blocking snapshot work on tokio's blocking pool, so that a snapshot of
/// a large state never holds a runtime thread (and the heartbeats and client calls queued
/// behind it) for seconds: at a million accounts that had cost elections (BENCHMARKS.md).
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
            db: self.db.clone(),
            tree: self.tree.clone(),
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
        persist(&self.db, &self.tree, stored).await?;
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
        Ok(self.load()?.map(snapshot_of))
    }
}

/// Builds a snapshot of the state machine as it stands, and makes it the current one.
pub struct SledSnapshotBuilder {
    db: sled::Db,
    tree: sled::Tree,
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
        // Applies wait for the state lock only while the state is encoded; the rest of the
        // work holds nothing. All of it runs off the async runtime.
        let started = Instant::now();
        let (data, last_applied, membership, locked) = off_runtime(move || {
            let (state, last_applied, membership, locked) = {
                let m = shared.read_machine();
                let encoded = m.state.encode();
                (
                    encoded,
                    m.last_applied,
                    m.membership.clone(),
                    started.elapsed(),
                )
            };
            encode_parts(&last_applied, &membership, &state)
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
        let (stored, flushed) = persist(&self.db, &self.tree, stored).await?;
        tracing::info!(
            index = stored.meta.last_log_id.map_or(0, |l| l.index),
            bytes = stored.data.len(),
            state_locked_ms = locked.as_millis() as u64,
            encoded_ms = encoded.as_millis() as u64,
            flush_ms = flushed.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "snapshot built and written"
        );
        Ok(snapshot_of(stored))
    }
}
