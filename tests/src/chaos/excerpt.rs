//! The part of a history that broke an invariant, printed when a chaos run fails so that CI's
//! output holds it (the whole history stays in the run's evidence dir): every entry a
//! violation cites (`history seq N`), the invoke of its operation, and the nemesis's entries
//! (faults, heals, fail-closed windows) from a few seconds before it to its end.

use std::collections::BTreeSet;

use super::check::Verdict;
use super::history::{Entry, Role};

/// How far before a cited operation the nemesis's entries are shown, ms.
const CONTEXT_MS: u64 = 5_000;
/// Most lines printed.
const MAX_LINES: usize = 80;

/// The history sequence numbers cited by `text` (`... seq 123 ...`).
fn cited(text: &str) -> Vec<u64> {
    text.match_indices("seq ")
        .filter_map(|(i, m)| {
            let digits: String = text[i + m.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .collect()
}

/// The excerpt of `entries` for the violations of `verdicts`, as JSON lines under a header;
/// empty if every verdict passed.
pub fn excerpt(entries: &[Entry], verdicts: &[Verdict]) -> String {
    let violations: Vec<&String> = verdicts.iter().flat_map(|v| &v.violations).collect();
    if violations.is_empty() {
        return String::new();
    }
    let seqs: BTreeSet<u64> = violations.iter().flat_map(|v| cited(v)).collect();
    let mut keep: BTreeSet<u64> = BTreeSet::new();
    for e in entries.iter().filter(|e| seqs.contains(&e.seq)) {
        keep.insert(e.seq);
        let op = e.op_id;
        let (mut from, mut to) = (e.t_ms, e.t_ms);
        for other in entries.iter().filter(|o| op != 0 && o.op_id == op) {
            keep.insert(other.seq);
            from = from.min(other.t_ms);
            to = to.max(other.t_ms);
        }
        for n in entries.iter().filter(|n| {
            n.role == Some(Role::Nemesis) && n.t_ms + CONTEXT_MS >= from && n.t_ms <= to
        }) {
            keep.insert(n.seq);
        }
    }
    let mut out = format!(
        "---- history excerpt: {} cited entries, their operations and the faults around them \
         ----\n",
        seqs.len()
    );
    if keep.is_empty() {
        out.push_str("(the violations cite no history entry: see the verdicts above)\n");
    }
    let lines: Vec<String> = entries
        .iter()
        .filter(|e| keep.contains(&e.seq))
        .filter_map(|e| serde_json::to_string(e).ok())
        .collect();
    for l in lines.iter().take(MAX_LINES) {
        out.push_str(l);
        out.push('\n');
    }
    if lines.len() > MAX_LINES {
        out.push_str(&format!(
            "... {} more lines (the whole history is in the evidence dir)\n",
            lines.len() - MAX_LINES
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::history::{History, Outcome};

    #[test]
    fn the_excerpt_shows_the_cited_operation_and_the_faults_before_it() {
        let h = History::new(None).unwrap();
        h.info(Entry::new(Role::Nemesis, "nemesis", "fault").detail("isolate 2"));
        let op = h.invoke(Entry::new(Role::Attacker, "attacker-0", "recover_start").node(2));
        let done = op.complete(Outcome::Ok, |e| e.released = true);
        h.info(Entry::new(Role::Observer, "observer", "digest"));
        let mut v = Verdict {
            name: "fail_closed",
            ..Verdict::default()
        };
        assert!(excerpt(&h.entries(), std::slice::from_ref(&v)).is_empty());
        v.violations.push(format!(
            "node 2 released something (history seq {})",
            done.seq
        ));
        let text = excerpt(&h.entries(), &[v]);
        assert!(text.contains("isolate 2"), "{text}");
        assert_eq!(text.matches("recover_start").count(), 2, "{text}");
        assert!(!text.contains("digest"), "{text}");
        assert_eq!(cited("seq 12 and history seq 7, seq x"), vec![12, 7]);
    }
}
