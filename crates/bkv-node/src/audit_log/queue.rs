//! [`AuditQueue`]: the sink the state machine hands audit records to. It never blocks the
//! apply path and never holds more than [`QUEUE_RECORDS`] records.
//!
//! Records the file already holds (entries re-applied after a restart) are recognised here,
//! by log index and position among the entry's records, and never queued. When the queue is
//! full (the writer is waiting for the audit key, which a node learns only once it has
//! unsealed the server setup, or the disk stalls) records are dropped, counted, and the
//! writer is told with one `records_dropped` marker in their place, so the file says what it
//! lacks instead of the node's memory growing without bound.

use std::sync::Mutex;

use bkv_raft::{AuditRecord, AuditSink};
use tokio::sync::mpsc;

use super::{AuditLine, RECORDS_DROPPED};
use crate::metrics::Metrics;

/// Records the queue holds at most (about 160 bytes each in memory: some 20 MiB).
pub const QUEUE_RECORDS: usize = 131_072;

/// A run of records dropped in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// Records dropped.
    pub count: u64,
    /// Log index of the first one.
    pub first_log_index: u64,
    /// Log index of the last one.
    pub last_log_index: u64,
    /// How many of them belong to the entry at `last_log_index` (for resuming after a
    /// restart: the file has handled that many of the entry's records).
    pub at_last_log_index: u64,
}

impl Dropped {
    fn first(log_index: u64) -> Self {
        Self {
            count: 1,
            first_log_index: log_index,
            last_log_index: log_index,
            at_last_log_index: 1,
        }
    }

    fn add(&mut self, log_index: u64) {
        self.add_run(1, log_index, log_index, 1);
    }

    /// Adds a later run: `count` records from `first` to `last`, `at_last` of them at `last`.
    fn add_run(&mut self, count: u64, first: u64, last: u64, at_last: u64) {
        self.count += count;
        self.first_log_index = self.first_log_index.min(first);
        if last == self.last_log_index {
            self.at_last_log_index += at_last;
        } else {
            self.last_log_index = last;
            self.at_last_log_index = at_last;
        }
    }

    /// Adds what `line` stands for (a record, or a marker's run) to `dropped`.
    pub fn absorb(dropped: &mut Option<Self>, line: &AuditLine) {
        let (count, first, at_last) = if line.kind == RECORDS_DROPPED {
            (
                line.dropped.unwrap_or(0),
                line.first_log_index.unwrap_or(line.log_index),
                line.dropped_at_log_index.unwrap_or(0),
            )
        } else {
            (1, line.log_index, 1)
        };
        match dropped {
            Some(d) => d.add_run(count, first, line.log_index, at_last),
            None => {
                *dropped = Some(Self {
                    count,
                    first_log_index: first,
                    last_log_index: line.log_index,
                    at_last_log_index: at_last,
                })
            }
        }
    }
}

/// What the queue carries to the writer.
#[derive(Debug)]
pub enum Queued {
    /// A record to write.
    Record(AuditRecord),
    /// Records dropped here, in this place of the sequence.
    Dropped(Dropped),
}

/// Where the file stands: the last log index it has records of, and how many of that entry's
/// records it has handled (written or marked dropped).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Log index of the newest record handled.
    pub last_index: u64,
    /// Records of that entry handled.
    pub handled_at_last: u64,
}

#[derive(Debug)]
struct State {
    /// Where the file stood at start: records up to here are already in it.
    resume: Position,
    /// The entry being applied and how many of its records were seen.
    current_index: u64,
    seen_at_index: u64,
    /// Records dropped since the last marker went into the queue.
    dropped: Option<Dropped>,
}

/// The sink handed to the state machine.
#[derive(Debug)]
pub struct AuditQueue {
    tx: mpsc::Sender<Queued>,
    state: Mutex<State>,
    metrics: Option<Metrics>,
}

impl AuditQueue {
    /// A queue into `tx` for a file that stood at `resume` at start.
    pub fn new(tx: mpsc::Sender<Queued>, resume: Position, metrics: Option<Metrics>) -> Self {
        Self {
            tx,
            state: Mutex::new(State {
                resume,
                current_index: 0,
                seen_at_index: 0,
                dropped: None,
            }),
            metrics,
        }
    }

    fn drop_record(&self, state: &mut State, log_index: u64) {
        match &mut state.dropped {
            Some(d) => d.add(log_index),
            None => {
                tracing::warn!(
                    log_index,
                    "audit queue full ({QUEUE_RECORDS} records): dropping audit records until \
                     the writer catches up; the file gets a records_dropped line in their place"
                );
                state.dropped = Some(Dropped::first(log_index));
            }
        }
        if let Some(m) = &self.metrics {
            m.audit_records_dropped(1);
        }
    }
}

impl AuditSink for AuditQueue {
    fn record(&self, record: AuditRecord) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let state = &mut *state;
        if record.log_index != state.current_index {
            state.current_index = record.log_index;
            state.seen_at_index = 0;
        }
        state.seen_at_index += 1;
        // Skip what the file already holds (entries re-applied after a restart).
        let resume = state.resume;
        if record.log_index < resume.last_index
            || (record.log_index == resume.last_index
                && state.seen_at_index <= resume.handled_at_last)
        {
            return;
        }
        // A pending marker goes first, so that it keeps its place in the sequence.
        if let Some(dropped) = state.dropped {
            match self.tx.try_send(Queued::Dropped(dropped)) {
                Ok(()) => state.dropped = None,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.drop_record(state, record.log_index);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
        match self.tx.try_send(Queued::Record(record)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(Queued::Record(r))) => {
                self.drop_record(state, r.log_index);
            }
            Err(_) => tracing::debug!("audit writer stopped; record dropped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use bkv_raft::AuditEntry;

    use super::*;

    fn record(log_index: u64) -> AuditRecord {
        AuditRecord {
            log_index,
            at_unix_ms: None,
            entry: AuditEntry::SnapshotInstalled,
        }
    }

    fn drain(rx: &mut mpsc::Receiver<Queued>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(q) = rx.try_recv() {
            out.push(match q {
                Queued::Record(r) => format!("r{}", r.log_index),
                Queued::Dropped(d) => format!(
                    "dropped {} ({}..={}, {} at the last)",
                    d.count, d.first_log_index, d.last_log_index, d.at_last_log_index
                ),
            });
        }
        out
    }

    #[test]
    fn records_the_file_holds_are_not_queued_again() {
        let (tx, mut rx) = mpsc::channel(16);
        // The file has entry 4's first two records.
        let q = AuditQueue::new(
            tx,
            Position {
                last_index: 4,
                handled_at_last: 2,
            },
            None,
        );
        for i in [3, 3, 4, 4, 4, 5] {
            q.record(record(i));
        }
        assert_eq!(drain(&mut rx), ["r4", "r5"]);
    }

    #[test]
    fn a_full_queue_drops_and_marks_the_gap_in_its_place() {
        let (tx, mut rx) = mpsc::channel(2);
        let q = AuditQueue::new(tx, Position::default(), None);
        for i in [1, 2, 3, 3, 4] {
            q.record(record(i));
        }
        // Room for two; 3, 3 and 4 are dropped.
        assert_eq!(drain(&mut rx), ["r1", "r2"]);
        q.record(record(5));
        q.record(record(6));
        assert_eq!(
            drain(&mut rx),
            ["dropped 3 (3..=4, 1 at the last)", "r5"],
            "the marker first, then what came after"
        );
        // 6 found the queue full (the marker and 5) and was dropped: a new marker, before
        // the next record.
        q.record(record(7));
        assert_eq!(drain(&mut rx), ["dropped 1 (6..=6, 1 at the last)", "r7"]);
    }
}
