//! [`Batcher`]: group commit on the leader. Vault commands that arrive while earlier log
//! entries are still being written are proposed together, several commands per log entry.
//!
//! # Why
//!
//! openraft 0.9 appends each `client_write` as its own log entry, and the log store flushes
//! sled before it acknowledges an append: one flush per command. Under load that flush, not
//! the vault's work, limited the leader (docs/benchmarks-history.md §3). The batcher keeps at
//! most [`BatchOptions::entries_in_flight`] entries in Raft at a time; whatever arrives
//! meanwhile waits and goes into the next entry, up to [`BatchOptions::max_commands`]
//! commands and [`MAX_ENTRY_BYTES`] bytes. With one client nothing waits: a command that
//! finds a free slot is proposed at once, alone.
//!
//! # Safety
//!
//! Each command in an entry is applied in order at its own position (see
//! [`command_position`](crate::types::command_position)), exactly as if it had its own
//! entry, and gets its own outcome. A failed `client_write` (not the leader, shutting down)
//! fails every command of the entry the same way, and the writer's usual retry applies: every
//! command is idempotent by its ids (see [`crate::writer`]). A command whose caller has
//! given up (its deadline passed) before it was proposed is dropped, not proposed.

use std::sync::Arc;
use std::time::Duration;

use bkv_core::clock::now_unix_ms;
use bkv_core::{Outcome, Request};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::MAX_FORWARD_REQUEST_BYTES;
use super::error::{ProposeError, WriteError};
use super::leader::LeaderHint;
use crate::types::{BkvRaft, POSITIONS_PER_ENTRY, Proposal};

/// The most commands one log entry may carry.
pub const MAX_COMMANDS_PER_ENTRY: usize = 256;
/// Most encoded bytes of the commands of one log entry (a single command may be as large).
pub const MAX_ENTRY_BYTES: usize = MAX_FORWARD_REQUEST_BYTES;
/// The most entries the batcher may keep in flight.
pub const MAX_ENTRIES_IN_FLIGHT: usize = 64;

const _: () = assert!(MAX_COMMANDS_PER_ENTRY as u64 <= POSITIONS_PER_ENTRY);

/// How the batcher groups commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Commands per log entry, at most (1 turns batching off; clamped to
    /// 1..=[`MAX_COMMANDS_PER_ENTRY`]).
    pub max_commands: usize,
    /// Entries proposed and not yet applied, at most (clamped to
    /// 1..=[`MAX_ENTRIES_IN_FLIGHT`]).
    pub entries_in_flight: usize,
}

impl Default for BatchOptions {
    /// 256 commands per entry, 2 entries in flight: one is written to the leader's disk
    /// while the next is replicated; more entries would only queue inside Raft, each with
    /// its own flush.
    fn default() -> Self {
        Self {
            max_commands: MAX_COMMANDS_PER_ENTRY,
            entries_in_flight: 2,
        }
    }
}

/// A committed and applied write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The log index of the entry the command was applied in (an entry may carry several
    /// commands).
    pub log_index: u64,
    /// What the state machine answered.
    pub outcome: Outcome,
}

/// Why a command of a proposed entry got no outcome. Large because openraft's error is; one
/// is built per command of an entry that already failed.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
enum Refused {
    /// Raft refused or failed the entry.
    Raft(ProposeError),
    /// The entry was applied but did not answer one outcome per command (a bug).
    Outcomes { sent: usize, got: usize },
}

struct Pending {
    request: Request,
    len: usize,
    reply: oneshot::Sender<Result<Written, Refused>>,
}

/// The leader's group-commit queue. Cheap to clone; the task behind it ends when the last
/// clone is dropped.
#[derive(Clone)]
pub struct Batcher {
    queue: mpsc::UnboundedSender<Pending>,
    raft: BkvRaft,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl Batcher {
    /// Starts the batching task of `raft` (on the current tokio runtime).
    pub fn start(raft: BkvRaft, options: BatchOptions) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(raft.clone(), rx, options));
        Self { queue, raft }
    }

    /// Proposes `request` (whose encoding is `len` bytes) in the next entry and waits, at
    /// most `timeout`, until it is applied. Fails with [`WriteError::NoLeader`] when this
    /// node does not lead, [`WriteError::NoQuorum`] when the entry is not applied in time,
    /// and otherwise with what Raft failed the entry with.
    pub async fn commit(
        &self,
        request: Request,
        len: usize,
        timeout: Duration,
    ) -> Result<Written, WriteError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || WriteError::Stopped;
        self.queue
            .send(Pending {
                request,
                len,
                reply,
            })
            .map_err(|_| stopped())?;
        match tokio::time::timeout(timeout, answer).await {
            Err(_) => Err(WriteError::NoQuorum(LeaderHint::of(&self.raft))),
            Ok(Err(_)) => Err(stopped()),
            Ok(Ok(Ok(written))) => Ok(written),
            Ok(Ok(Err(Refused::Raft(e)))) => Err(WriteError::from_commit(e)),
            Ok(Ok(Err(Refused::Outcomes { sent, got }))) => Err(WriteError::BadAnswer(format!(
                "the entry was applied with {got} outcomes for {sent} commands"
            ))),
        }
    }
}

async fn run(raft: BkvRaft, mut queue: mpsc::UnboundedReceiver<Pending>, options: BatchOptions) {
    let max_commands = options.max_commands.clamp(1, MAX_COMMANDS_PER_ENTRY);
    let in_flight = options.entries_in_flight.clamp(1, MAX_ENTRIES_IN_FLIGHT);
    let in_flight = Arc::new(Semaphore::new(in_flight));
    let mut carried: Option<Pending> = None;
    loop {
        let first = match carried.take() {
            Some(p) => p,
            None => match queue.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        // While the entries in flight are written and replicated, commands queue up.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::new();
        let mut bytes = 0;
        let mut next = Some(first);
        while let Some(p) = next.take() {
            if !p.reply.is_closed() {
                if !batch.is_empty() && bytes + p.len > MAX_ENTRY_BYTES {
                    carried = Some(p);
                    break;
                }
                bytes += p.len;
                batch.push(p);
            }
            if batch.len() < max_commands {
                next = queue.try_recv().ok();
            }
        }
        if batch.is_empty() {
            continue;
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            propose(&raft, batch).await;
            drop(permit);
        });
    }
}

async fn propose(raft: &BkvRaft, batch: Vec<Pending>) {
    // The leader's clock stamps the entry (audit times, the versions of records staged), so
    // that within a term they follow one clock and not each proposing node's.
    let now = now_unix_ms();
    let (requests, replies): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|p| {
            let mut request = p.request;
            request.at_unix_ms = now;
            (request, p.reply)
        })
        .unzip();
    let sent = requests.len();
    match raft.client_write(Proposal { requests }).await {
        Ok(resp) => {
            let got = resp.data.outcomes.len();
            if got != sent {
                for reply in replies {
                    let _ = reply.send(Err(Refused::Outcomes { sent, got }));
                }
                return;
            }
            let log_index = resp.log_id.index;
            for (reply, outcome) in replies.into_iter().zip(resp.data.outcomes) {
                let _ = reply.send(Ok(Written { log_index, outcome }));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(Refused::Raft(e.clone())));
            }
        }
    }
}
