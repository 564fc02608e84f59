//! [`SledLedgers`]: a node's share ledgers on its own disk, in a sled database of their own
//! (`<data_dir>/shares`), outside the replicated state: nothing in it is replicated, and a
//! forged snapshot from a leader cannot roll it back.
//!
//! Flushes are grouped: every evaluation writes its ledger and waits for a flush that began
//! after its write; concurrent evaluations share one flush.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bkv_core::ledger::ShareLedger;
use bkv_core::{AccountId, RecordVersion};
use bkv_vault::VaultError;
use bkv_vault::holder::{LedgerStore, ShareId};

/// The share ledgers of one node.
#[derive(Clone)]
pub struct SledLedgers(Arc<Inner>);

struct Inner {
    tree: sled::Tree,
    /// Each record's latest ledger: `I2OSP(len(account), 2) || account || I2OSP(version,
    /// 8)` to its share id.
    latest: sled::Tree,
    db: sled::Db,
    /// Saves so far.
    written: AtomicU64,
    /// Saves covered by the last completed flush.
    flushed: AtomicU64,
    flushing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for SledLedgers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledLedgers")
            .field("ledgers", &self.0.tree.len())
            .finish()
    }
}

fn storage(e: impl std::fmt::Display) -> VaultError {
    VaultError::Internal(format!("share ledger store: {e}"))
}

impl SledLedgers {
    /// Opens (or creates) the store under `dir`.
    pub fn open(dir: &Path) -> Result<Self, sled::Error> {
        let db = bkv_raft::sled_gate::config(dir).open()?;
        let tree = db.open_tree("ledgers")?;
        let latest = db.open_tree("latest")?;
        if latest.is_empty() {
            // A store written before the index existed: one pass over its ledgers.
            for item in tree.iter() {
                let (id, bytes) = item?;
                if let Ok(ledger) = postcard::from_bytes::<ShareLedger>(&bytes)
                    && !ledger.is_erased()
                {
                    latest.insert(latest_key(&ledger.account, ledger.version), id)?;
                }
            }
        }
        Ok(Self(Arc::new(Inner {
            tree,
            latest,
            db,
            written: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            flushing: tokio::sync::Mutex::new(()),
        })))
    }
}

impl SledLedgers {
    /// Removes every ledger and makes that durable; returns how many there were. What sled
    /// leaves of them in its files until it compacts is sealed under the share-sealing key,
    /// which an erasure destroys first.
    pub async fn erase_all(&self) -> Result<u64, VaultError> {
        let count = self.0.tree.len() as u64;
        self.0.tree.clear().map_err(storage)?;
        self.0.latest.clear().map_err(storage)?;
        bkv_raft::sled_gate::flush(&self.0.db)
            .await
            .map_err(storage)?;
        Ok(count)
    }
}

fn latest_key(account: &AccountId, version: RecordVersion) -> Vec<u8> {
    let account = account.as_bytes();
    let mut key = Vec::with_capacity(2 + account.len() + 8);
    // Accounts are at most 128 bytes.
    key.extend_from_slice(&(account.len() as u16).to_be_bytes());
    key.extend_from_slice(account);
    key.extend_from_slice(&version.get().to_be_bytes());
    key
}

impl LedgerStore for SledLedgers {
    fn load(&self, id: &ShareId) -> Result<Option<ShareLedger>, VaultError> {
        let Some(bytes) = self.0.tree.get(id).map_err(storage)? else {
            return Ok(None);
        };
        postcard::from_bytes(&bytes)
            .map(Some)
            .map_err(|e| storage(format!("a ledger does not decode: {e}")))
    }

    fn save(&self, id: &ShareId, ledger: &ShareLedger) -> Result<(), VaultError> {
        let bytes = postcard::to_stdvec(ledger).map_err(storage)?;
        self.0.tree.insert(id, bytes).map_err(storage)?;
        if !ledger.is_erased() {
            self.0
                .latest
                .insert(latest_key(&ledger.account, ledger.version), id)
                .map_err(storage)?;
        }
        self.0.written.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn latest(
        &self,
        account: &AccountId,
        version: RecordVersion,
    ) -> Result<Option<ShareId>, VaultError> {
        let Some(id) = self
            .0
            .latest
            .get(latest_key(account, version))
            .map_err(storage)?
        else {
            return Ok(None);
        };
        id.as_ref()
            .try_into()
            .map(Some)
            .map_err(|_| storage("a latest-ledger entry is not 32 bytes"))
    }

    async fn flush(&self) -> Result<(), VaultError> {
        let mine = self.0.written.load(Ordering::SeqCst);
        let _turn = self.0.flushing.lock().await;
        if self.0.flushed.load(Ordering::SeqCst) >= mine {
            // A flush that began after this caller's writes has completed meanwhile.
            return Ok(());
        }
        let covers = self.0.written.load(Ordering::SeqCst);
        bkv_raft::sled_gate::flush(&self.0.db)
            .await
            .map_err(storage)?;
        self.0.flushed.store(covers, Ordering::SeqCst);
        Ok(())
    }

    fn scan(
        &self,
        after: Option<ShareId>,
        limit: usize,
    ) -> Result<Vec<(ShareId, ShareLedger)>, VaultError> {
        let range = match after {
            Some(after) => self.0.tree.range((
                std::ops::Bound::Excluded(after.to_vec()),
                std::ops::Bound::Unbounded,
            )),
            None => self.0.tree.iter(),
        };
        let mut out = Vec::new();
        for item in range.take(limit) {
            let (key, value) = item.map_err(storage)?;
            let id: ShareId = key
                .as_ref()
                .try_into()
                .map_err(|_| storage("a ledger key is not 32 bytes"))?;
            let ledger = postcard::from_bytes(&value)
                .map_err(|e| storage(format!("a ledger does not decode: {e}")))?;
            out.push((id, ledger));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(account: &str, version: u64, sealed: u8) -> ShareLedger {
        ShareLedger::new(
            AccountId::parse(account).expect("valid"),
            RecordVersion(version),
            3,
            [0; 32],
            vec![sealed; 40],
        )
    }

    /// A record's latest ledger follows the live ledgers saved, not the erased ones, and
    /// survives a reopen; a store written before the index is indexed when opened.
    #[tokio::test]
    async fn each_records_latest_ledger_is_indexed_and_survives_a_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let alice = AccountId::parse("alice").expect("valid");
        let (old, new) = ([1u8; 32], [2u8; 32]);
        {
            let store = SledLedgers::open(dir.path()).expect("opens");
            assert_eq!(store.latest(&alice, RecordVersion(7)), Ok(None));
            store.save(&old, &ledger("alice", 7, 1)).expect("saves");
            assert_eq!(store.latest(&alice, RecordVersion(7)), Ok(Some(old)));
            store.save(&new, &ledger("alice", 7, 2)).expect("saves");
            let mut erased = ledger("alice", 7, 1);
            erased.erase();
            store.save(&old, &erased).expect("saves");
            assert_eq!(store.latest(&alice, RecordVersion(7)), Ok(Some(new)));
            assert_eq!(store.latest(&alice, RecordVersion(8)), Ok(None));
            store.flush().await.expect("flushes");
        }
        {
            let store = SledLedgers::open(dir.path()).expect("reopens");
            assert_eq!(store.latest(&alice, RecordVersion(7)), Ok(Some(new)));
            // As a store from before the index: the index is gone, opening rebuilds it.
            store.0.latest.clear().expect("clears");
            bkv_raft::sled_gate::flush(&store.0.db)
                .await
                .expect("flushes");
        }
        let store = SledLedgers::open(dir.path()).expect("reopens");
        assert_eq!(store.latest(&alice, RecordVersion(7)), Ok(Some(new)));
    }
}
