//! [`History`]: what the clients, the nemesis and the observers of a chaos run did and saw,
//! as JSON lines (one [`Entry`] each), written to a file as they happen so that a failed run
//! leaves its history behind.
//!
//! An operation is an `invoke` entry and, unless the client died first, a `complete` entry
//! with the same `op_id`. The nemesis and the observers write `info` entries. No entry ever
//! holds a password or a backup key: keys appear as a short fingerprint (SHA-256 prefix).

use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The current wall-clock time, Unix milliseconds (the nodes stamp their log entries with the
/// same clock: they run on this machine).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Which part of an operation an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The client sent the request.
    Invoke,
    /// The client got an answer (or gave up).
    Complete,
    /// A fault, a heal, a sample: something that is not a client operation.
    Info,
}

/// Who wrote an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A client that knows the password.
    Honest,
    /// A client that does not.
    Attacker,
    /// The fault injector.
    Nemesis,
    /// The harness watching the cluster (digests, leaders, final state).
    Observer,
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It succeeded.
    Ok,
    /// OPAQUE failed: a wrong password (the client learned it, or the vault said so).
    WrongPassword,
    /// The record was destroyed.
    Destroyed,
    /// No active record.
    NotFound,
    /// The vault refused a replay or a conflicting attempt id.
    Refused,
    /// UNAVAILABLE, a timeout or a transport failure: the operation may or may not have
    /// taken effect.
    Unavailable,
    /// Any other error.
    Error,
}

/// One line of a history. Fields that do not apply are absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Entry {
    /// Position in the history, from 1.
    pub seq: u64,
    /// Wall clock, Unix ms.
    pub t_ms: u64,
    /// Invoke, complete or info.
    pub phase: Option<Phase>,
    /// Links an invoke to its complete (0 for info entries).
    pub op_id: u64,
    /// The client or actor (`honest-2`, `attacker-0`, `nemesis`, `observer`).
    pub client: String,
    /// Its role.
    pub role: Option<Role>,
    /// The operation: `register`, `recover`, `delete`, `status`, `recover_start`,
    /// `recover_login`, `recover_finish`, `replay_finish`; `fault`, `heal`, `fail_closed_begin`,
    /// `fail_closed_end`, `keys_closed_begin`, `keys_closed_end`; `digest`, `leader`,
    /// `final_status`, `note`.
    pub op: String,
    /// The node the request went to (raw clients), or the node a fault concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u64>,
    /// The account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The attempt id (hex), for recovery starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<String>,
    /// SHA-256 of the blinded element a recovery start carried (hex, first 16 bytes): the
    /// vault binds the charge to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_hash: Option<String>,
    /// How it ended (complete entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// The record version answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Guesses remaining, as answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guesses_remaining: Option<u32>,
    /// The record's guess limit, as answered (or asked for at registration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guess_limit: Option<u32>,
    /// Whether something that tests a password or opens a key reached the client: share
    /// evaluations (`recover_start`, `recover`: the client could combine them into the
    /// hardened password of its guess, one password test) or a transported key
    /// (`recover_finish`, `replay_finish`). A `recover_login` answer (an OPAQUE credential
    /// response for an attempt already charged) is no release: without the evaluations it
    /// tests nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub released: bool,
    /// The charge a `RecoverStart` answered (raw clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge: Option<u64>,
    /// The share evaluations a `RecoverStart` answer carried (raw clients): which node made
    /// each, and a fingerprint of what it evaluated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evaluations: Vec<Evaluation>,
    /// Fingerprint of the backup key registered or recovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fp: Option<String>,
    /// Raft applied index (digest samples, final status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_index: Option<u64>,
    /// State digest (digest samples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// A measured duration, ms (`unavailability` entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Nodes a fault concerns, beyond `node`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<u64>,
    /// Free text: an error, a fault's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One share evaluation a client received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The node that made it.
    pub node: u64,
    /// SHA-256 prefix of the evaluated element (hex): one node evaluating one blinded
    /// element always gives the same element, whatever the proof.
    pub element_fp: String,
}

impl Entry {
    /// An entry for `op` by `client` in `role` (the history fills `seq` and `t_ms`).
    pub fn new(role: Role, client: impl Into<String>, op: impl Into<String>) -> Self {
        Self {
            role: Some(role),
            client: client.into(),
            op: op.into(),
            ..Self::default()
        }
    }

    /// With the node.
    pub fn node(mut self, node: u64) -> Self {
        self.node = Some(node);
        self
    }

    /// With the account.
    pub fn account(mut self, account: impl Into<String>) -> Self {
        self.account = Some(account.into());
        self
    }

    /// With free text.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// With the nodes a fault concerns.
    pub fn nodes(mut self, nodes: &[u64]) -> Self {
        self.nodes = nodes.to_vec();
        self
    }

    /// Whether this is the complete entry of a successful operation.
    pub fn is_ok(&self) -> bool {
        self.phase == Some(Phase::Complete) && self.outcome == Some(Outcome::Ok)
    }
}

#[derive(Debug)]
struct Inner {
    entries: Mutex<Vec<Entry>>,
    file: Mutex<Option<File>>,
    path: Option<PathBuf>,
    seq: AtomicU64,
    op_ids: AtomicU64,
}

/// A shared, append-only history. Cheap to clone.
#[derive(Debug, Clone)]
pub struct History(Arc<Inner>);

/// An operation in flight: complete it with [`Op::complete`]; an operation never completed
/// stays open in the history (its effect is unknown).
#[derive(Debug)]
pub struct Op {
    history: History,
    template: Entry,
}

impl History {
    /// A history kept in memory and written to `path` (created or truncated), if given.
    pub fn new(path: Option<&Path>) -> anyhow::Result<Self> {
        let file = match path {
            Some(p) => {
                if let Some(dir) = p.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                Some(File::create(p)?)
            }
            None => None,
        };
        Ok(Self(Arc::new(Inner {
            entries: Mutex::new(Vec::new()),
            file: Mutex::new(file),
            path: path.map(Path::to_path_buf),
            seq: AtomicU64::new(0),
            op_ids: AtomicU64::new(0),
        })))
    }

    /// A history of `entries` (to check a history made by hand or read from a file).
    pub fn from_entries(entries: Vec<Entry>) -> Self {
        let seq = entries.iter().map(|e| e.seq).max().unwrap_or(0);
        let op_ids = entries.iter().map(|e| e.op_id).max().unwrap_or(0);
        Self(Arc::new(Inner {
            entries: Mutex::new(entries),
            file: Mutex::new(None),
            path: None,
            seq: AtomicU64::new(seq),
            op_ids: AtomicU64::new(op_ids),
        }))
    }

    /// Reads a history file written by [`History::new`].
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let mut entries = Vec::new();
        for line in BufReader::new(File::open(path)?).lines() {
            let line = line?;
            if !line.trim().is_empty() {
                entries.push(serde_json::from_str(&line)?);
            }
        }
        Ok(Self::from_entries(entries))
    }

    /// The file the history is written to.
    pub fn path(&self) -> Option<&Path> {
        self.0.path.as_deref()
    }

    /// Appends `entry` now (stamping `seq` and `t_ms`) and returns it as stored.
    pub fn push(&self, mut entry: Entry) -> Entry {
        let mut entries = self
            .0
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        entry.seq = self.0.seq.fetch_add(1, Ordering::Relaxed) + 1;
        if entry.t_ms == 0 {
            entry.t_ms = now_ms();
        }
        if let Some(file) = self
            .0
            .file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            && let Ok(line) = serde_json::to_string(&entry)
        {
            let _ = writeln!(file, "{line}");
        }
        entries.push(entry.clone());
        entry
    }

    /// An `info` entry now.
    pub fn info(&self, mut entry: Entry) -> Entry {
        entry.phase = Some(Phase::Info);
        self.push(entry)
    }

    /// Records the invoke of `entry` and returns the operation to complete.
    pub fn invoke(&self, mut entry: Entry) -> Op {
        entry.phase = Some(Phase::Invoke);
        entry.op_id = self.0.op_ids.fetch_add(1, Ordering::Relaxed) + 1;
        let stored = self.push(entry);
        Op {
            history: self.clone(),
            template: stored,
        }
    }

    /// Every entry so far, in order.
    pub fn entries(&self) -> Vec<Entry> {
        self.0
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Op {
    /// The invoke entry.
    pub fn invoked(&self) -> &Entry {
        &self.template
    }

    /// Records the completion: `fill` sets the outcome and what was answered on a copy of
    /// the invoke entry.
    pub fn complete(self, outcome: Outcome, fill: impl FnOnce(&mut Entry)) -> Entry {
        let mut e = self.template.clone();
        e.phase = Some(Phase::Complete);
        e.outcome = Some(outcome);
        e.t_ms = 0;
        e.detail = None;
        fill(&mut e);
        self.history.push(e)
    }
}

/// A short fingerprint of secret bytes (first 8 bytes of SHA-256, hex): tells two keys apart
/// without revealing them.
pub fn fingerprint(secret: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(secret)[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_writes_json_lines_that_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h/history.jsonl");
        let h = History::new(Some(&path)).unwrap();
        let op = h.invoke(Entry::new(Role::Attacker, "attacker-0", "recover_start").node(2));
        op.complete(Outcome::Ok, |e| {
            e.released = true;
            e.guesses_remaining = Some(4);
        });
        h.info(Entry::new(Role::Nemesis, "nemesis", "fault").detail("partition [1] [2,3]"));
        let back = History::read(&path).unwrap().entries();
        assert_eq!(back, h.entries());
        assert_eq!(back.len(), 3);
        assert_eq!(back[0].op_id, back[1].op_id);
        assert_eq!(back[1].phase, Some(Phase::Complete));
        assert!(back[1].released && back[1].node == Some(2));
        assert_eq!(back[2].seq, 3);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().all(|l| l.starts_with("{\"seq\":")), "{text}");
        assert_ne!(fingerprint(b"a"), fingerprint(b"b"));
        assert_eq!(fingerprint(b"a").len(), 16);
    }
}
