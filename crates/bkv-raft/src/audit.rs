//! Audit records that the state machine emits as it applies the log, and the sink the node
//! hands them to.
//!
//! Every replica emits the same records for the same entries. After a restart a node
//! re-applies the log above its latest snapshot, so records can repeat: the log index
//! identifies a record (with its position among the entry's events) for de-duplication.

use bkv_core::AuditEvent;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::types::NodeId;

/// One audit record: what an applied log entry did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The log index of the entry.
    pub log_index: u64,
    /// The proposer's clock for vault commands (Unix milliseconds); `None` for entries that
    /// carry no clock (membership changes, snapshot installs).
    pub at_unix_ms: Option<u64>,
    /// What happened.
    pub entry: AuditEntry,
}

/// What an audit record is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditEntry {
    /// An event of the vault state machine.
    Vault(AuditEvent),
    /// The cluster membership changed to this configuration.
    Membership {
        /// Voting members (the union of both configurations while a change is joint).
        voters: Vec<NodeId>,
        /// Non-voting members.
        learners: Vec<NodeId>,
    },
    /// The state was replaced by a snapshot from the leader up to `log_index`: the events
    /// of the entries it covers were not seen here.
    SnapshotInstalled,
}

impl AuditEntry {
    /// The record's name as written in audit files.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Vault(e) => e.kind.as_str(),
            Self::Membership { .. } => "membership_changed",
            Self::SnapshotInstalled => "snapshot_installed",
        }
    }
}

/// Where the state machine sends audit records. Called on the apply path: it must not
/// block (hand the record to a channel or a buffer).
pub trait AuditSink: Send + Sync + 'static {
    /// Takes one record.
    fn record(&self, record: AuditRecord);
}

impl AuditSink for mpsc::UnboundedSender<AuditRecord> {
    fn record(&self, record: AuditRecord) {
        // A closed receiver means the node stopped consuming audit records; applying must
        // go on regardless.
        if self.send(record).is_err() {
            tracing::debug!("audit receiver closed; record dropped");
        }
    }
}

/// A sink that drops every record (for tools and tests that do not audit).
#[derive(Debug, Clone, Copy, Default)]
pub struct DiscardAudit;

impl AuditSink for DiscardAudit {
    fn record(&self, _record: AuditRecord) {}
}
