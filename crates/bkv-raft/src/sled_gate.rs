//! One process-wide gate between sled's flushes and its batches, and sled configured without
//! its background flusher: what keeps sled 0.34 from deadlocking.
//!
//! sled 0.34 keeps one concurrency-control lock for the whole process (every database in it):
//! an `apply_batch` takes it for writing, a flush takes it for reading and then waits for
//! its buffers to be written, which sled's I/O threads and its background flusher do, each
//! taking it for reading first. With a batch waiting for the write lock, new readers wait
//! behind it; a flush that already holds the read lock then waits forever for writes that
//! cannot start (seen on a node at 100 k accounts under load: its Raft appends, its share
//! ledger flushes and sled's flusher threads all parked; spacejam/sled issues 1301, 1412).
//! So here a batch waits until no flush is running and no flush starts while a batch is
//! applied, and sled's own periodic flusher is off ([`config`]): bkv flushes explicitly
//! before it acknowledges anything (appends, votes, ledgers), which stays the only
//! durability point.

use std::path::Path;
use std::sync::{PoisonError, RwLock};

/// Flushes hold it shared, batches exclusively.
static GATE: RwLock<()> = RwLock::new(());

/// The sled configuration of every database bkv opens at `path`: the background flusher off.
pub fn config(path: &Path) -> sled::Config {
    sled::Config::new().path(path).flush_every_ms(None)
}

/// `tree.apply_batch(batch)`, once no flush is running. Blocking (a batch is applied in
/// memory; a flush in progress is waited for).
pub fn apply_batch(tree: &sled::Tree, batch: sled::Batch) -> sled::Result<()> {
    let _exclusive = GATE.write().unwrap_or_else(PoisonError::into_inner);
    tree.apply_batch(batch)
}

/// Flushes `db` (every tree of it) to disk on the blocking pool, while no batch is applied;
/// returns the bytes written.
pub async fn flush(db: &sled::Db) -> sled::Result<usize> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || {
        let _shared = GATE.read().unwrap_or_else(PoisonError::into_inner);
        db.flush()
    })
    .await
    .map_err(|e| sled::Error::Io(std::io::Error::other(e.to_string())))?
}
