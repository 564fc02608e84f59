//! The nodes' audit files (`<data_dir>/audit.jsonl`) as the checkers read them: what each
//! replica applied, entry by entry. Every replica writes the same events for the same log
//! index (accounts hashed under a cluster key, so the same hash on every node); a node that
//! installed a snapshot lacks the events the snapshot covers, so the checkers merge the files
//! of all nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// One line of an audit file (the node's `AuditLine`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AuditLine {
    /// Position in the node's file.
    pub seq: u64,
    /// Raft log index of the entry.
    pub log_index: u64,
    /// Proposer's clock, Unix ms (0 for entries without one).
    pub at_unix_ms: u64,
    /// `registered`, `activated`, `guess_charged`, `recovered`, `deleted`, `destroyed`,
    /// `bootstrapped`, `membership_changed`, `snapshot_installed`.
    pub kind: String,
    /// Keyed hash of the account.
    #[serde(default)]
    pub account: String,
    /// Record version.
    #[serde(default)]
    pub version: Option<u64>,
    /// Charge number.
    #[serde(default)]
    pub charge: Option<u64>,
    /// Guesses remaining after the event.
    #[serde(default)]
    pub guesses_remaining: Option<u32>,
    /// Voters (membership changes).
    #[serde(default)]
    pub voters: Option<Vec<u64>>,
    /// Learners (membership changes).
    #[serde(default)]
    pub learners: Option<Vec<u64>>,
}

impl AuditLine {
    /// The line without its node-local position, for comparing replicas.
    fn event(&self) -> AuditLine {
        AuditLine {
            seq: 0,
            ..self.clone()
        }
    }
}

/// The audit files of a cluster's nodes.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    /// Lines of each node's file, in file order, without `records_dropped` markers.
    pub nodes: BTreeMap<u64, Vec<AuditLine>>,
    /// Nodes whose file has a `records_dropped` marker: their audit queue was full and they
    /// dropped events (the bounded queue's designed behaviour), so their files may lack
    /// events, never hold different ones.
    pub dropped: BTreeSet<u64>,
}

impl Audit {
    /// Reads `<cluster dir>/data/node<N>/audit.jsonl` of every node that has one (removed
    /// nodes included). Torn last lines are skipped.
    pub fn read(cluster_dir: &Path) -> anyhow::Result<Self> {
        let mut nodes = BTreeMap::new();
        let mut dropped = BTreeSet::new();
        let data = cluster_dir.join("data");
        let Ok(entries) = std::fs::read_dir(&data) else {
            return Ok(Self { nodes, dropped });
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name
                .strip_prefix("node")
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            let path = e.path().join("audit.jsonl");
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let mut lines: Vec<AuditLine> = text
                .lines()
                .filter_map(|l| serde_json::from_str::<AuditLine>(l).ok())
                .collect();
            let before = lines.len();
            lines.retain(|l| l.kind != "records_dropped");
            if lines.len() != before {
                dropped.insert(id);
            }
            nodes.insert(id, lines);
        }
        Ok(Self { nodes, dropped })
    }

    /// Each node's events by log index, leaving out what is local to the node: a
    /// `snapshot_installed` line and the membership line written with it.
    pub fn by_index(&self) -> BTreeMap<u64, BTreeMap<u64, Vec<AuditLine>>> {
        let mut out: BTreeMap<u64, BTreeMap<u64, Vec<AuditLine>>> = BTreeMap::new();
        for (node, lines) in &self.nodes {
            let mut skip_membership_at = None;
            for l in lines {
                if l.kind == "snapshot_installed" {
                    skip_membership_at = Some(l.log_index);
                    continue;
                }
                if l.kind == "membership_changed" && skip_membership_at == Some(l.log_index) {
                    skip_membership_at = None;
                    continue;
                }
                skip_membership_at = None;
                out.entry(l.log_index)
                    .or_default()
                    .entry(*node)
                    .or_default()
                    .push(l.event());
            }
        }
        out
    }

    /// The committed history as one sequence: for each log index, the events of the node
    /// that wrote the most there (a node may have lost lines; replica agreement is checked
    /// separately).
    pub fn merged(&self) -> Vec<AuditLine> {
        let mut out = Vec::new();
        for per_node in self.by_index().into_values() {
            if let Some(events) = per_node.into_values().max_by_key(Vec::len) {
                out.extend(events);
            }
        }
        out
    }

    /// Log indexes at which two nodes wrote different events: `(index, description)`.
    pub fn disagreements(&self) -> Vec<(u64, String)> {
        self.disagreements_allowing_gaps(&BTreeSet::new()).1
    }

    /// [`Self::disagreements`], except that a node of `gappy` (nodes whose disk was made
    /// full: their audit appends failed) may lack some of the events the others wrote at an
    /// index; returns how many indexes had such a gap, and the disagreements.
    pub fn disagreements_allowing_gaps(&self, gappy: &BTreeSet<u64>) -> (u64, Vec<(u64, String)>) {
        let mut out = Vec::new();
        let mut gaps = 0;
        for (index, per_node) in self.by_index() {
            // The node with the most events at this index is the reference.
            let Some((first_node, first)) = per_node.iter().max_by_key(|(_, e)| e.len()) else {
                continue;
            };
            for (node, events) in per_node.iter().filter(|(n, _)| *n != first_node) {
                if events != first && gappy.contains(node) && is_part_of(events, first) {
                    gaps += 1;
                    continue;
                }
                if events != first {
                    out.push((
                        index,
                        format!(
                            "node {first_node} wrote {} and node {node} wrote {} at log index \
                             {index}",
                            describe(first),
                            describe(events)
                        ),
                    ));
                }
            }
        }
        (gaps, out)
    }

    /// Number of log indexes that at least two nodes wrote (what agreement was checked on).
    pub fn shared_indexes(&self) -> usize {
        self.by_index().values().filter(|n| n.len() >= 2).count()
    }
}

/// Whether every event of `part` is among `whole` (each counted once).
fn is_part_of(part: &[AuditLine], whole: &[AuditLine]) -> bool {
    let mut rest: Vec<&AuditLine> = whole.iter().collect();
    part.iter().all(|e| {
        rest.iter()
            .position(|w| *w == e)
            .map(|i| rest.remove(i))
            .is_some()
    })
}

fn describe(events: &[AuditLine]) -> String {
    let parts: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{}(v={:?},c={:?},r={:?})",
                e.kind, e.version, e.charge, e.guesses_remaining
            )
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(index: u64, kind: &str, charge: u64) -> AuditLine {
        AuditLine {
            log_index: index,
            kind: kind.into(),
            version: Some(1000),
            charge: Some(charge),
            ..AuditLine::default()
        }
    }

    #[test]
    fn a_full_disk_may_lose_lines_but_never_change_them() {
        let whole = vec![line(7, "guess_charged", 3), line(7, "recovered", 3)];
        let mut audit = Audit::default();
        audit.nodes.insert(1, whole.clone());
        audit.nodes.insert(2, whole[..1].to_vec());
        // Node 2 lost a line: a disagreement, unless its disk was made full.
        assert_eq!(audit.disagreements().len(), 1);
        let full = BTreeSet::from([2]);
        assert_eq!(audit.disagreements_allowing_gaps(&full), (1, Vec::new()));
        // The committed history keeps the complete index.
        assert_eq!(audit.merged().len(), 2);
        // A different line is a disagreement even on a full node.
        audit.nodes.insert(2, vec![line(7, "guess_charged", 4)]);
        assert_eq!(audit.disagreements_allowing_gaps(&full).1.len(), 1);
    }
}
