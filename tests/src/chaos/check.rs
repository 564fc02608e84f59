//! The checkers of a chaos run. Each reads the [`History`] (and, where it needs the truth of
//! what was committed, the nodes' [`Audit`] files) and returns a [`Verdict`]: what it checked,
//! and every violation with enough detail to find it in the history.
//!
//! - [`guess_bound`]: per record version, every password test an attacker received (a
//!   `RecoverStart` answered with share evaluations, which combine into the hardened password
//!   of its guess) maps to a distinct committed charge; between two effective resets the
//!   committed charges never exceed the guess limit; between honest recoveries the
//!   attackers' distinct password tests never exceed it either; no attacker ever gets a
//!   transported key; nothing is released on a destroyed version.
//! - [`share_evaluations`]: no node evaluates a share without its own applied charge, and at
//!   most once per charged attempt: every share evaluation a client received (raw
//!   `RecoverStart` answers name the node of each) is for a committed charge that the
//!   evaluating node's own audit file shows applied (or a snapshot it installed covers);
//!   one node answers one charge for one attempt and one blinded element only (the same
//!   evaluated element every time), and one charge belongs to one attempt on every node.
//! - [`no_lost_writes`]: what honest clients were told was done (registration, deletion) is
//!   what every node holds at the end.
//! - [`replicas_agree`]: equal state digests at equal applied index, and equal audit events
//!   at equal log index.
//! - [`fail_closed`]: a node declared cut off or broken releases nothing while it is (a node
//!   whose HSM fails: no login and no key).
//! - [`no_plaintext`]: canaries in no file (raw, hex, base64), see [`super::canary`].
//! - [`liveness`]: after the last heal, within a bound, a leader and every honest operation
//!   succeeds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use super::audit::{Audit, AuditLine};
use super::canary;
use super::history::{Entry, History, Outcome, Phase, Role};

/// What a checker found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The checker's name.
    pub name: &'static str,
    /// How many things it checked (operations, charges, samples, files...).
    pub checked: u64,
    /// Figures worth printing (`releases`, `beyond_limit`, ...).
    pub figures: BTreeMap<&'static str, u64>,
    /// Every violation found.
    pub violations: Vec<String>,
}

impl Verdict {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            ..Self::default()
        }
    }

    /// Whether the rule held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    fn fail(&mut self, v: impl Into<String>) {
        self.violations.push(v.into());
    }

    /// One line: name, checked, figures, violations (the first few).
    pub fn summary(&self) -> String {
        let figures: Vec<String> = self
            .figures
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut s = format!(
            "{}: {} ({} checked{}{})",
            self.name,
            if self.passed() { "ok" } else { "VIOLATED" },
            self.checked,
            if figures.is_empty() { "" } else { ", " },
            figures.join(", ")
        );
        for v in self.violations.iter().take(10) {
            s.push_str(&format!("\n  - {v}"));
        }
        if self.violations.len() > 10 {
            s.push_str(&format!("\n  - ... {} more", self.violations.len() - 10));
        }
        s
    }
}

/// Slack allowed between the history's clock and the nodes' entry stamps (same machine,
/// millisecond rounding).
const CLOCK_SLACK_MS: u64 = 3;

/// A password test received (evaluations of a blinded element), keyed so that retries of the same attempt with the same
/// bytes (which must get the same charge back) count once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ReleaseKey {
    version: u64,
    who: String,
    remaining: u32,
}

#[derive(Debug, Clone)]
struct Release {
    key: ReleaseKey,
    attacker: bool,
    /// Earliest invoke of any operation that could have committed this charge.
    from_ms: u64,
    /// Latest completion that received it.
    to_ms: u64,
    limit: Option<u32>,
    first_seq: u64,
    node: Option<u64>,
}

#[derive(Debug, Clone)]
struct Charge {
    remaining: u32,
    at_ms: u64,
    epoch: u64,
}

/// Invoke time of each operation, by op id.
fn invokes(entries: &[Entry]) -> BTreeMap<u64, &Entry> {
    entries
        .iter()
        .filter(|e| e.phase == Some(Phase::Invoke))
        .map(|e| (e.op_id, e))
        .collect()
}

/// The password tests clients received, merged per attempt (and blinded element).
fn releases(entries: &[Entry]) -> Vec<Release> {
    let inv = invokes(entries);
    // Earliest invoke per (attempt, request): a failed send may have committed the charge.
    let mut first_invoke: BTreeMap<(String, String), u64> = BTreeMap::new();
    for e in inv.values() {
        if let (Some(a), Some(r)) = (&e.attempt, &e.request_hash) {
            let t = first_invoke.entry((a.clone(), r.clone())).or_insert(e.t_ms);
            *t = (*t).min(e.t_ms);
        }
    }
    let mut out: BTreeMap<ReleaseKey, Release> = BTreeMap::new();
    for e in entries {
        let start = matches!(e.op.as_str(), "recover_start" | "recover");
        if e.phase != Some(Phase::Complete) || !e.released || !start {
            continue;
        }
        let (Some(version), Some(remaining)) = (e.version, e.guesses_remaining) else {
            continue;
        };
        let invoked = inv.get(&e.op_id).map_or(e.t_ms, |i| i.t_ms);
        let (who, from) = match (&e.attempt, &e.request_hash) {
            (Some(a), Some(r)) => (
                format!("attempt {a} request {r}"),
                first_invoke
                    .get(&(a.clone(), r.clone()))
                    .copied()
                    .unwrap_or(invoked),
            ),
            _ => (format!("{} op {}", e.client, e.op_id), invoked),
        };
        let key = ReleaseKey {
            version,
            who,
            remaining,
        };
        let attacker = e.role == Some(Role::Attacker);
        out.entry(key.clone())
            .and_modify(|r| {
                r.from_ms = r.from_ms.min(from);
                r.to_ms = r.to_ms.max(e.t_ms);
            })
            .or_insert(Release {
                key,
                attacker,
                from_ms: from,
                to_ms: e.t_ms,
                limit: e.guess_limit,
                first_seq: e.seq,
                node: e.node,
            });
    }
    out.into_values().collect()
}

/// Replays the committed events of each version (log order), checking the counter rules,
/// and returns the charges with the epoch (number of effective resets before them).
fn committed_charges(audit: &[AuditLine], v: &mut Verdict) -> BTreeMap<u64, Vec<Charge>> {
    #[derive(Default)]
    struct Rec {
        limit: u32,
        used: u32,
        last: u64,
        epoch: u64,
        destroyed: bool,
    }
    let mut recs: BTreeMap<u64, Rec> = BTreeMap::new();
    let mut out: BTreeMap<u64, Vec<Charge>> = BTreeMap::new();
    for l in audit {
        let Some(version) = l.version else { continue };
        match l.kind.as_str() {
            "activated" => {
                let rec = recs.entry(version).or_default();
                rec.limit = l.guesses_remaining.unwrap_or(0);
            }
            "guess_charged" => {
                let rec = recs.entry(version).or_default();
                let charge = l.charge.unwrap_or(0);
                if rec.destroyed {
                    v.fail(format!(
                        "version {version}: charge {charge} committed at log index {} after \
                         the record was destroyed",
                        l.log_index
                    ));
                }
                if charge != rec.last + 1 {
                    v.fail(format!(
                        "version {version}: charge {charge} at log index {} follows charge {}",
                        l.log_index, rec.last
                    ));
                }
                rec.last = charge;
                rec.used += 1;
                if rec.used > rec.limit {
                    v.fail(format!(
                        "version {version}: {} charges committed since the last reset, limit {} \
                         (charge {charge} at log index {})",
                        rec.used, rec.limit, l.log_index
                    ));
                }
                let expected = rec.limit.saturating_sub(rec.used);
                if l.guesses_remaining != Some(expected) {
                    v.fail(format!(
                        "version {version}: charge {charge} says {:?} guesses remain, the \
                         committed history says {expected}",
                        l.guesses_remaining
                    ));
                }
                out.entry(version).or_default().push(Charge {
                    remaining: l.guesses_remaining.unwrap_or(0),
                    at_ms: l.at_unix_ms,
                    epoch: rec.epoch,
                });
            }
            "recovered" => {
                let rec = recs.entry(version).or_default();
                let charge = l.charge.unwrap_or(0);
                if charge > 0 && charge == rec.last && rec.used > 0 {
                    rec.used = 0;
                    rec.epoch += 1;
                }
                let expected = rec.limit.saturating_sub(rec.used);
                if l.guesses_remaining != Some(expected) {
                    v.fail(format!(
                        "version {version}: reset under charge {charge} at log index {} leaves \
                         {:?} guesses, the committed history says {expected}",
                        l.log_index, l.guesses_remaining
                    ));
                }
            }
            "destroyed" => {
                recs.entry(version).or_default().destroyed = true;
            }
            _ => {}
        }
    }
    out
}

/// Kuhn's augmenting paths: matches each release to a distinct candidate charge.
fn match_releases(candidates: &[Vec<usize>], n_charges: usize) -> Vec<Option<usize>> {
    fn augment(
        r: usize,
        candidates: &[Vec<usize>],
        seen: &mut [bool],
        owner: &mut [Option<usize>],
    ) -> bool {
        for &c in &candidates[r] {
            if seen[c] {
                continue;
            }
            seen[c] = true;
            if owner[c].is_none_or(|o| augment(o, candidates, seen, owner)) {
                owner[c] = Some(r);
                return true;
            }
        }
        false
    }
    let mut owner: Vec<Option<usize>> = vec![None; n_charges];
    for r in 0..candidates.len() {
        let mut seen = vec![false; n_charges];
        augment(r, candidates, &mut seen, &mut owner);
    }
    let mut matched = vec![None; candidates.len()];
    for (c, o) in owner.iter().enumerate() {
        if let Some(r) = o {
            matched[*r] = Some(c);
        }
    }
    matched
}

/// The guess bound. See the module documentation.
pub fn guess_bound(history: &History, audit: &Audit) -> Verdict {
    let mut v = Verdict::new("guess_bound");
    let entries = history.entries();
    let merged = audit.merged();
    let charges = committed_charges(&merged, &mut v);
    let releases = releases(&entries);
    v.checked = releases.len() as u64 + charges.values().map(|c| c.len() as u64).sum::<u64>();
    v.figures.insert("releases", releases.len() as u64);
    v.figures.insert(
        "attacker_releases",
        releases.iter().filter(|r| r.attacker).count() as u64,
    );
    v.figures.insert(
        "committed_charges",
        charges.values().map(|c| c.len() as u64).sum(),
    );

    // 1. Every release maps to a distinct committed charge of its version, stamped within
    //    the release's window and leaving the guesses it reported.
    let mut per_epoch: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    let mut limits: BTreeMap<u64, u32> = BTreeMap::new();
    let by_version: BTreeMap<u64, Vec<&Release>> =
        releases.iter().fold(BTreeMap::new(), |mut m, r| {
            m.entry(r.key.version).or_insert_with(Vec::new).push(r);
            m
        });
    let no_charges = Vec::new();
    for (version, rs) in &by_version {
        let cs = charges.get(version).unwrap_or(&no_charges);
        let candidates: Vec<Vec<usize>> = rs
            .iter()
            .map(|r| {
                cs.iter()
                    .enumerate()
                    .filter(|(_, c)| {
                        c.remaining == r.key.remaining
                            && c.at_ms + CLOCK_SLACK_MS >= r.from_ms
                            && c.at_ms <= r.to_ms + CLOCK_SLACK_MS
                    })
                    .map(|(i, _)| i)
                    .collect()
            })
            .collect();
        let matched = match_releases(&candidates, cs.len());
        for (r, m) in rs.iter().zip(&matched) {
            if let Some(limit) = r.limit {
                limits.insert(*version, limit);
            }
            match m {
                Some(c) if r.attacker => {
                    *per_epoch.entry((*version, cs[*c].epoch)).or_default() += 1;
                }
                Some(_) => {}
                None => v.fail(format!(
                    "version {version}: {} ({}) received evaluations (a password test) with {} \
                     guesses remaining on node {:?} between {} and {} ms (history seq {}) that maps to \
                     no distinct committed charge",
                    r.key.who,
                    if r.attacker { "attacker" } else { "honest" },
                    r.key.remaining,
                    r.node,
                    r.from_ms,
                    r.to_ms,
                    r.first_seq
                )),
            }
        }
    }
    let mut beyond = 0u64;
    let mut most = 0u64;
    for ((version, epoch), n) in &per_epoch {
        most = most.max(*n);
        let limit = u64::from(limits.get(version).copied().unwrap_or(u32::MAX));
        if *n > limit {
            beyond += n - limit;
            v.fail(format!(
                "version {version}: attackers received {n} password tests between \
                 committed resets (epoch {epoch}), limit {limit}"
            ));
        }
    }

    // 2. From the history alone: between honest recovery activity on the account, the
    //    attackers' distinct responses on a version stay within its limit.
    let busy = honest_recovery_intervals(&entries);
    let accounts = version_accounts(&entries);
    for (version, rs) in &by_version {
        let Some(limit) = rs.iter().find_map(|r| r.limit) else {
            continue;
        };
        let account = accounts.get(version).cloned().unwrap_or_default();
        let intervals = busy.get(&account).cloned().unwrap_or_default();
        let mut quiet: BTreeMap<usize, Vec<&Release>> = BTreeMap::new();
        for r in rs.iter().filter(|r| r.attacker) {
            // The quiet window a release lies in: the number of honest intervals that ended
            // before it, provided none overlaps it.
            if intervals
                .iter()
                .any(|(a, b)| *a <= r.to_ms && r.from_ms <= *b)
            {
                continue;
            }
            let window = intervals.iter().filter(|(_, b)| *b < r.from_ms).count();
            quiet.entry(window).or_default().push(r);
        }
        for (window, rs) in quiet {
            let n = rs.len() as u64;
            most = most.max(n);
            if n > u64::from(limit) {
                beyond = beyond.max(n - u64::from(limit));
                v.fail(format!(
                    "version {version}: attackers received {n} distinct password tests \
                     with no honest recovery in between (window {window}), limit {limit}"
                ));
            }
        }
    }
    v.figures.insert("most_in_one_epoch", most);
    v.figures.insert("beyond_limit", beyond);

    // 3. No attacker ever gets a transported key. (Nothing is released on a destroyed
    //    version: a release maps to a committed charge, and no charge commits after the
    //    destruction, both checked above in log order. Entry stamps are the first
    //    proposal's time, not the commit's, so they cannot order a destruction.)
    for e in &entries {
        if e.phase == Some(Phase::Complete)
            && e.released
            && e.role == Some(Role::Attacker)
            && e.op == "recover_finish"
        {
            v.fail(format!(
                "attacker {} received a transported key from node {:?} (history seq {})",
                e.client, e.node, e.seq
            ));
        }
    }
    v
}

/// What a charge was answered for: `(attempt, request hash)`, and where that was first seen.
type Binding = (Option<String>, Option<String>, u64);

/// The share evaluations. See the module documentation.
pub fn share_evaluations(history: &History, audit: &Audit) -> Verdict {
    let mut v = Verdict::new("share_evaluations");
    // Committed charges, (version, charge) -> log index, from all nodes' files.
    let mut committed: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    for l in audit.merged() {
        if let (true, Some(version), Some(charge)) =
            (l.kind == "guess_charged", l.version, l.charge)
        {
            committed.entry((version, charge)).or_insert(l.log_index);
        }
    }
    // What each node applied itself: its charges, and the snapshots it installed.
    let mut applied: BTreeMap<u64, BTreeSet<(u64, u64)>> = BTreeMap::new();
    let mut snapshot: BTreeMap<u64, u64> = BTreeMap::new();
    for (node, lines) in &audit.nodes {
        let mine = applied.entry(*node).or_default();
        for l in lines {
            match (l.kind.as_str(), l.version, l.charge) {
                ("guess_charged", Some(version), Some(charge)) => {
                    mine.insert((version, charge));
                }
                ("snapshot_installed", _, _) => {
                    let s = snapshot.entry(*node).or_default();
                    *s = (*s).max(l.log_index);
                }
                _ => {}
            }
        }
    }
    let mut per_node: BTreeMap<(u64, u64, u64), (Binding, String)> = BTreeMap::new();
    let mut per_charge: BTreeMap<(u64, u64), Binding> = BTreeMap::new();
    let (mut unchecked, mut answers, mut dropped) = (0u64, 0u64, 0u64);
    for e in history.entries() {
        if e.phase != Some(Phase::Complete) || e.evaluations.is_empty() {
            continue;
        }
        let (Some(version), Some(charge)) = (e.version, e.charge) else {
            continue;
        };
        answers += 1;
        let nodes: BTreeSet<u64> = e.evaluations.iter().map(|x| x.node).collect();
        if nodes.len() != e.evaluations.len() || nodes.contains(&0) {
            v.fail(format!(
                "{} op {} (seq {}): evaluations of charge {charge} of version {version} name \
                 nodes {:?}: one node twice, or node 0",
                e.client,
                e.op_id,
                e.seq,
                e.evaluations.iter().map(|x| x.node).collect::<Vec<_>>()
            ));
        }
        let binding: Binding = (e.attempt.clone(), e.request_hash.clone(), e.seq);
        let same = |a: &Binding, b: &Binding| a.0 == b.0 && a.1 == b.1;
        match per_charge.get(&(version, charge)) {
            Some(first) if !same(first, &binding) => v.fail(format!(
                "charge {charge} of version {version} was answered for attempt {:?} request \
                 {:?} (seq {}) and for attempt {:?} request {:?} (seq {})",
                first.0, first.1, first.2, binding.0, binding.1, binding.2
            )),
            Some(_) => {}
            None => {
                per_charge.insert((version, charge), binding.clone());
            }
        }
        let index = committed.get(&(version, charge)).copied();
        if index.is_none() {
            v.fail(format!(
                "{} op {} (seq {}): nodes {nodes:?} evaluated charge {charge} of version \
                 {version}, which no audit file shows committed",
                e.client, e.op_id, e.seq
            ));
        }
        for x in &e.evaluations {
            v.checked += 1;
            if audit.dropped.contains(&x.node) {
                // Its audit queue dropped events: no evidence either way.
                dropped += 1;
                continue;
            }
            match applied.get(&x.node) {
                None => unchecked += 1,
                Some(own) => {
                    let covered =
                        index.is_some_and(|i| snapshot.get(&x.node).is_some_and(|&s| s >= i));
                    if index.is_some() && !own.contains(&(version, charge)) && !covered {
                        v.fail(format!(
                            "node {} evaluated charge {charge} of version {version} (seq {}) \
                             but its own audit file shows no such charge applied",
                            x.node, e.seq
                        ));
                    }
                }
            }
            match per_node.get(&(version, charge, x.node)) {
                Some((first, fp)) if !same(first, &binding) || *fp != x.element_fp => {
                    v.fail(format!(
                        "node {} evaluated charge {charge} of version {version} twice: for \
                         attempt {:?} request {:?} (seq {}) and for attempt {:?} request {:?} \
                         (seq {}){}",
                        x.node,
                        first.0,
                        first.1,
                        first.2,
                        binding.0,
                        binding.1,
                        binding.2,
                        if *fp == x.element_fp {
                            ""
                        } else {
                            ", with different evaluated elements"
                        }
                    ))
                }
                Some(_) => {}
                None => {
                    per_node.insert(
                        (version, charge, x.node),
                        (binding.clone(), x.element_fp.clone()),
                    );
                }
            }
        }
    }
    v.figures.insert("answers_with_evaluations", answers);
    v.figures
        .insert("charges_evaluated", per_charge.len() as u64);
    v.figures.insert("node_evaluations", per_node.len() as u64);
    v.figures.insert("without_audit_file", unchecked);
    v.figures
        .insert("on_nodes_that_dropped_audit_events", dropped);
    v
}

/// Per account, the time intervals of honest recovery operations (open ones run to the end
/// of time): any of them may reset the counter.
fn honest_recovery_intervals(entries: &[Entry]) -> BTreeMap<String, Vec<(u64, u64)>> {
    let mut open: BTreeMap<u64, (String, u64)> = BTreeMap::new();
    let mut out: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for e in entries {
        if e.role != Some(Role::Honest)
            || !matches!(
                e.op.as_str(),
                "recover" | "recover_start" | "recover_login" | "recover_finish"
            )
        {
            continue;
        }
        let Some(account) = &e.account else { continue };
        match e.phase {
            Some(Phase::Invoke) => {
                open.insert(e.op_id, (account.clone(), e.t_ms));
            }
            Some(Phase::Complete) => {
                if let Some((a, t)) = open.remove(&e.op_id) {
                    out.entry(a).or_default().push((t, e.t_ms));
                }
            }
            _ => {}
        }
    }
    for (a, t) in open.into_values() {
        out.entry(a).or_default().push((t, u64::MAX));
    }
    // Leaked tickets can be replayed by attackers later: a replay resets only while the
    // honest charge is the latest, which no attacker charge after it allows, so replays need
    // no interval of their own.
    out
}

/// The account of each version, from the history.
fn version_accounts(entries: &[Entry]) -> BTreeMap<u64, String> {
    entries
        .iter()
        .filter_map(|e| Some((e.version?, e.account.clone()?)))
        .collect()
}

/// No acknowledged write lost. `final_status` observations (every node, after healing) and
/// the honest operations of the history are compared.
pub fn no_lost_writes(history: &History) -> Verdict {
    let mut v = Verdict::new("no_lost_writes");
    let entries = history.entries();
    let inv = invokes(&entries);
    /// An acknowledged write: invoke ms, complete ms, op, version, key fingerprint, the
    /// history seq of its completion.
    type Acked = (u64, u64, String, Option<u64>, Option<String>, u64);
    #[derive(Debug, Default)]
    struct Acct {
        acked: Vec<Acked>,
        /// Writes not acknowledged: (invoke ms, op).
        unacked: Vec<(u64, String)>,
        keys: BTreeMap<u64, String>,
        /// (invoke ms, history seq) of deletions, so that a violation cites them.
        deletes: Vec<(u64, u64)>,
    }
    let mut accts: BTreeMap<String, Acct> = BTreeMap::new();
    let mut completed = BTreeSet::new();
    for e in &entries {
        if e.role != Some(Role::Honest) || !matches!(e.op.as_str(), "register" | "delete") {
            continue;
        }
        let Some(account) = &e.account else { continue };
        if e.phase == Some(Phase::Complete) {
            completed.insert(e.op_id);
            let t0 = inv.get(&e.op_id).map_or(e.t_ms, |i| i.t_ms);
            let a = accts.entry(account.clone()).or_default();
            if e.outcome == Some(Outcome::Ok) {
                a.acked
                    .push((t0, e.t_ms, e.op.clone(), e.version, e.key_fp.clone(), e.seq));
                if let (Some(ver), Some(fp)) = (e.version, &e.key_fp) {
                    a.keys.insert(ver, fp.clone());
                }
            } else {
                a.unacked.push((t0, e.op.clone()));
            }
        }
    }
    for e in inv.values() {
        if e.role == Some(Role::Honest)
            && matches!(e.op.as_str(), "register" | "delete")
            && !completed.contains(&e.op_id)
            && let Some(account) = &e.account
        {
            accts
                .entry(account.clone())
                .or_default()
                .unacked
                .push((e.t_ms, e.op.clone()));
        }
    }
    for e in inv.values() {
        if e.role == Some(Role::Honest)
            && e.op == "delete"
            && let Some(account) = &e.account
        {
            accts
                .entry(account.clone())
                .or_default()
                .deletes
                .push((e.t_ms, e.seq));
        }
    }
    let attacked: BTreeSet<&str> = entries
        .iter()
        .filter(|e| e.role == Some(Role::Attacker))
        .filter_map(|e| e.account.as_deref())
        .collect();

    // Recovered keys must be the registered ones, and the right password always works.
    for e in &entries {
        if e.role == Some(Role::Honest)
            && e.phase == Some(Phase::Complete)
            && e.outcome == Some(Outcome::WrongPassword)
        {
            v.fail(format!(
                "{}: the honest password was refused (history seq {})",
                e.account.clone().unwrap_or_default(),
                e.seq
            ));
        }
        if e.role == Some(Role::Honest)
            && e.is_ok()
            && matches!(e.op.as_str(), "recover" | "recover_finish")
            && let (Some(account), Some(ver), Some(fp)) = (&e.account, e.version, &e.key_fp)
            && let Some(registered) = accts.get(account).and_then(|a| a.keys.get(&ver))
        {
            v.checked += 1;
            if registered != fp {
                v.fail(format!(
                    "{account}: recovered key {fp} on version {ver} is not the key {registered} \
                     registered (history seq {})",
                    e.seq
                ));
            }
        }
    }

    let finals: Vec<&Entry> = entries.iter().filter(|e| e.op == "final_status").collect();
    let mut accounts_checked = 0u64;
    for (account, a) in &accts {
        let Some(last) = a.acked.iter().max_by_key(|x| x.1) else {
            continue;
        };
        let (_, last_done, op, version, _, last_seq) = last;
        let cite = |what: &str| {
            // The last three deletions invoked before the write was acknowledged.
            let before: Vec<_> = a.deletes.iter().filter(|(t, _)| t <= last_done).collect();
            let deletes: Vec<String> = before[before.len().saturating_sub(3)..]
                .iter()
                .map(|(_, s)| format!("seq {s}"))
                .collect();
            format!(
                "{what} (history seq {last_seq}; the last deletions invoked before: {})",
                if deletes.is_empty() {
                    "none".to_string()
                } else {
                    deletes.join(", ")
                }
            )
        };
        // Writes begun after the last acknowledged one finished may have taken effect.
        let later_register = a
            .unacked
            .iter()
            .any(|(t, o)| t >= last_done && o == "register");
        let later_delete = a
            .unacked
            .iter()
            .any(|(t, o)| t >= last_done && o == "delete");
        let max_acked_version = a.acked.iter().filter_map(|x| x.3).max().unwrap_or(0);
        let seen: Vec<&&Entry> = finals
            .iter()
            .filter(|f| f.account.as_deref() == Some(account))
            .collect();
        if seen.is_empty() {
            continue;
        }
        accounts_checked += 1;
        for f in seen {
            v.checked += 1;
            let state = f.detail.as_deref().unwrap_or("");
            let fver = f.version.unwrap_or(0);
            let node = f.node.unwrap_or(0);
            match (op.as_str(), state) {
                ("register", "destroyed") if !attacked.contains(account.as_str()) => {
                    v.fail(format!(
                        "{account}: node {node} holds version {fver} destroyed, but nobody \
                         guessed on it"
                    ));
                }
                ("register", "active" | "destroyed") => {
                    let want = version.unwrap_or(0);
                    if fver < want || (fver > want && !later_register) {
                        v.fail(format!(
                            "{account}: node {node} holds version {fver} ({state}) but version \
                             {want} was acknowledged last"
                        ));
                    }
                }
                ("register", _) if !later_delete => {
                    v.fail(format!(
                        "{account}: node {node} holds nothing ({state}) but {}",
                        cite(&format!("version {version:?} was acknowledged"))
                    ));
                }
                ("delete", "absent") => {}
                ("delete", _) if fver <= max_acked_version || !later_register => {
                    v.fail(format!(
                        "{account}: node {node} holds version {fver} ({state}) after an \
                         acknowledged deletion"
                    ));
                }
                _ => {}
            }
        }
    }
    v.figures.insert("accounts", accounts_checked);
    v.figures.insert(
        "acked_writes",
        accts.values().map(|a| a.acked.len() as u64).sum(),
    );
    v.figures.insert("lost", v.violations.len() as u64);
    v
}

/// Replicas agree: digest samples (`digest` entries) with equal applied index have equal
/// digests, and the audit files agree entry by entry.
pub fn replicas_agree(history: &History, audit: &Audit) -> Verdict {
    let mut v = Verdict::new("replicas_agree");
    let mut by_index: BTreeMap<u64, BTreeMap<String, Vec<u64>>> = BTreeMap::new();
    for e in history.entries() {
        if e.op != "digest" {
            continue;
        }
        if let (Some(i), Some(d), Some(n)) = (e.applied_index, &e.digest, e.node) {
            v.checked += 1;
            by_index
                .entry(i)
                .or_default()
                .entry(d.clone())
                .or_default()
                .push(n);
        }
    }
    let mut compared = 0u64;
    for (index, digests) in &by_index {
        let nodes: usize = digests.values().map(Vec::len).sum();
        if nodes >= 2 {
            compared += 1;
        }
        if digests.len() > 1 {
            v.fail(format!(
                "different state digests at applied index {index}: {digests:?}"
            ));
        }
    }
    // A node whose disk was made full loses the audit lines it could not append (the node
    // logs each failed append), and one whose audit queue was full drops events (and says
    // so in its file); either may lack events, never hold different ones.
    let mut full: BTreeSet<u64> = history
        .entries()
        .iter()
        .filter(|e| e.op == "disk_full")
        .filter_map(|e| e.node)
        .collect();
    full.extend(audit.dropped.iter().copied());
    let (gaps, disagreements) = audit.disagreements_allowing_gaps(&full);
    for (_, d) in disagreements.into_iter().take(20) {
        v.fail(d);
    }
    v.figures.insert("audit_gaps_on_full_disks", gaps);
    let shared = audit.shared_indexes() as u64;
    v.checked += shared;
    v.figures.insert("digest_indexes_compared", compared);
    v.figures.insert("audit_indexes_compared", shared);
    v
}

/// Fail closed: between `fail_closed_begin` and `fail_closed_end` of a node, no operation
/// sent to that node receives a password test or a key (anything `released`). Between
/// `keys_closed_begin` and `keys_closed_end` (a node whose HSM fails), no login and no key:
/// no `recover_login` answered, nothing released by a finish (a password test it serves is
/// charged and evaluated by the share-holders; [`guess_bound`] checks those). An operation
/// counts when it was invoked in the window and answered before it closed (one answered
/// after the heal may have been served after it).
pub fn fail_closed(history: &History) -> Verdict {
    /// A window: node, from, to, why, and whether only logins and keys are closed.
    type Window = (u64, u64, u64, String, bool);
    let mut v = Verdict::new("fail_closed");
    let entries = history.entries();
    let mut windows: Vec<Window> = Vec::new();
    let mut open: BTreeMap<(u64, bool), (u64, String)> = BTreeMap::new();
    for e in &entries {
        let Some(node) = e.node else { continue };
        let (keys_only, begin) = match e.op.as_str() {
            "fail_closed_begin" => (false, true),
            "fail_closed_end" => (false, false),
            "keys_closed_begin" => (true, true),
            "keys_closed_end" => (true, false),
            _ => continue,
        };
        if begin {
            open.entry((node, keys_only))
                .or_insert((e.t_ms, e.detail.clone().unwrap_or_default()));
        } else if let Some((t, why)) = open.remove(&(node, keys_only)) {
            windows.push((node, t, e.t_ms, why, keys_only));
        }
    }
    for ((node, keys_only), (t, why)) in open {
        windows.push((node, t, u64::MAX, why, keys_only));
    }
    let inv = invokes(&entries);
    let mut refused = 0u64;
    for e in &entries {
        if e.phase != Some(Phase::Complete) {
            continue;
        }
        let Some(node) = e.node else { continue };
        let Some(t) = inv.get(&e.op_id).map(|i| i.t_ms) else {
            continue;
        };
        let finish = matches!(e.op.as_str(), "recover_finish" | "replay_finish");
        let login = e.op == "recover_login";
        for (wnode, from, to, why, keys_only) in &windows {
            if *wnode != node || t < *from || t > *to {
                continue;
            }
            if *keys_only && !finish && !login {
                continue;
            }
            v.checked += 1;
            let got = if *keys_only {
                (finish && e.released) || (login && e.outcome == Some(Outcome::Ok))
            } else {
                e.released
            };
            if got && e.t_ms <= *to {
                v.fail(format!(
                    "node {node} ({why}) released {} to {} ({} invoked at {t} ms, history seq \
                     {})",
                    if login { "a login" } else { "something" },
                    e.client,
                    e.op,
                    e.seq
                ));
            } else if !got {
                refused += 1;
            }
        }
    }
    v.figures.insert("windows", windows.len() as u64);
    v.figures.insert("refused_in_windows", refused);
    v
}

/// No plaintext: none of `canaries` in any file under `roots`.
pub fn no_plaintext(roots: &[PathBuf], canaries: &[Vec<u8>]) -> Verdict {
    let mut v = Verdict::new("no_plaintext");
    match canary::scan(roots, canaries) {
        Ok(report) => {
            v.checked = report.files;
            v.figures.insert("files", report.files);
            v.figures.insert("bytes", report.bytes);
            v.figures.insert("canaries", canaries.len() as u64);
            v.figures.insert("hits", report.hits.len() as u64);
            for hit in report.hits {
                v.fail(format!(
                    "canary #{} found {} in {} at byte {}",
                    hit.canary,
                    hit.encoding,
                    hit.path.display(),
                    hit.offset
                ));
            }
        }
        Err(e) => v.fail(format!("scan failed: {e:#}")),
    }
    v
}

/// Liveness: after the last `heal`, a `leader` observation within `bound`, and the
/// cluster settles within `bound`: every honest operation invoked after the heal that
/// failed (UNAVAILABLE or an error; an answer such as "destroyed" is a success of the
/// system) was invoked within `bound` of it, and operations invoked after the last failure
/// succeeded.
pub fn liveness(history: &History, bound: Duration) -> Verdict {
    let mut v = Verdict::new("liveness");
    let entries = history.entries();
    let bound_ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX);
    let Some(heal) = entries
        .iter()
        .filter(|e| e.op == "heal")
        .map(|e| e.t_ms)
        .max()
    else {
        v.fail("no heal in the history");
        return v;
    };
    let leader = entries
        .iter()
        .filter(|e| e.op == "leader" && e.t_ms >= heal && e.node.is_some())
        .map(|e| e.t_ms)
        .min();
    match leader {
        Some(t) if t - heal <= bound_ms => {
            v.figures.insert("leader_after_heal_ms", t - heal);
        }
        Some(t) => v.fail(format!(
            "first leader {} ms after the heal, bound {bound_ms} ms",
            t - heal
        )),
        None => v.fail("no leader observed after the heal"),
    }
    let inv = invokes(&entries);
    let mut after: Vec<(u64, &Entry)> = entries
        .iter()
        .filter(|e| e.phase == Some(Phase::Complete) && e.role == Some(Role::Honest))
        .filter_map(|e| inv.get(&e.op_id).map(|i| (i.t_ms, e)))
        .filter(|(t, _)| *t >= heal)
        .collect();
    after.sort_by_key(|(t, _)| *t);
    v.checked = after.len() as u64;
    let failed = |e: &Entry| matches!(e.outcome, Some(Outcome::Unavailable | Outcome::Error));
    let last_failure = after
        .iter()
        .filter(|(_, e)| failed(e))
        .map(|(t, _)| *t)
        .max();
    let settled = last_failure.map_or(0, |t| t - heal);
    v.figures.insert("settled_after_heal_ms", settled);
    for (t, e) in after
        .iter()
        .filter(|(t, e)| failed(e) && *t > heal + bound_ms)
    {
        v.fail(format!(
            "{} {} failed {} ms after the heal: {:?} {} (history seq {})",
            e.client,
            e.op,
            t - heal,
            e.outcome,
            e.detail.clone().unwrap_or_default(),
            e.seq
        ));
    }
    let ok_after = after
        .iter()
        .filter(|(t, e)| last_failure.is_none_or(|f| *t > f) && !failed(e))
        .count();
    v.figures
        .insert("operations_after_settling", ok_after as u64);
    if ok_after == 0 {
        v.fail("no honest operation succeeded after the last failure following the heal");
    }
    v
}
