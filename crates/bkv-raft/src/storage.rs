//! Opening a node's Raft storage: one sled database under the node's data directory,
//! shared by the log store and the state machine.

use std::path::Path;
use std::sync::Arc;

use openraft::StorageIOError;

use crate::audit::AuditSink;
use crate::log_store::SledLogStore;
use crate::state_machine::SledStateMachine;
use crate::types::StorageError;

/// Name of the sled database directory inside the node's data directory.
pub const RAFT_DB_DIR: &str = "raft";

/// Name of the snapshot directory inside the node's data directory.
pub const SNAPSHOT_DIR: &str = "snapshot";

/// Opens (or creates) `<data_dir>/raft` with the log store, and the state machine with its
/// snapshots in `<data_dir>/snapshot`.
///
/// sled's flush is weaker than a full fsync of every write (sled issue 1452): a power loss
/// on a majority at once could lose an acknowledged write. The stores are kept behind
/// openraft's traits so that they can be replaced.
pub fn open_storage(
    data_dir: &Path,
    audit: Arc<dyn AuditSink>,
) -> Result<(SledLogStore, SledStateMachine), StorageError> {
    let db = crate::sled_gate::config(&data_dir.join(RAFT_DB_DIR))
        .open()
        .map_err(|e| StorageIOError::read(&e))?;
    let log = SledLogStore::open(&db)?;
    let sm = SledStateMachine::open(&db, &data_dir.join(SNAPSHOT_DIR), audit)?;
    Ok((log, sm))
}
