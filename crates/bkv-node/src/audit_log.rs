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
    let mut r = Resume::default();
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(r),
        Err(e) => return Err(e),
    };
    for line in BufReader::new(file).lines() {
        let line = line?;
        // A torn last line (crash mid-write) is ignored and overwritten by nothing: the
        // next record gets the next seq after the last complete line.
        let Ok(parsed) = serde_json::from_str::<AuditLine>(&line) else {
            continue;
        };
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
    ) -> std::io::Result<(Self, AuditQueue)> {
        let path = data_dir.join("audit.jsonl");
        let resume = read_resume(&path)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (live, _) = broadcast::channel(4096);
        let log = Self {
            path: path.clone(),
            live: live.clone(),
        };
        tokio::spawn(write_loop(path, resume, rx, hasher, live));
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

    /// Lines already in the file from `from_seq` on.
    pub fn read_from(&self, from_seq: u64) -> std::io::Result<Vec<AuditLine>> {
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for line in BufReader::new(file).lines() {
            if let Ok(parsed) = serde_json::from_str::<AuditLine>(&line?)
                && parsed.seq >= from_seq
            {
                out.push(parsed);
            }
        }
        Ok(out)
    }
}

async fn write_loop(
    path: PathBuf,
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
    let mut file = match OpenOptions::new().create(true).append(true).open(&path) {
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
        if let Err(e) = append(&mut file, &lines) {
            tracing::error!(error = %e, path = %path.display(), "cannot append to the audit file");
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

fn append(file: &mut std::fs::File, lines: &[AuditLine]) -> std::io::Result<()> {
    let mut buf = Vec::new();
    for line in lines {
        serde_json::to_writer(&mut buf, line).map_err(std::io::Error::other)?;
        buf.push(b'\n');
    }
    file.write_all(&buf)?;
    file.flush()
}
