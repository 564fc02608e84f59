//! The node's audit log: every audit record the state machine emits, appended as one JSON
//! line to `<data_dir>/audit.jsonl` and broadcast to `Audit` streams.
//!
//! Accounts never appear in clear: they are named by a keyed hash (HMAC-SHA256, 16 bytes,
//! hex) under a key derived from the cluster's OPAQUE server setup, so every node writes the
//! same hash for the same account and nobody without the cluster's secrets can test a guess
//! of an account name against the file. Records wait in a bounded queue ([`AuditQueue`])
//! until the node has unsealed the server setup; past its bound they are dropped and a
//! `records_dropped` line takes their place.
//!
//! After a restart the state machine re-applies the log above its snapshot; records already
//! in the file are recognised by their log index and skipped. A last line torn by a crash is
//! cut off at start, so the next line starts on a line of its own.
//!
//! The file is rotated by size ([`Rotation`]): when it reaches `max_file_bytes` it becomes
//! `audit.jsonl.1` (the older ones move up to `.2`, ...; beyond `keep_files`, at least 1,
//! they are deleted) and a new `audit.jsonl` starts. `seq` carries on across files, and a
//! restart resumes from the newest line in either the current file or `audit.jsonl.1`.
//! Reading ([`AuditLog::cursor`]) streams the files line by line ([`AuditCursor`]).

mod cursor;
mod queue;
mod stream;

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bkv_core::AccountId;
use bkv_raft::{AuditEntry, AuditRecord};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::{broadcast, mpsc, watch};
use zeroize::Zeroizing;

pub use cursor::AuditCursor;
pub use queue::{AuditQueue, Dropped, Position, QUEUE_RECORDS, Queued};
pub use stream::{StreamError, stream};

use crate::metrics::Metrics;

/// Most records written in one append.
const MAX_BATCH: usize = 4096;

/// The `kind` of the line that stands for records dropped from a full queue.
pub const RECORDS_DROPPED: &str = "records_dropped";

/// When the audit file is rotated and how many old files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate once the file holds at least this many bytes.
    pub max_file_bytes: u64,
    /// Rotated files kept (`audit.jsonl.1` ..); older ones are deleted. At least 1 (0 is
    /// taken as 1): right after a rotation, `.1` holds where a restart resumes.
    pub keep_files: u32,
}

/// The path of rotated file `n` (1 is the newest) next to `path`.
fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Moves `path` to `path.1`, `path.1` to `path.2`, ... and deletes what falls beyond `keep`.
fn rotate(path: &Path, keep: u32) -> std::io::Result<()> {
    let remove = |p: &Path| match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    };
    remove(&rotated(path, keep))?;
    for n in (1..keep).rev() {
        let from = rotated(path, n);
        if from.exists() {
            std::fs::rename(&from, rotated(path, n + 1))?;
        }
    }
    std::fs::rename(path, rotated(path, 1))
}

/// Cuts off a last line without its newline (a crash mid-append), so that the next append
/// starts a line of its own; a last line that is complete but for the newline gets it.
/// Returns the bytes cut off.
fn repair_tail(path: &Path) -> std::io::Result<u64> {
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    // Find the last newline, reading backwards in blocks.
    const BLOCK: u64 = 64 * 1024;
    let mut end = len;
    let mut last_newline = None;
    let mut block = vec![0u8; BLOCK as usize];
    while end > 0 && last_newline.is_none() {
        let start = end.saturating_sub(BLOCK);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut block[..n])?;
        last_newline = block[..n]
            .iter()
            .rposition(|b| *b == b'\n')
            .map(|i| start + i as u64);
        end = start;
    }
    let tail_start = last_newline.map_or(0, |i| i + 1);
    if tail_start == len {
        return Ok(0);
    }
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(tail_start))?;
    file.read_to_end(&mut tail)?;
    if serde_json::from_slice::<AuditLine>(&tail).is_ok() {
        // Written whole but for its newline.
        file.seek(SeekFrom::End(0))?;
        file.write_all(b"\n")?;
        file.sync_data()?;
        return Ok(0);
    }
    file.set_len(tail_start)?;
    file.sync_data()?;
    tracing::warn!(
        path = %path.display(),
        bytes = len - tail_start,
        "audit file ended in a torn line (a crash mid-append): cut it off"
    );
    Ok(len - tail_start)
}

/// One line of the audit file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditLine {
    /// Position in this node's file, from 1.
    pub seq: u64,
    /// Raft log index of the entry (of the last record dropped, for `records_dropped`).
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
    /// Records dropped, for `records_dropped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped: Option<u64>,
    /// Log index of the first record dropped, for `records_dropped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_log_index: Option<u64>,
    /// How many of the records dropped belong to the entry at `log_index`, for
    /// `records_dropped` (a restart resumes after them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_at_log_index: Option<u64>,
}

impl AuditLine {
    fn empty(seq: u64, log_index: u64, kind: &str) -> Self {
        Self {
            seq,
            log_index,
            at_unix_ms: 0,
            kind: kind.to_string(),
            account: String::new(),
            version: None,
            charge: None,
            guesses_remaining: None,
            voters: None,
            learners: None,
            dropped: None,
            first_log_index: None,
            dropped_at_log_index: None,
        }
    }

    /// How many of its entry's records this line accounts for (a marker: the records it
    /// stands for at its log index).
    fn handled(&self) -> u64 {
        if self.kind == RECORDS_DROPPED {
            self.dropped_at_log_index.unwrap_or(0)
        } else {
            1
        }
    }
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

/// The audit file and its live stream.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
    keep_files: u32,
    live: broadcast::Sender<AuditLine>,
    written: Arc<AtomicU64>,
}

/// Where the file stands at start: the last `seq`, and the position for skipping re-applied
/// records.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Resume {
    seq: u64,
    position: Position,
    /// Whether a line was seen at all.
    any: bool,
}

impl Resume {
    fn add(&mut self, line: &AuditLine) {
        self.seq = line.seq;
        self.any = true;
        let p = &mut self.position;
        if line.log_index == p.last_index {
            p.handled_at_last += line.handled();
        } else {
            p.last_index = line.log_index;
            p.handled_at_last = line.handled();
        }
    }
}

/// Reads `path` line by line (a torn or corrupt line is skipped): where it ends, and whether
/// all its lines belong to one entry. A missing file is empty.
fn scan(path: &Path, mut resume: Resume) -> std::io::Result<(Resume, bool)> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((resume, true)),
        Err(e) => return Err(e),
    };
    let mut first_index = None;
    let mut one_entry = true;
    for line in BufReader::new(file).split(b'\n') {
        let Ok(parsed) = serde_json::from_slice::<AuditLine>(&line?) else {
            continue;
        };
        match first_index {
            None => first_index = Some(parsed.log_index),
            Some(first) if first != parsed.log_index => one_entry = false,
            Some(_) => {}
        }
        resume.add(&parsed);
    }
    Ok((resume, one_entry))
}

fn read_resume(path: &Path) -> std::io::Result<Resume> {
    // The newest lines are in the current file, or in `.1` right after a rotation; the lines
    // of the last entry may straddle the two. Constant memory: both are streamed.
    let (current, one_entry) = scan(path, Resume::default())?;
    if !one_entry {
        return Ok(current);
    }
    let (before, _) = scan(&rotated(path, 1), Resume::default())?;
    // The current file again, on top of `.1` (at most one entry's lines).
    let (resume, _) = scan(path, before)?;
    Ok(resume)
}

impl AuditLog {
    /// Opens (or creates) the audit file in `data_dir` and starts its writer. Records wait
    /// for `hasher` to be set, in a queue of at most [`QUEUE_RECORDS`]; `metrics` counts what
    /// a full queue drops.
    pub fn start(
        data_dir: &Path,
        hasher: watch::Receiver<Option<AccountHasher>>,
        rotation: Rotation,
        metrics: Option<Metrics>,
    ) -> std::io::Result<(Self, AuditQueue)> {
        Self::start_with_queue(data_dir, hasher, rotation, metrics, QUEUE_RECORDS)
    }

    /// [`Self::start`] with a queue of `queue_records`.
    fn start_with_queue(
        data_dir: &Path,
        hasher: watch::Receiver<Option<AccountHasher>>,
        rotation: Rotation,
        metrics: Option<Metrics>,
        queue_records: usize,
    ) -> std::io::Result<(Self, AuditQueue)> {
        let rotation = Rotation {
            keep_files: rotation.keep_files.max(1),
            ..rotation
        };
        let path = data_dir.join("audit.jsonl");
        repair_tail(&path)?;
        let resume = read_resume(&path)?;
        let (tx, rx) = mpsc::channel(queue_records);
        let (live, _) = broadcast::channel(4096);
        let written = Arc::new(AtomicU64::new(resume.seq));
        let log = Self {
            path: path.clone(),
            keep_files: rotation.keep_files,
            live: live.clone(),
            written: written.clone(),
        };
        let writer = Writer {
            path,
            rotation,
            seq: resume.seq,
            live,
            written,
        };
        tokio::spawn(writer.run(rx, hasher));
        Ok((log, AuditQueue::new(tx, resume.position, metrics)))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// New lines as they are written (each is in the file before it is sent here).
    pub fn subscribe(&self) -> broadcast::Receiver<AuditLine> {
        self.live.subscribe()
    }

    /// The `seq` of the last line written (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Lines in the files (the rotated ones kept, then the current one) from `from_seq` on,
    /// read as they are asked for.
    pub fn cursor(&self, from_seq: u64) -> AuditCursor {
        AuditCursor::new(self.path.clone(), self.keep_files, from_seq)
    }
}

struct Writer {
    path: PathBuf,
    rotation: Rotation,
    seq: u64,
    live: broadcast::Sender<AuditLine>,
    written: Arc<AtomicU64>,
}

impl Writer {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Queued>,
        mut hasher: watch::Receiver<Option<AccountHasher>>,
    ) {
        // Records wait in the queue until the node has unsealed the server setup.
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
        let (mut file, mut size) = match open(&self.path) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, path = %self.path.display(), "cannot open the audit file");
                return;
            }
        };
        let mut batch = Vec::with_capacity(MAX_BATCH);
        // Lines an append failed to write (a full disk): a marker for them leads the next
        // append.
        let mut failed: Option<Dropped> = None;
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let first_seq = self.seq;
            let mut lines = Vec::with_capacity(batch.len() + 1);
            if let Some(d) = failed.take() {
                self.seq += 1;
                lines.push(dropped_line(self.seq, &d));
            }
            for queued in batch.drain(..) {
                self.seq += 1;
                lines.push(match queued {
                    Queued::Record(record) => to_line(self.seq, &record, &key),
                    Queued::Dropped(d) => dropped_line(self.seq, &d),
                });
            }
            match append(&mut file, &lines) {
                Ok(written) => size += written,
                Err(e) => {
                    tracing::error!(error = %e, path = %self.path.display(), lines = lines.len(), "cannot append to the audit file; a records_dropped line will stand for these");
                    // Cut off what part of the append reached the file, so that no torn
                    // line is left for the next append to run into.
                    if let Err(e) = file.set_len(size) {
                        tracing::error!(error = %e, "cannot truncate the audit file after a failed append");
                    }
                    for line in &lines {
                        Dropped::absorb(&mut failed, line);
                    }
                    self.seq = first_seq;
                    continue;
                }
            }
            if let Some(last) = lines.last() {
                self.written.store(last.seq, Ordering::Release);
            }
            if size >= self.rotation.max_file_bytes {
                match rotate(&self.path, self.rotation.keep_files).and_then(|()| open(&self.path)) {
                    Ok((f, len)) => (file, size) = (f, len),
                    // Keep appending to the file still open; the next batch tries again.
                    Err(e) => {
                        tracing::error!(error = %e, path = %self.path.display(), "cannot rotate the audit file")
                    }
                }
            }
            for line in lines {
                // No subscriber is fine.
                let _ = self.live.send(line);
            }
        }
    }
}

fn dropped_line(seq: u64, d: &Dropped) -> AuditLine {
    AuditLine {
        dropped: Some(d.count),
        first_log_index: Some(d.first_log_index),
        dropped_at_log_index: Some(d.at_last_log_index),
        ..AuditLine::empty(seq, d.last_log_index, RECORDS_DROPPED)
    }
}

fn to_line(seq: u64, record: &AuditRecord, key: &AccountHasher) -> AuditLine {
    let mut line = AuditLine {
        at_unix_ms: record.at_unix_ms.unwrap_or(0),
        ..AuditLine::empty(seq, record.log_index, record.entry.name())
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
mod tests;
