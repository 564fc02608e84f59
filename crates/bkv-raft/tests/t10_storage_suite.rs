//! openraft's storage test suite on the sled log store and state machine, each store in a
//! fresh temp dir.

use std::sync::Arc;

use bkv_raft::storage::open_storage;
use bkv_raft::types::StorageError;
use bkv_raft::{DiscardAudit, SledLogStore, SledStateMachine, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use tempfile::TempDir;

struct SledBuilder;

impl StoreBuilder<TypeConfig, SledLogStore, SledStateMachine, TempDir> for SledBuilder {
    async fn build(&self) -> Result<(TempDir, SledLogStore, SledStateMachine), StorageError> {
        let dir = TempDir::new().map_err(|e| openraft::StorageIOError::write(&e))?;
        let (log, sm) = open_storage(dir.path(), Arc::new(DiscardAudit))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() -> Result<(), StorageError> {
    Suite::test_all(SledBuilder)
}
