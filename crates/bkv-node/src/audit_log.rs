//! The node's audit log: every audit record the state machine emits, appended as one JSON
//! line to `<data_dir>/audit.jsonl` and broadcast to `Audit` streams.
//!
//! Accounts never appear in clear: they are named by a keyed hash (HMAC-SHA256, 16 bytes,
//! hex) under a key derived from the cluster's OPAQUE server setup, so every node writes the
//! same hash for the same account and nobody without the cluster's secrets can test a guess
//! of an account name against the file. Records wait in memory until the node has unsealed
//! the server setup.
//!
//! After a restart the state machine re-applies the log above its snapshot; records already
//! in the file are recognised by their log index and skipped.
//!
//! The file is rotated by size ([`Rotation`]): when it reaches `max_file_bytes` it becomes
//! `audit.jsonl.1` (the older ones move up to `.2`, ...; beyond `keep_files` they are
//! deleted) and a new `audit.jsonl` starts. `seq` carries on across files, and a restart
//! resumes from the newest line in either the current file or `audit.jsonl.1`.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bkv_core::AccountId;
use bkv_raft::{AuditEntry, AuditRecord, AuditSink};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::{broadcast, mpsc, watch};
use zeroize::Zeroizing;

/// Most records written in one append.
const MAX_BATCH: usize = 4096;

/// When the audit file is rotated and how many old files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate once the file holds at least this many bytes.
    pub max_file_bytes: u64,
    /// Rotated files kept (`audit.jsonl.1` ..); older ones are deleted. 0 keeps none.
    pub keep_files: u32,
}

/// The path of rotated file `n` (1 is the newest) next to `path`.
fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Moves `path` to `path.1`, `path.1` to `path.2`, ... and deletes what falls beyond
/// `keep` (with `keep` 0, `path` itself).
fn rotate(path: &Path, keep: u32) -> std::io::Result<()> {
    let remove = |p: &Path| match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    };
    if keep == 0 {
        return remove(path);
    }
    remove(&rotated(path, keep))?;
    for n in (1..keep).rev() {
        let from = rotated(path, n);
        if from.exists() {
            std::fs::rename(&from, rotated(path, n + 1))?;
        }
    }
    std::fs::rename(path, rotated(path, 1))
}

/// The complete lines of one file (a torn last line is left out); none if it is missing.
fn read_lines(path: &Path) -> std::io::Result<Vec<AuditLine>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for line in BufReader::new(file).lines() {
        if let Ok(parsed) = serde_json::from_str::<AuditLine>(&line?) {
            out.push(parsed);
        }
    }
    Ok(out)
}

/// One line of the audit file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditLine {
    /// Position in this node's file, from 1.
    pub seq: u64,
    /// Raft log index of the entry.
    pub log_index: u64,
    /// Proposer's clock (Unix ms), 0 when the entry carries none.
    pub at_unix_ms: u64,
    /// What happened.
    pub kind: String,
    /// Keyed hash of the account (hex), empty for cluster events.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub account: String,
    /// Record version, when relevant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Charge number, when relevant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge: Option<u64>,
    /// Guesses remaining, when relevant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guesses_remaining: Option<u32>,
    /// Voters, for membership changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voters: Option<Vec<u64>>,
    /// Learners, for membership changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learners: Option<Vec<u64>>,
}

/// The key accounts are hashed under.
#[derive(Clone)]
pub struct AccountHasher(Arc<Zeroizing<[u8; 32]>>);

impl std::fmt::Debug for AccountHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccountHasher(..)")
    }
}

impl AccountHasher {
    /// Derives the key from the server setup bytes (HKDF-SHA256).
    pub fn from_server_setup(setup: &[u8]) -> Self {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"bkv/audit"), setup);
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's output limit.
        let _ = hk.expand(b"bkv/audit-account-hash/v1", key.as_mut());
        Self(Arc::new(key))
    }

    /// The account's keyed hash, 16 bytes hex.
    pub fn hash(&self, account: &AccountId) -> String {
        // HMAC accepts keys of any length.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0[..]) else {
            return String::new();
        };
        mac.update(account.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }
}

/// The sink handed to the state machine: never blocks the apply path.
#[derive(Debug, Clone)]
pub struct AuditQueue(mpsc::UnboundedSender<AuditRecord>);

impl AuditSink for AuditQueue {
    fn record(&self, record: AuditRecord) {
        if self.0.send(record).is_err() {
            tracing::debug!("audit writer stopped; record dropped");
        }
    }
}

/// The audit file and its live stream.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
    keep_files: u32,
    live: broadcast::Sender<AuditLine>,
}

/// Where the writer resumes: the last log index in the file, and how many lines it has for
/// that index, so a re-applied entry is skipped exactly.
#[derive(Debug, Default, Clone, Copy)]
struct Resume {
    seq: u64,
    last_index: u64,
    lines_at_last: u64,
}

fn read_resume(path: &Path) -> std::io::Result<Resume> {
    // The newest lines are in the current file, or in `.1` right after a rotation; the lines
    // of the last entry may straddle the two.
    let current = read_lines(path)?;
    let run_from_start = match (current.first(), current.last()) {
        (Some(first), Some(last)) => first.log_index == last.log_index,
        _ => true,
    };
    let mut lines = if run_from_start {
        read_lines(&rotated(path, 1))?
    } else {
        Vec::new()
    };
    lines.extend(current);
    let mut r = Resume::default();
    for parsed in lines {
        r.seq = parsed.seq;
        if parsed.log_index == r.last_index {
            r.lines_at_last += 1;
        } else {
            r.last_index = parsed.log_index;
            r.lines_at_last = 1;
        }
    }
    Ok(r)
}

impl AuditLog {
    /// Opens (or creates) the audit file in `data_dir` and starts its writer. Records wait
    /// for `hasher` to be set.
    pub fn start(
        data_dir: &Path,
        hasher: watch::Receiver<Option<AccountHasher>>,
        rotation: Rotation,
    ) -> std::io::Result<(Self, AuditQueue)> {
        let path = data_dir.join("audit.jsonl");
        let resume = read_resume(&path)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (live, _) = broadcast::channel(4096);
        let log = Self {
            path: path.clone(),
            keep_files: rotation.keep_files,
            live: live.clone(),
        };
        tokio::spawn(write_loop(path, rotation, resume, rx, hasher, live));
        Ok((log, AuditQueue(tx)))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// New lines as they are written.
    pub fn subscribe(&self) -> broadcast::Receiver<AuditLine> {
        self.live.subscribe()
    }

    /// Lines already in the files (the rotated ones kept, then the current one) from
    /// `from_seq` on.
    pub fn read_from(&self, from_seq: u64) -> std::io::Result<Vec<AuditLine>> {
        let mut out = Vec::new();
        let files = (1..=self.keep_files)
            .rev()
            .map(|n| rotated(&self.path, n))
            .chain(std::iter::once(self.path.clone()));
        for file in files {
            out.extend(read_lines(&file)?.into_iter().filter(|l| l.seq >= from_seq));
        }
        Ok(out)
    }
}

async fn write_loop(
    path: PathBuf,
    rotation: Rotation,
    mut resume: Resume,
    mut rx: mpsc::UnboundedReceiver<AuditRecord>,
    mut hasher: watch::Receiver<Option<AccountHasher>>,
    live: broadcast::Sender<AuditLine>,
) {
    // Records wait in the channel until the node has unsealed the server setup.
    let key = loop {
        if let Some(key) = hasher.borrow_and_update().clone() {
            break key;
        }
        if hasher.changed().await.is_err() {
            return;
        }
    };
    let open = |path: &Path| {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let len = file.metadata()?.len();
        Ok::<_, std::io::Error>((file, len))
    };
    let (mut file, mut size) = match open(&path) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, path = %path.display(), "cannot open the audit file");
            return;
        }
    };
    let mut current_index = 0u64;
    let mut seen_at_index = 0u64;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let mut lines = Vec::with_capacity(batch.len());
        for record in batch {
            if record.log_index != current_index {
                current_index = record.log_index;
                seen_at_index = 0;
            }
            seen_at_index += 1;
            // Skip what the file already holds (entries re-applied after a restart).
            if record.log_index < resume.last_index
                || (record.log_index == resume.last_index && seen_at_index <= resume.lines_at_last)
            {
                continue;
            }
            resume.seq += 1;
            lines.push(to_line(resume.seq, &record, &key));
        }
        let Some(last) = lines.last() else { continue };
        resume.last_index = last.log_index;
        resume.lines_at_last = lines
            .iter()
            .filter(|l| l.log_index == last.log_index)
            .count() as u64;
        match append(&mut file, &lines) {
            Ok(written) => size += written,
            Err(e) => {
                tracing::error!(error = %e, path = %path.display(), "cannot append to the audit file")
            }
        }
        if size >= rotation.max_file_bytes {
            match rotate(&path, rotation.keep_files).and_then(|()| open(&path)) {
                Ok((f, len)) => (file, size) = (f, len),
                // Keep appending to the file still open; the next batch tries again.
                Err(e) => {
                    tracing::error!(error = %e, path = %path.display(), "cannot rotate the audit file")
                }
            }
        }
        for line in lines {
            // No subscriber is fine.
            let _ = live.send(line);
        }
    }
}

fn to_line(seq: u64, record: &AuditRecord, key: &AccountHasher) -> AuditLine {
    let mut line = AuditLine {
        seq,
        log_index: record.log_index,
        at_unix_ms: record.at_unix_ms.unwrap_or(0),
        kind: record.entry.name().to_string(),
        account: String::new(),
        version: None,
        charge: None,
        guesses_remaining: None,
        voters: None,
        learners: None,
    };
    match &record.entry {
        AuditEntry::Vault(e) => {
            line.account = e.account.as_ref().map(|a| key.hash(a)).unwrap_or_default();
            line.version = e.version.map(|v| v.get());
            line.charge = e.charge.map(|c| c.get());
            line.guesses_remaining = e.guesses_remaining;
        }
        AuditEntry::Membership { voters, learners } => {
            line.voters = Some(voters.clone());
            line.learners = Some(learners.clone());
        }
        AuditEntry::SnapshotInstalled => {}
    }
    line
}

/// Appends `lines`; returns the bytes written.
fn append(file: &mut std::fs::File, lines: &[AuditLine]) -> std::io::Result<u64> {
    let mut buf = Vec::new();
    for line in lines {
        serde_json::to_writer(&mut buf, line).map_err(std::io::Error::other)?;
        buf.push(b'\n');
    }
    file.write_all(&buf)?;
    file.flush()?;
    Ok(buf.len() as u64)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bkv_raft::AuditSink as _;

    use super::*;

    fn membership(log_index: u64) -> AuditRecord {
        AuditRecord {
            log_index,
            at_unix_ms: None,
            entry: AuditEntry::Membership {
                voters: vec![1, 2, 3],
                learners: vec![],
            },
        }
    }

    fn start(dir: &Path, rotation: Rotation) -> (AuditLog, AuditQueue) {
        let hasher = AccountHasher::from_server_setup(&[7u8; 128]);
        let (_keep, rx) = watch::channel(Some(hasher));
        AuditLog::start(dir, rx, rotation).unwrap()
    }

    /// Waits (at most 5 s) until the files hold a line with `seq`.
    async fn written(log: &AuditLog, seq: u64) -> Vec<AuditLine> {
        for _ in 0..500 {
            let lines = log.read_from(0).unwrap();
            if lines.last().is_some_and(|l| l.seq >= seq) {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("seq {seq} not written within 5 s");
    }

    fn line(seq: u64, log_index: u64) -> String {
        let mut text = serde_json::to_string(&AuditLine {
            seq,
            log_index,
            at_unix_ms: 0,
            kind: "membership_changed".into(),
            account: String::new(),
            version: None,
            charge: None,
            guesses_remaining: None,
            voters: Some(vec![1]),
            learners: Some(vec![]),
        })
        .unwrap();
        text.push('\n');
        text
    }

    #[tokio::test]
    async fn the_file_rotates_by_size_keeps_its_files_and_seq_runs_on_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        // About 95 bytes a line.
        let rotation = Rotation {
            max_file_bytes: 1000,
            keep_files: 2,
        };
        let (log, queue) = start(dir.path(), rotation);
        // 20 entries of 2 records each, one entry per append: a rotation every 6 entries.
        for index in 1..=20u64 {
            queue.record(membership(index));
            queue.record(membership(index));
            written(&log, index * 2).await;
        }
        let lines = written(&log, 40).await;
        let path = dir.path().join("audit.jsonl");
        assert!(rotated(&path, 1).exists() && rotated(&path, 2).exists());
        assert!(
            !rotated(&path, 3).exists(),
            "only keep_files rotated files stay"
        );
        for n in [1, 2] {
            let len = std::fs::metadata(rotated(&path, n)).unwrap().len();
            assert!(
                len >= rotation.max_file_bytes,
                "file .{n} rotated at {len} bytes"
            );
        }
        // What is kept reads in order, seq without a gap, up to the last line; the oldest
        // lines went with the deleted files.
        let seqs: Vec<u64> = lines.iter().map(|l| l.seq).collect();
        assert!(seqs.first().is_some_and(|s| *s > 1), "{seqs:?}");
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        assert_eq!(seqs.last(), Some(&40));
        drop(queue);
        drop(log);

        // A restart re-applies entries 18 to 20: nothing is written twice, and seq carries on.
        let (log, queue) = start(dir.path(), rotation);
        for index in 18..=21u64 {
            queue.record(membership(index));
            queue.record(membership(index));
        }
        let lines = written(&log, 42).await;
        let tail: Vec<(u64, u64)> = lines
            .iter()
            .filter(|l| l.seq > 38)
            .map(|l| (l.seq, l.log_index))
            .collect();
        assert_eq!(tail, vec![(39, 20), (40, 20), (41, 21), (42, 21)]);
    }

    #[tokio::test]
    async fn a_restart_right_after_a_rotation_resumes_from_the_rotated_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        // Entry 5's three records straddle the rotation: two in .1, one in the new file.
        std::fs::write(
            rotated(&path, 1),
            [line(1, 4), line(2, 5), line(3, 5)].concat(),
        )
        .unwrap();
        std::fs::write(&path, line(4, 5)).unwrap();
        let rotation = Rotation {
            max_file_bytes: 1 << 20,
            keep_files: 4,
        };
        let (log, queue) = start(dir.path(), rotation);
        for _ in 0..3 {
            queue.record(membership(5));
        }
        queue.record(membership(6));
        let lines = written(&log, 5).await;
        let last: Vec<(u64, u64)> = lines.iter().map(|l| (l.seq, l.log_index)).collect();
        assert_eq!(last, vec![(1, 4), (2, 5), (3, 5), (4, 5), (5, 6)]);

        // Right after a rotation to an empty file, the same.
        drop(queue);
        drop(log);
        tokio::time::sleep(Duration::from_millis(50)).await;
        std::fs::rename(&path, rotated(&path, 1)).unwrap();
        std::fs::write(&path, "").unwrap();
        let (log, queue) = start(dir.path(), rotation);
        queue.record(membership(6));
        queue.record(membership(7));
        let lines = written(&log, 6).await;
        assert_eq!(
            lines.last().map(|l| (l.seq, l.log_index)),
            Some((6, 7)),
            "{lines:?}"
        );
    }
}
