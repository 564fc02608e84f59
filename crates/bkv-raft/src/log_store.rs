//! The Raft log and vote on sled: [`SledLogStore`].
//!
//! Layout in the node's sled database: tree `raft_log` maps the big-endian log index to the
//! postcard-encoded entry; tree `raft_meta` holds the vote, the committed log id and the last
//! purged log id. sled's flush is the only durability point: an append is acknowledged (its
//! `LogFlushed` callback called) and a vote saved only after a flush returned ([`crate::sled_gate`]).

use std::fmt;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader, StorageIOError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::types::{LogEntry, LogId, StorageError, TypeConfig, Vote};

/// An error as a trait object.
type DynError = dyn std::error::Error + 'static;
/// Builds openraft's storage error for one subject and verb.
type ErrFn = fn(&DynError) -> StorageIOError<u64>;
/// A range of log keys.
type KeyRange = (Bound<[u8; 8]>, Bound<[u8; 8]>);

const LOG_TREE: &str = "raft_log";
const META_TREE: &str = "raft_meta";
const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

/// The Raft log storage of a node: log entries, vote, committed and last purged log ids in
/// one sled database shared with the state machine.
///
/// Cloning gives another handle on the same trees (used as openraft's log reader).
#[derive(Clone)]
pub struct SledLogStore {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
    committed: Arc<AtomicU64>,
    durable: Arc<Durable>,
    /// The first index above the purge point (0: nothing purged). Entries below it may
    /// still be on disk while a purge removes them in the background: never read them.
    first_kept: Arc<AtomicU64>,
}

/// What this node's disk holds for certain: updated only after a flush.
#[derive(Debug, Default)]
struct Durable {
    last_index: AtomicU64,
    vote_term: AtomicU64,
}

/// The flushed state of a node's log and vote: what a rollback of the data directory would
/// take back. Compared with the watermark the node keeps in its HSM token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DurableState {
    /// Highest log index on disk (entries, or the purge point when the log is empty).
    pub last_log_index: u64,
    /// Term of the vote on disk (0: never voted).
    pub vote_term: u64,
}

impl fmt::Debug for SledLogStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledLogStore")
            .field("entries", &self.log.len())
            .finish_non_exhaustive()
    }
}

impl SledLogStore {
    /// Opens (or creates) the log trees in `db`.
    pub fn open(db: &sled::Db) -> Result<Self, StorageError> {
        let log = db
            .open_tree(LOG_TREE)
            .map_err(|e| StorageIOError::read_logs(&e))?;
        let meta = db
            .open_tree(META_TREE)
            .map_err(|e| StorageIOError::read_logs(&e))?;
        let store = Self {
            db: db.clone(),
            log,
            meta,
            committed: Arc::default(),
            durable: Arc::default(),
            first_kept: Arc::default(),
        };
        let purged = store.last_purged()?;
        let first_kept = purged.map_or(0, |l| l.index + 1);
        store.first_kept.store(first_kept, Ordering::Relaxed);
        // Finish a purge that a stop or crash interrupted.
        store.remove_range((Bound::Unbounded, Bound::Excluded(key(first_kept))))?;
        let committed = store
            .read_meta::<Option<LogId>>(KEY_COMMITTED, read_logs_err)?
            .flatten();
        store
            .committed
            .store(committed.map(|l| l.index).unwrap_or(0), Ordering::Relaxed);
        // What sled recovered at open is on disk.
        let last = match store
            .log
            .last()
            .map_err(|e| StorageIOError::read_logs(&e))?
        {
            Some((k, v)) => decode_entry(&k, &v)?.log_id.index,
            None => purged.map(|l| l.index).unwrap_or(0),
        };
        let vote = store.read_meta::<Vote>(KEY_VOTE, read_vote_err)?;
        store.durable.last_index.store(last, Ordering::Relaxed);
        store.durable.vote_term.store(
            vote.map(|v| v.leader_id().term).unwrap_or(0),
            Ordering::Relaxed,
        );
        Ok(store)
    }

    /// The flushed state of the log and vote.
    pub fn durable_state(&self) -> DurableState {
        DurableState {
            last_log_index: self.durable.last_index.load(Ordering::Relaxed),
            vote_term: self.durable.vote_term.load(Ordering::Relaxed),
        }
    }

    /// A function that reads [`Self::durable_state`] later (shared with clones).
    pub fn durable_reader(&self) -> impl Fn() -> DurableState + Send + Sync + 'static {
        let durable = self.durable.clone();
        move || DurableState {
            last_log_index: durable.last_index.load(Ordering::Relaxed),
            vote_term: durable.vote_term.load(Ordering::Relaxed),
        }
    }

    /// The last committed index this node knows of, shared with every clone (openraft 0.9's
    /// metrics do not report it).
    pub fn committed_index(&self) -> Arc<AtomicU64> {
        self.committed.clone()
    }

    async fn flush(&self) -> Result<(), sled::Error> {
        #[cfg(feature = "failpoints")]
        bkv_failpoints::hit("log_flush")
            .await
            .map_err(sled::Error::Io)?;
        crate::sled_gate::flush(&self.db).await.map(|_| ())
    }

    fn read_meta<T: DeserializeOwned>(
        &self,
        key: &[u8],
        err: ErrFn,
    ) -> Result<Option<T>, StorageError> {
        let Some(bytes) = self.meta.get(key).map_err(|e| err(&e))? else {
            return Ok(None);
        };
        let v = codec::decode::<T>(&bytes).map_err(|e| err(&e))?;
        Ok(Some(v))
    }

    fn write_meta<T: Serialize>(
        &self,
        key: &[u8],
        value: &T,
        err: ErrFn,
    ) -> Result<(), StorageError> {
        let bytes = codec::encode(value).map_err(|e| err(&e))?;
        self.meta.insert(key, bytes).map_err(|e| err(&e))?;
        Ok(())
    }

    fn last_purged(&self) -> Result<Option<LogId>, StorageError> {
        Ok(self
            .read_meta::<Option<LogId>>(KEY_LAST_PURGED, read_logs_err)?
            .flatten())
    }

    /// Removes every entry whose index is in `range`, as one batch.
    fn remove_range(&self, range: KeyRange) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for kv in self.log.range(range) {
            let (k, _) = kv.map_err(|e| StorageIOError::write_logs(&e))?;
            batch.remove(k);
        }
        crate::sled_gate::apply_batch(&self.log, batch)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    /// Removes the entries at or below `upto`, a few hundred per batch, so that appends
    /// are not held up behind one large batch. Blocking.
    fn remove_purged(&self, upto: u64) -> Result<(), sled::Error> {
        const PER_BATCH: usize = 256;
        loop {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for kv in self.log.range(..=key(upto)).take(PER_BATCH) {
                let (k, _) = kv?;
                batch.remove(k);
                n += 1;
            }
            if n == 0 {
                return Ok(());
            }
            crate::sled_gate::apply_batch(&self.log, batch)?;
        }
    }
}

fn read_logs_err(e: &DynError) -> StorageIOError<u64> {
    StorageIOError::read_logs(openraft::AnyError::from_dyn(e, None))
}

fn write_logs_err(e: &DynError) -> StorageIOError<u64> {
    StorageIOError::write_logs(openraft::AnyError::from_dyn(e, None))
}

fn read_vote_err(e: &DynError) -> StorageIOError<u64> {
    StorageIOError::read_vote(openraft::AnyError::from_dyn(e, None))
}

fn write_vote_err(e: &DynError) -> StorageIOError<u64> {
    StorageIOError::write_vote(openraft::AnyError::from_dyn(e, None))
}

fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The key range of a range of log indexes.
fn key_range<RB: RangeBounds<u64>>(range: &RB) -> Option<KeyRange> {
    let start = match range.start_bound() {
        Bound::Included(s) => Bound::Included(key(*s)),
        Bound::Excluded(s) => Bound::Included(key(s.checked_add(1)?)),
        Bound::Unbounded => Bound::Unbounded,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => Bound::Included(key(*e)),
        Bound::Excluded(e) => Bound::Excluded(key(*e)),
        Bound::Unbounded => Bound::Unbounded,
    };
    Some((start, end))
}

fn decode_entry(k: &[u8], v: &[u8]) -> Result<LogEntry, StorageError> {
    let index = <[u8; 8]>::try_from(k)
        .map(u64::from_be_bytes)
        .map_err(|_| read_logs_err(&BadKey))?;
    let entry: LogEntry =
        codec::decode(v).map_err(|e| StorageIOError::read_log_at_index(index, &e))?;
    if entry.log_id.index != index {
        return Err(StorageIOError::read_log_at_index(index, &BadKey).into());
    }
    Ok(entry)
}

/// A log key that is not 8 bytes, or that disagrees with its entry's index.
#[derive(Debug, thiserror::Error)]
#[error("log key does not match its entry")]
struct BadKey;

impl RaftLogReader<TypeConfig> for SledLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<LogEntry>, StorageError> {
        let Some(keys) = key_range(&range) else {
            return Ok(Vec::new());
        };
        let first_kept = key(self.first_kept.load(Ordering::Relaxed));
        let mut out = Vec::new();
        for kv in self.log.range(keys) {
            let (k, v) = kv.map_err(|e| StorageIOError::read_logs(&e))?;
            if k.as_ref() < first_kept.as_slice() {
                continue; // purged, not yet removed
            }
            out.push(decode_entry(&k, &v)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for SledLogStore {
    type LogReader = SledLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id = self.last_purged()?;
        let last = match self.log.last().map_err(|e| StorageIOError::read_logs(&e))? {
            // Only purged entries left, not yet removed: the purge point is the last.
            Some((k, _))
                if k.as_ref() < key(self.first_kept.load(Ordering::Relaxed)).as_slice() =>
            {
                None
            }
            Some((k, v)) => Some(decode_entry(&k, &v)?.log_id),
            None => None,
        };
        Ok(LogState {
            last_log_id: last.or(last_purged_log_id),
            last_purged_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        #[cfg(feature = "failpoints")]
        bkv_failpoints::hit("vote_save")
            .await
            .map_err(|e| StorageIOError::write_vote(&e))?;
        self.write_meta(KEY_VOTE, vote, write_vote_err)?;
        self.flush()
            .await
            .map_err(|e| StorageIOError::write_vote(&e))?;
        self.durable
            .vote_term
            .store(vote.leader_id().term, Ordering::Relaxed);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_meta(KEY_VOTE, read_vote_err)
    }

    /// Records the committed log id so that a restarted node re-applies up to it. Not
    /// flushed on its own: it only saves work after a restart (the leader re-sends the
    /// commit index anyway), and sled writes it out with the next flush.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.committed
            .store(committed.map(|l| l.index).unwrap_or(0), Ordering::Relaxed);
        self.write_meta(KEY_COMMITTED, &committed, write_logs_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self
            .read_meta::<Option<LogId>>(KEY_COMMITTED, read_logs_err)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = LogEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        #[cfg(feature = "failpoints")]
        bkv_failpoints::hit("log_append")
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        let mut batch = sled::Batch::default();
        let mut last = None;
        for entry in entries {
            let bytes = codec::encode(&entry)
                .map_err(|e| StorageIOError::write_log_entry(entry.log_id, &e))?;
            batch.insert(&key(entry.log_id.index), bytes);
            last = Some(entry.log_id.index);
        }
        crate::sled_gate::apply_batch(&self.log, batch)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        // Acknowledge only what is on disk.
        match self.flush().await {
            Ok(()) => {
                if let Some(last) = last {
                    self.durable.last_index.store(last, Ordering::Relaxed);
                }
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(&e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.remove_range((Bound::Included(key(log_id.index)), Bound::Unbounded))?;
        self.flush()
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.durable
            .last_index
            .store(log_id.index.saturating_sub(1), Ordering::Relaxed);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // The purge point, flushed, is what purges: entries at or below it are never read
        // again (and a reopened store removes any that are left).
        self.write_meta(KEY_LAST_PURGED, &Some(log_id), write_logs_err)?;
        self.flush()
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.first_kept
            .fetch_max(log_id.index + 1, Ordering::Relaxed);
        // Purged up to a snapshot past the last entry: the purge point is what is on disk.
        self.durable
            .last_index
            .fetch_max(log_id.index, Ordering::Relaxed);
        // Removing the entries is garbage collection: in the background, in small batches.
        // openraft awaits a purge in its core; removing the ~19,000 entries of a snapshot
        // interval in one batch here stopped appends, commits and heartbeats for about half
        // a second (docs/benchmarks-history.md §4).
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.remove_purged(log_id.index) {
                tracing::warn!(error = %e, "removing purged log entries (retried at the next open)");
            }
        });
        Ok(())
    }
}
