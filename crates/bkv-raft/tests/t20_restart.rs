//! Restart durability: what the stores acknowledged is there after dropping everything and
//! reopening the same directory, at the storage level and for a whole one-node Raft.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bkv_core::{Outcome, RecordStatus};
use bkv_raft::storage::{SNAPSHOT_DIR, open_storage};
use bkv_raft::types::{LogEntry, LogId, Vote};
use bkv_raft::{
    AuditEntry, AuditRecord, BkvNode, DiscardAudit, NodeOptions, Proposal, RaftNode, SnapshotOnDisk,
};
use common::{account, bootstrap, bootstrap_vault, share_map, stage};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{
    CommittedLeaderId, EntryPayload, Membership, RaftLogReader, RaftSnapshotBuilder, StorageHelper,
};
use tempfile::TempDir;
use tokio::sync::mpsc;

/// Opens with `open` once sled has let go of the directory. A dropped sled database keeps
/// its file lock until its flusher thread next wakes, a moment later, so an open right after
/// a drop can fail with "could not acquire lock" (seen as a rare failure of these tests).
/// Only that error is retried (100 tries, 50 ms apart); any other answer is returned as it
/// is, so a test of a refused open sees the refusal, not the lock.
async fn when_free<T, E: std::fmt::Display>(
    mut open: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    for _ in 0..100 {
        match open() {
            Err(e) if e.to_string().contains("could not acquire lock") => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
    open()
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entries() -> Vec<LogEntry> {
    let nodes = BTreeMap::from([(1, BkvNode::new("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"))]);
    vec![
        LogEntry {
            log_id: log_id(0, 0),
            payload: EntryPayload::Membership(Membership::new(vec![BTreeSet::from([1])], nodes)),
        },
        LogEntry {
            log_id: log_id(1, 1),
            // The vault's first commands: bootstrap, then the share map (registrations stage
            // only once a map is in force), at positions 1000 and 1001.
            payload: EntryPayload::Normal(Proposal {
                requests: vec![bootstrap(), share_map()],
            }),
        },
        LogEntry {
            log_id: log_id(1, 2),
            payload: EntryPayload::Normal(Proposal::one(stage(1))),
        },
        LogEntry {
            log_id: log_id(1, 3),
            // Group commit: two commands in one entry, applied at positions 3000 and 3001
            // (their versions come from their own clocks).
            payload: EntryPayload::Normal(Proposal {
                requests: vec![stage(2), stage(3)],
            }),
        },
    ]
}

#[tokio::test]
async fn stores_survive_reopen() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let vote = Vote::new(1, 1);
    let (tx, mut rx) = mpsc::unbounded_channel::<AuditRecord>();

    // --- phase 1: append 0..=3, vote, apply 0..=2, snapshot at 2, apply 3.
    let digest_before = {
        let (mut log, mut sm) =
            when_free(|| open_storage(dir.path(), Arc::new(tx.clone()))).await?;
        log.save_vote(&vote).await?;
        log.blocking_append(entries()).await?;
        log.save_committed(Some(log_id(1, 3))).await?;
        let resp = sm.apply(entries().into_iter().take(3)).await?;
        assert_eq!(
            resp[1].outcomes,
            vec![Outcome::Bootstrapped, Outcome::ShareMapSet { epoch: 1 }]
        );
        assert!(matches!(resp[2].outcomes[..], [Outcome::Staged { .. }]));
        let snap = sm.get_snapshot_builder().await.build_snapshot().await?;
        assert_eq!(snap.meta.last_log_id, Some(log_id(1, 2)));
        let resp = sm.apply(entries().into_iter().skip(3)).await?;
        let versions: Vec<_> = resp[0]
            .outcomes
            .iter()
            .map(|o| match o {
                Outcome::Staged { version } => version.get(),
                other => panic!("not staged: {other:?}"),
            })
            .collect();
        assert_eq!(
            versions,
            vec![1_700_000_000_002_000, 1_700_000_000_003_000],
            "one outcome per command of the entry, each with the version of its own clock (µs)"
        );
        let h = sm.handle();
        assert_eq!(h.applied_index(), 3);
        h.state_digest()
    };
    let first: Vec<AuditRecord> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert_eq!(first[0].entry.name(), "membership_changed");
    assert!(
        first
            .iter()
            .any(|r| r.entry.name() == "registered" && r.log_index == 3)
    );

    // --- phase 2: reopen; vote, log and snapshot are back.
    let (mut log, mut sm) = when_free(|| open_storage(dir.path(), Arc::new(tx.clone()))).await?;
    assert_eq!(log.read_vote().await?, Some(vote));
    let state = log.get_log_state().await?;
    assert_eq!(state.last_log_id, Some(log_id(1, 3)));
    assert_eq!(log.try_get_log_entries(0..4).await?, entries());
    assert_eq!(log.read_committed().await?, Some(log_id(1, 3)));
    let (applied, membership) = sm.applied_state().await?;
    assert_eq!(applied, Some(log_id(1, 2)), "restored from the snapshot");
    assert_eq!(membership.voter_ids().collect::<Vec<_>>(), vec![1]);
    let snap = sm.get_current_snapshot().await?.expect("snapshot kept");
    assert_eq!(snap.meta.last_log_id, Some(log_id(1, 2)));

    // --- phase 3: openraft's start-up re-applies the committed log above the snapshot.
    StorageHelper::new(&mut log, &mut sm)
        .get_initial_state()
        .await?;
    assert_eq!(sm.applied_state().await?.0, Some(log_id(1, 3)));
    let h = sm.handle();
    assert_eq!(h.applied_index(), 3);
    assert_eq!(h.state_digest(), digest_before);
    let replayed: Vec<AuditRecord> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert!(!replayed.is_empty(), "entry 3 is re-applied");
    assert!(
        replayed
            .iter()
            .all(|r| r.log_index == 3 && matches!(r.entry, AuditEntry::Vault(_))),
        "only entry 3 is re-applied: {replayed:?}"
    );
    Ok(())
}

#[tokio::test]
async fn one_node_raft_restarts_with_its_state() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let me = BkvNode::new("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3");

    // --- phase 1: initialise, write, snapshot, write more, shut down.
    let (digest, applied) = {
        let node = RaftNode::open(NodeOptions::new(1, dir.path(), Arc::new(DiscardAudit))).await?;
        assert!(node.initialize_single(me.clone()).await?);
        node.raft()
            .wait(Some(Duration::from_secs(5)))
            .current_leader(1, "self elected")
            .await?;
        let w = node.writer();
        bootstrap_vault(&w).await?;
        for n in 0..5 {
            w.write(stage(n)).await?;
        }
        node.trigger_snapshot().await?;
        node.raft()
            .wait(Some(Duration::from_secs(5)))
            .metrics(|m| m.snapshot.is_some(), "snapshot built")
            .await?;
        for n in 5..8 {
            w.write(stage(n)).await?;
        }
        let out = w.write(stage(3)).await?;
        assert!(
            matches!(out.outcome, Outcome::Staged { .. }),
            "retry is idempotent"
        );
        let r = (node.state().state_digest(), node.state().applied_index());
        node.shutdown().await;
        r
    };

    // --- phase 2: reopen the same directory: the state comes back and the node leads again.
    let node = RaftNode::open(NodeOptions::new(1, dir.path(), Arc::new(DiscardAudit))).await?;
    assert!(!node.initialize_single(me).await?, "already initialised");
    node.raft()
        .wait(Some(Duration::from_secs(5)))
        .applied_index_at_least(Some(applied), "re-applied")
        .await?;
    // A new term's blank entry may follow; the vault state is the same.
    assert_eq!(node.state().state_digest(), digest);
    assert!(node.state().account_status(&account(6)).staged.is_some());
    assert_eq!(
        node.state().account_status(&account(6)).record,
        RecordStatus::Absent
    );
    let w = node.writer();
    assert!(matches!(
        w.write(stage(9)).await?.outcome,
        Outcome::Staged { .. }
    ));
    node.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn corrupt_bytes_are_storage_errors() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    {
        let (mut log, _sm) = when_free(|| open_storage(dir.path(), Arc::new(DiscardAudit))).await?;
        log.save_vote(&Vote::new(1, 1)).await?;
        log.blocking_append(entries()).await?;
    }
    // Damage one entry (not the last) behind the store's back: reading it is an error.
    {
        let db = when_free(|| sled::open(dir.path().join(bkv_raft::storage::RAFT_DB_DIR))).await?;
        db.open_tree("raft_log")?
            .insert(1u64.to_be_bytes(), &[0xFF; 5])?;
        db.flush()?;
    }
    let (mut log, _sm) = when_free(|| open_storage(dir.path(), Arc::new(DiscardAudit))).await?;
    assert!(log.get_log_state().await.is_ok());
    assert!(log.try_get_log_entries(0..4).await.is_err());
    assert_eq!(
        log.try_get_log_entries(2..4).await?,
        entries()[2..4].to_vec()
    );
    drop((log, _sm));

    // A damaged vote or last entry refuses to open: the store reads both at open to know
    // what is durably on disk (rollback detection).
    {
        let db = when_free(|| sled::open(dir.path().join(bkv_raft::storage::RAFT_DB_DIR))).await?;
        db.open_tree("raft_meta")?.insert("vote", &[0xFF; 3])?;
        db.flush()?;
    }
    assert!(
        when_free(|| open_storage(dir.path(), Arc::new(DiscardAudit)))
            .await
            .is_err()
    );
    {
        let db = when_free(|| sled::open(dir.path().join(bkv_raft::storage::RAFT_DB_DIR))).await?;
        let v = bkv_raft::codec::encode(&Vote::new(1, 1))?;
        db.open_tree("raft_meta")?.insert("vote", v)?;
        db.open_tree("raft_log")?
            .insert(3u64.to_be_bytes(), &[0xFF; 5])?;
        db.flush()?;
    }
    assert!(
        when_free(|| open_storage(dir.path(), Arc::new(DiscardAudit)))
            .await
            .is_err()
    );
    {
        let db = when_free(|| sled::open(dir.path().join(bkv_raft::storage::RAFT_DB_DIR))).await?;
        db.open_tree("raft_log")?.remove(3u64.to_be_bytes())?;
        db.open_tree("raft_log")?.remove(1u64.to_be_bytes())?;
        db.flush()?;
    }
    assert!(
        when_free(|| open_storage(dir.path(), Arc::new(DiscardAudit)))
            .await
            .is_ok()
    );

    // A damaged snapshot refuses to open rather than serve a wrong state.
    {
        let db = when_free(|| sled::open(dir.path().join(bkv_raft::storage::RAFT_DB_DIR))).await?;
        db.open_tree("raft_snapshot")?
            .insert("current", &[1, 2, 3])?;
        db.flush()?;
    }
    assert!(
        when_free(|| open_storage(dir.path(), Arc::new(DiscardAudit)))
            .await
            .is_err()
    );
    // So does a damaged snapshot file, which wins over a copy in sled.
    std::fs::create_dir_all(dir.path().join(SNAPSHOT_DIR))?;
    std::fs::write(
        dir.path().join(SNAPSHOT_DIR).join("current.snap"),
        [1, 2, 3],
    )?;
    assert!(
        when_free(|| open_storage(dir.path(), Arc::new(DiscardAudit)))
            .await
            .is_err()
    );
    Ok(())
}

/// Earlier builds kept the snapshot in sled tree `raft_snapshot`: such a snapshot is read at
/// open, and the next one is a file that replaces it.
#[tokio::test]
async fn a_snapshot_kept_in_sled_by_an_earlier_build_is_read_then_replaced() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let file = dir.path().join(SNAPSHOT_DIR).join("current.snap");
    let digest = {
        let (mut log, mut sm) =
            when_free(|| open_storage(dir.path(), Arc::new(DiscardAudit))).await?;
        log.blocking_append(entries()).await?;
        sm.apply(entries().into_iter().take(3)).await?;
        sm.get_snapshot_builder().await.build_snapshot().await?;
        sm.handle().state_digest()
    };
    // Move the snapshot from its file into sled, where an earlier build would have put it.
    let bytes = std::fs::read(&file)?;
    std::fs::remove_file(&file)?;
    {
        let db = when_free(|| sled::open(dir.path().join(bkv_raft::storage::RAFT_DB_DIR))).await?;
        db.open_tree("raft_snapshot")?.insert("current", bytes)?;
        db.flush()?;
    }
    let (_log, mut sm) = when_free(|| open_storage(dir.path(), Arc::new(DiscardAudit))).await?;
    assert_eq!(
        sm.applied_state().await?.0,
        Some(log_id(1, 2)),
        "restored from sled"
    );
    assert_eq!(sm.handle().state_digest(), digest);
    sm.get_snapshot_builder().await.build_snapshot().await?;
    assert!(file.exists(), "the new snapshot is a file");
    drop((_log, sm));
    let db = when_free(|| sled::open(dir.path().join(bkv_raft::storage::RAFT_DB_DIR))).await?;
    assert!(
        db.open_tree("raft_snapshot")?.get("current")?.is_none(),
        "the copy in sled is dropped"
    );
    Ok(())
}

/// The durable state (what rollback detection compares with the watermark) follows flushes:
/// appends raise it, a truncation lowers it, a vote sets the term, and a reopened store reads
/// the same from disk.
/// openraft builds snapshots in a task of its own, so a build and an installed snapshot can
/// be written at once: the older of two never replaces the newer on disk.
#[tokio::test]
async fn an_older_snapshot_never_replaces_a_newer_one_on_disk() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let new_bytes;
    {
        let (mut log, mut sm) =
            when_free(|| open_storage(dir.path(), Arc::new(DiscardAudit))).await?;
        let on_disk = sm.snapshot_reader();
        assert_eq!(on_disk(), SnapshotOnDisk::default());
        log.blocking_append(entries()).await?;
        sm.apply(entries().into_iter().take(3)).await?;
        let old = sm.get_snapshot_builder().await.build_snapshot().await?;
        assert_eq!(old.meta.last_log_id, Some(log_id(1, 2)));
        assert_eq!(on_disk().last_log_id, Some(log_id(1, 2)));
        sm.apply(entries().into_iter().skip(3)).await?;
        let new = sm.get_snapshot_builder().await.build_snapshot().await?;
        assert_eq!(new.meta.last_log_id, Some(log_id(1, 3)));
        new_bytes = new.snapshot.get_ref().len() as u64;
        // The older one arrives last.
        sm.install_snapshot(&old.meta, old.snapshot).await?;
        let current = sm.get_current_snapshot().await?.expect("a snapshot");
        assert_eq!(current.meta.last_log_id, Some(log_id(1, 3)));
        // What the node reports without reading the file is what the file holds.
        let reported = SnapshotOnDisk {
            last_log_id: Some(log_id(1, 3)),
            bytes: new_bytes,
        };
        assert_eq!(on_disk(), reported);
        assert_eq!(current.snapshot.get_ref().len() as u64, reported.bytes);
    }
    let (_log, mut sm) = when_free(|| open_storage(dir.path(), Arc::new(DiscardAudit))).await?;
    assert_eq!(sm.applied_state().await?.0, Some(log_id(1, 3)));
    assert_eq!(sm.snapshot_reader()().bytes, new_bytes);
    Ok(())
}

/// A purge takes effect at once (the purge point is flushed); the entries themselves are
/// removed in the background and are never read meanwhile. A reopened store has none left.
#[tokio::test]
async fn purged_entries_are_never_read_and_are_gone_after_reopen() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    {
        let (mut log, _sm) = when_free(|| open_storage(dir.path(), Arc::new(DiscardAudit))).await?;
        log.blocking_append(entries()).await?;
        log.purge(log_id(1, 1)).await?;
        assert_eq!(
            log.try_get_log_entries(0..4).await?,
            entries()[2..].to_vec()
        );
        let state = log.get_log_state().await?;
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 1)));
        assert_eq!(state.last_log_id, Some(log_id(1, 3)));
        // Purged past every entry: the purge point is the last log id.
        log.purge(log_id(1, 3)).await?;
        assert!(log.try_get_log_entries(0..4).await?.is_empty());
        let state = log.get_log_state().await?;
        assert_eq!(state.last_log_id, Some(log_id(1, 3)));
        assert_eq!(log.durable_state().last_log_index, 3);
    }
    // The background removal holds the database until it is done: `when_free` waits for it.
    let (mut log, _sm) = when_free(|| open_storage(dir.path(), Arc::new(DiscardAudit))).await?;
    let state = log.get_log_state().await?;
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 3)));
    assert_eq!(state.last_log_id, Some(log_id(1, 3)));
    assert_eq!(log.durable_state().last_log_index, 3);
    drop((log, _sm));
    let db = when_free(|| sled::open(dir.path().join(bkv_raft::storage::RAFT_DB_DIR))).await?;
    assert_eq!(
        db.open_tree("raft_log")?.len(),
        0,
        "no purged entry left on disk"
    );
    Ok(())
}

#[tokio::test]
async fn durable_state_follows_what_is_flushed() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    {
        let (mut log, _sm) = when_free(|| open_storage(dir.path(), Arc::new(DiscardAudit))).await?;
        assert_eq!(log.durable_state(), bkv_raft::DurableState::default());
        log.blocking_append(entries()).await?;
        log.save_vote(&Vote::new(3, 1)).await?;
        let last = entries().last().map(|e| e.log_id.index).unwrap_or_default();
        assert_eq!(log.durable_state().last_log_index, last);
        assert_eq!(log.durable_state().vote_term, 3);
        log.truncate(log_id(1, last)).await?;
        assert_eq!(log.durable_state().last_log_index, last - 1);
    }
    let (log, _sm) = when_free(|| open_storage(dir.path(), Arc::new(DiscardAudit))).await?;
    let last = entries().last().map(|e| e.log_id.index).unwrap_or_default();
    assert_eq!(
        log.durable_state(),
        bkv_raft::DurableState {
            last_log_index: last - 1,
            vote_term: 3
        }
    );
    Ok(())
}

#[tokio::test]
async fn an_entry_with_more_commands_than_positions_never_reuses_a_version() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let (mut log, mut sm) = when_free(|| open_storage(dir.path(), Arc::new(DiscardAudit))).await?;
    let mut all = entries();
    all.truncate(2);
    // Entry 2: 1,002 registrations; the leader never proposes more than 256.
    all.push(LogEntry {
        log_id: log_id(1, 2),
        payload: EntryPayload::Normal(Proposal {
            requests: (1..=1002).map(stage).collect(),
        }),
    });
    log.blocking_append(all.clone()).await?;
    let resp = sm.apply(all).await?;
    let outcomes = &resp[2].outcomes;
    assert_eq!(outcomes.len(), 1002, "one outcome per command");
    let mut versions = BTreeSet::new();
    for (i, o) in outcomes.iter().enumerate() {
        match (i, o) {
            (..=999, Outcome::Staged { version }) => {
                // Every Stage has a version of its own, also within one entry.
                assert!(version.get() > 0);
                versions.insert(version.get());
            }
            (1000.., Outcome::Rejected(bkv_core::Rejection::StaleLogIndex { .. })) => {}
            other => panic!("command {i}: {other:?}"),
        }
    }
    assert_eq!(versions.len(), 1000, "the first 1000 commands staged");
    Ok(())
}
