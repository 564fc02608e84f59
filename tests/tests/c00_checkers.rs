//! Each chaos checker catches a planted bug: it is fed a history (and audit files, or files
//! to scan) that a correct cluster would produce, and passes; then the same with the rule
//! broken the way a bug would break it, and it fails naming the violation. No cluster here:
//! the checkers are judged on data made by hand.

use std::path::Path;
use std::time::Duration;

use bkv_tests::chaos::audit::{Audit, AuditLine};
use bkv_tests::chaos::check;
use bkv_tests::chaos::{Entry, Evaluation, History, Outcome, Phase, Role};

const T0: u64 = 1_700_000_000_000;

/// A history built by hand with explicit times.
#[derive(Default)]
struct Script {
    entries: Vec<Entry>,
    op: u64,
}

impl Script {
    fn push(&mut self, t: u64, mut e: Entry) -> &mut Self {
        e.seq = self.entries.len() as u64 + 1;
        e.t_ms = T0 + t;
        self.entries.push(e);
        self
    }

    /// An operation invoked at `t0` and completed at `t1`: `fill` sets what the invoke
    /// carries, `done` what the completion adds.
    fn op(
        &mut self,
        t0: u64,
        t1: u64,
        base: Entry,
        outcome: Outcome,
        done: impl FnOnce(&mut Entry),
    ) -> &mut Self {
        self.op += 1;
        let mut inv = base.clone();
        inv.phase = Some(Phase::Invoke);
        inv.op_id = self.op;
        self.push(t0, inv.clone());
        let mut c = inv;
        c.phase = Some(Phase::Complete);
        c.outcome = Some(outcome);
        done(&mut c);
        self.push(t1, c)
    }

    fn info(&mut self, t: u64, mut e: Entry) -> &mut Self {
        e.phase = Some(Phase::Info);
        self.push(t, e)
    }

    fn history(&self) -> History {
        History::from_entries(self.entries.clone())
    }
}

fn start(client: &str, role: Role, attempt: &str, node: u64) -> Entry {
    let mut e = Entry::new(role, client, "recover_start")
        .account("victim")
        .node(node);
    e.attempt = Some(attempt.into());
    e.request_hash = Some(format!("req-{attempt}"));
    e
}

fn released(version: u64, remaining: u32) -> impl FnOnce(&mut Entry) {
    move |e| {
        e.released = true;
        e.version = Some(version);
        e.guesses_remaining = Some(remaining);
        e.guess_limit = Some(3);
    }
}

fn line(index: u64, t: u64, kind: &str, version: u64, charge: Option<u64>, rem: u32) -> AuditLine {
    AuditLine {
        seq: index,
        log_index: index,
        at_unix_ms: T0 + t,
        kind: kind.into(),
        account: "a1b2".into(),
        version: Some(version),
        charge,
        guesses_remaining: Some(rem),
        ..AuditLine::default()
    }
}

fn audit_of(lines: Vec<AuditLine>) -> Audit {
    let mut a = Audit::default();
    a.nodes.insert(1, lines);
    a
}

/// Version 10, limit 3: three attacker guesses, each committed (charges 1..3).
fn three_guesses() -> (Script, Vec<AuditLine>) {
    let mut s = Script::default();
    s.op(
        100,
        150,
        start("attacker-0", Role::Attacker, "a1", 1),
        Outcome::Ok,
        released(10, 2),
    );
    s.op(
        200,
        250,
        start("attacker-0", Role::Attacker, "a2", 2),
        Outcome::Ok,
        released(10, 1),
    );
    s.op(
        300,
        350,
        start("attacker-1", Role::Attacker, "a3", 3),
        Outcome::Ok,
        released(10, 0),
    );
    // A retry of a3 on another node, same bytes: the same charge back, nothing new.
    s.op(
        400,
        450,
        start("attacker-1", Role::Attacker, "a3", 1),
        Outcome::Ok,
        released(10, 0),
    );
    let audit = vec![
        line(10, 0, "activated", 10, None, 3),
        line(11, 120, "guess_charged", 10, Some(1), 2),
        line(12, 220, "guess_charged", 10, Some(2), 1),
        line(13, 320, "guess_charged", 10, Some(3), 0),
    ];
    (s, audit)
}

#[test]
fn guess_bound_passes_a_correct_run_and_catches_planted_bugs() {
    // A correct run: three releases, three charges, a retry counted once.
    let (s, audit) = three_guesses();
    let v = check::guess_bound(&s.history(), &audit_of(audit.clone()));
    assert!(v.passed(), "{}", v.summary());
    assert_eq!(v.figures["attacker_releases"], 3);
    assert_eq!(v.figures["beyond_limit"], 0);

    // Planted bug 1: a fourth password test (evaluations) released without a charge (a node that
    // skips the ChargeGuess, or answers before the commit).
    let (mut s, audit) = three_guesses();
    s.op(
        500,
        550,
        start("attacker-0", Role::Attacker, "a4", 2),
        Outcome::Ok,
        released(10, 0),
    );
    let v = check::guess_bound(&s.history(), &audit_of(audit));
    assert!(!v.passed());
    assert!(
        v.violations
            .iter()
            .any(|m| m.contains("maps to no distinct committed charge")),
        "{}",
        v.summary()
    );
    assert!(
        v.violations
            .iter()
            .any(|m| m.contains("4 distinct password tests")),
        "{}",
        v.summary()
    );
    assert_eq!(v.figures["beyond_limit"], 1);

    // Planted bug 2: a charge acknowledged and then lost (a rolled-back node that led):
    // the third release has no committed charge behind it.
    let (s, mut audit) = three_guesses();
    audit.pop();
    let v = check::guess_bound(&s.history(), &audit_of(audit));
    assert!(
        v.violations.iter().any(|m| m.contains("attempt a3")),
        "{}",
        v.summary()
    );

    // Planted bug 3: a state machine that lets a fourth charge in before any reset.
    let (mut s, mut audit) = three_guesses();
    s.op(
        500,
        550,
        start("attacker-0", Role::Attacker, "a4", 2),
        Outcome::Ok,
        released(10, 0),
    );
    audit.push(line(14, 520, "guess_charged", 10, Some(4), 0));
    let v = check::guess_bound(&s.history(), &audit_of(audit));
    assert!(
        v.violations
            .iter()
            .any(|m| m.contains("4 charges committed since the last reset")),
        "{}",
        v.summary()
    );

    // Planted bug 4: a replayed ticket of an earlier charge resets the counter (the reset
    // names charge 2 while charge 3 is the latest), and the attacker guesses on.
    let (mut s, mut audit) = three_guesses();
    audit.push(line(14, 600, "recovered", 10, Some(2), 3));
    audit.push(line(15, 720, "guess_charged", 10, Some(4), 2));
    s.op(
        700,
        750,
        start("attacker-0", Role::Attacker, "a5", 3),
        Outcome::Ok,
        released(10, 2),
    );
    let v = check::guess_bound(&s.history(), &audit_of(audit));
    assert!(
        v.violations
            .iter()
            .any(|m| m.contains("reset under charge 2")),
        "{}",
        v.summary()
    );
    assert!(
        v.violations
            .iter()
            .any(|m| m.contains("4 charges committed")),
        "{}",
        v.summary()
    );

    // Planted bug 5: an attacker's forged finalization gets a transported key.
    let (mut s, audit) = three_guesses();
    s.op(
        600,
        650,
        Entry::new(Role::Attacker, "attacker-0", "recover_finish")
            .account("victim")
            .node(1),
        Outcome::Ok,
        |e| e.released = true,
    );
    let v = check::guess_bound(&s.history(), &audit_of(audit));
    assert!(
        v.violations.iter().any(|m| m.contains("transported key")),
        "{}",
        v.summary()
    );

    // Not a bug: two guesses, the owner's recovery (charge 3, the latest) resets the
    // counter, three more guesses: five attacker responses, never more than three between
    // resets.
    let mut s = Script::default();
    s.op(
        100,
        150,
        start("attacker-0", Role::Attacker, "a1", 1),
        Outcome::Ok,
        released(10, 2),
    );
    s.op(
        200,
        250,
        start("attacker-0", Role::Attacker, "a2", 2),
        Outcome::Ok,
        released(10, 1),
    );
    s.op(
        300,
        360,
        Entry::new(Role::Honest, "owner-0", "recover").account("victim"),
        Outcome::Ok,
        |e| {
            e.released = true;
            e.version = Some(10);
            e.guesses_remaining = Some(0);
        },
    );
    let mut audit = vec![
        line(10, 0, "activated", 10, None, 3),
        line(11, 120, "guess_charged", 10, Some(1), 2),
        line(12, 220, "guess_charged", 10, Some(2), 1),
        line(13, 320, "guess_charged", 10, Some(3), 0),
        line(14, 340, "recovered", 10, Some(3), 3),
    ];
    for (charge, t) in [(4u64, 400u64), (5, 500), (6, 600)] {
        let remaining = 6 - charge as u32;
        let attempt = format!("b{charge}");
        s.op(
            t,
            t + 50,
            start("attacker-1", Role::Attacker, &attempt, 3),
            Outcome::Ok,
            released(10, remaining),
        );
        audit.push(line(
            11 + charge,
            t + 20,
            "guess_charged",
            10,
            Some(charge),
            remaining,
        ));
    }
    let v = check::guess_bound(&s.history(), &audit_of(audit));
    assert!(v.passed(), "{}", v.summary());
    assert_eq!(v.figures["attacker_releases"], 5);
    assert_eq!(v.figures["most_in_one_epoch"], 3);
}

/// A released `RecoverStart` answer: charge `charge` of `version`, evaluated by `by`
/// (node, evaluated element fingerprint).
fn evaluated(
    version: u64,
    charge: u64,
    remaining: u32,
    by: &[(u64, &str)],
) -> impl FnOnce(&mut Entry) {
    let by: Vec<Evaluation> = by
        .iter()
        .map(|&(node, fp)| Evaluation {
            node,
            element_fp: fp.into(),
        })
        .collect();
    move |e| {
        released(version, remaining)(e);
        e.charge = Some(charge);
        e.evaluations = by;
    }
}

/// Version 10, limit 3, on three nodes that all applied charges 1..3: attacker guesses
/// a1..a3 evaluated by two nodes each, and a retry of a3 (same bytes) evaluated again by
/// another pair.
fn evaluated_guesses() -> (Script, Audit) {
    let mut s = Script::default();
    s.op(
        100,
        150,
        start("attacker-0", Role::Attacker, "a1", 1),
        Outcome::Ok,
        evaluated(10, 1, 2, &[(1, "z11"), (2, "z12")]),
    );
    s.op(
        200,
        250,
        start("attacker-0", Role::Attacker, "a2", 2),
        Outcome::Ok,
        evaluated(10, 2, 1, &[(2, "z22"), (3, "z23")]),
    );
    s.op(
        300,
        350,
        start("attacker-1", Role::Attacker, "a3", 3),
        Outcome::Ok,
        evaluated(10, 3, 0, &[(3, "z33"), (1, "z31")]),
    );
    s.op(
        400,
        450,
        start("attacker-1", Role::Attacker, "a3", 1),
        Outcome::Ok,
        evaluated(10, 3, 0, &[(1, "z31"), (2, "z32")]),
    );
    let lines = vec![
        line(10, 0, "activated", 10, None, 3),
        line(11, 120, "guess_charged", 10, Some(1), 2),
        line(12, 220, "guess_charged", 10, Some(2), 1),
        line(13, 320, "guess_charged", 10, Some(3), 0),
    ];
    let mut audit = Audit::default();
    for node in 1..=3 {
        audit.nodes.insert(node, lines.clone());
    }
    (s, audit)
}

#[test]
fn share_evaluations_passes_a_correct_run_and_catches_planted_bugs() {
    let (s, audit) = evaluated_guesses();
    let v = check::share_evaluations(&s.history(), &audit);
    assert!(v.passed(), "{}", v.summary());
    assert_eq!(v.checked, 8, "{}", v.summary());
    assert_eq!(v.figures["charges_evaluated"], 3, "{}", v.summary());

    // A node evaluates a charge nobody committed (a lying node that makes its charge up).
    let (mut s, audit) = evaluated_guesses();
    s.op(
        500,
        550,
        start("attacker-2", Role::Attacker, "a4", 2),
        Outcome::Ok,
        evaluated(10, 4, 0, &[(2, "z42"), (3, "z43")]),
    );
    let v = check::share_evaluations(&s.history(), &audit);
    assert!(
        v.violations
            .iter()
            .any(|x| x.contains("charge 4 of version 10, which no audit file shows committed")),
        "{}",
        v.summary()
    );

    // A node evaluates a committed charge its own state never applied.
    let (s, mut audit) = evaluated_guesses();
    audit
        .nodes
        .get_mut(&2)
        .expect("node 2")
        .retain(|l| l.charge != Some(2));
    let v = check::share_evaluations(&s.history(), &audit);
    assert_eq!(v.violations.len(), 1, "{}", v.summary());
    assert!(
        v.violations[0].contains("node 2 evaluated charge 2 of version 10")
            && v.violations[0].contains("no such charge applied"),
        "{}",
        v.summary()
    );
    // ...unless a snapshot it installed covers the charge.
    audit.nodes.get_mut(&2).expect("node 2").push(AuditLine {
        seq: 20,
        log_index: 12,
        kind: "snapshot_installed".into(),
        ..AuditLine::default()
    });
    let v = check::share_evaluations(&s.history(), &audit);
    assert!(v.passed(), "{}", v.summary());

    // A node evaluates one charge for a second attempt.
    let (mut s, audit) = evaluated_guesses();
    s.op(
        500,
        550,
        start("attacker-2", Role::Attacker, "a5", 1),
        Outcome::Ok,
        evaluated(10, 1, 2, &[(1, "z51"), (3, "z53")]),
    );
    let v = check::share_evaluations(&s.history(), &audit);
    assert!(
        v.violations
            .iter()
            .any(|x| x.contains("node 1 evaluated charge 1 of version 10 twice")),
        "{}",
        v.summary()
    );
    assert!(
        v.violations
            .iter()
            .any(|x| x.contains("charge 1 of version 10 was answered for attempt")),
        "{}",
        v.summary()
    );

    // The same attempt and bytes, but a node's evaluation differs: it evaluated something
    // else under the charge.
    let (mut s, audit) = evaluated_guesses();
    s.op(
        500,
        550,
        start("attacker-0", Role::Attacker, "a1", 3),
        Outcome::Ok,
        evaluated(10, 1, 2, &[(2, "z12-other"), (3, "z13")]),
    );
    let v = check::share_evaluations(&s.history(), &audit);
    assert_eq!(v.violations.len(), 1, "{}", v.summary());
    assert!(
        v.violations[0].contains("with different evaluated elements"),
        "{}",
        v.summary()
    );

    // One node named twice in one answer.
    let (mut s, audit) = evaluated_guesses();
    s.op(
        500,
        550,
        start("attacker-0", Role::Attacker, "a2", 1),
        Outcome::Ok,
        evaluated(10, 2, 1, &[(2, "z22"), (2, "z22")]),
    );
    let v = check::share_evaluations(&s.history(), &audit);
    assert!(
        v.violations.iter().any(|x| x.contains("one node twice")),
        "{}",
        v.summary()
    );
}

fn register_ok(s: &mut Script, t: u64, version: u64, fp: &str) {
    let fp = fp.to_string();
    s.op(
        t,
        t + 50,
        Entry::new(Role::Honest, "honest-0", "register").account("alice"),
        Outcome::Ok,
        move |e| {
            e.version = Some(version);
            e.key_fp = Some(fp);
        },
    );
}

fn final_status(s: &mut Script, t: u64, node: u64, state: &str, version: u64) {
    let mut e = Entry::new(Role::Observer, "observer", "final_status")
        .account("alice")
        .node(node)
        .detail(state);
    e.version = (version != 0).then_some(version);
    s.info(t, e);
}

#[test]
fn no_lost_writes_passes_a_correct_run_and_catches_planted_bugs() {
    let good = || {
        let mut s = Script::default();
        register_ok(&mut s, 0, 5, "k5");
        register_ok(&mut s, 100, 9, "k9");
        s
    };
    let mut s = good();
    for n in 1..=3 {
        final_status(&mut s, 1000, n, "active", 9);
    }
    s.op(
        1100,
        1150,
        Entry::new(Role::Honest, "final-honest-0", "recover").account("alice"),
        Outcome::Ok,
        |e| {
            e.released = true;
            e.version = Some(9);
            e.key_fp = Some("k9".into());
        },
    );
    let v = check::no_lost_writes(&s.history());
    assert!(v.passed(), "{}", v.summary());
    assert_eq!(v.figures["acked_writes"], 2);

    // Planted bug 1: a node went back to the older version (an acknowledged registration
    // lost on a rolled-back replica), another lost the account.
    let mut s = good();
    final_status(&mut s, 1000, 1, "active", 9);
    final_status(&mut s, 1000, 2, "active", 5);
    final_status(&mut s, 1000, 3, "absent", 0);
    let v = check::no_lost_writes(&s.history());
    assert!(
        v.violations
            .iter()
            .any(|m| m.contains("node 2 holds version 5")),
        "{}",
        v.summary()
    );
    assert!(
        v.violations
            .iter()
            .any(|m| m.contains("node 3 holds nothing")),
        "{}",
        v.summary()
    );

    // Planted bug 2: the key recovered is not the key registered at that version.
    let mut s = good();
    s.op(
        1100,
        1150,
        Entry::new(Role::Honest, "honest-0", "recover").account("alice"),
        Outcome::Ok,
        |e| {
            e.released = true;
            e.version = Some(9);
            e.key_fp = Some("k5".into());
        },
    );
    let v = check::no_lost_writes(&s.history());
    assert!(
        v.violations.iter().any(|m| m.contains("is not the key k9")),
        "{}",
        v.summary()
    );

    // Planted bug 3: an acknowledged deletion undone (the record is back).
    let mut s = good();
    s.op(
        200,
        250,
        Entry::new(Role::Honest, "honest-0", "delete").account("alice"),
        Outcome::Ok,
        |_| {},
    );
    final_status(&mut s, 1000, 1, "active", 9);
    let v = check::no_lost_writes(&s.history());
    assert!(
        v.violations
            .iter()
            .any(|m| m.contains("after an acknowledged deletion")),
        "{}",
        v.summary()
    );

    // Planted bug 4 (what c120 once caught): a deletion that timed out lands after the
    // registration the client made next; the violation cites both.
    let mut s = Script::default();
    register_ok(&mut s, 0, 5, "k5");
    s.op(
        100,
        200,
        Entry::new(Role::Honest, "honest-0", "delete").account("alice"),
        Outcome::Unavailable,
        |_| {},
    );
    register_ok(&mut s, 300, 9, "k9");
    final_status(&mut s, 1000, 1, "absent", 0);
    let v = check::no_lost_writes(&s.history());
    let lost = v
        .violations
        .iter()
        .find(|m| m.contains("node 1 holds nothing"))
        .unwrap_or_else(|| panic!("{}", v.summary()));
    let delete = s
        .history()
        .entries()
        .into_iter()
        .find(|e| e.op == "delete")
        .map(|e| e.seq)
        .expect("the deletion's invoke");
    assert!(
        lost.contains(&format!("seq {delete}")),
        "the deletion is cited: {lost}"
    );

    // Not a bug: a registration whose answer was lost (UNAVAILABLE) may have taken effect.
    let mut s = good();
    s.op(
        200,
        5000,
        Entry::new(Role::Honest, "honest-0", "register").account("alice"),
        Outcome::Unavailable,
        |_| {},
    );
    final_status(&mut s, 6000, 1, "active", 12);
    let v = check::no_lost_writes(&s.history());
    assert!(v.passed(), "{}", v.summary());
}

fn digest(s: &mut Script, t: u64, node: u64, index: u64, d: &str) {
    let mut e = Entry::new(Role::Observer, "observer", "digest").node(node);
    e.applied_index = Some(index);
    e.digest = Some(d.into());
    s.info(t, e);
}

fn write_audit(dir: &Path, node: u64, lines: &[AuditLine]) {
    let d = dir.join(format!("data/node{node}"));
    std::fs::create_dir_all(&d).expect("audit dir");
    let text: String = lines
        .iter()
        .map(|l| serde_json::to_string(l).expect("audit line") + "\n")
        .collect();
    std::fs::write(d.join("audit.jsonl"), text).expect("audit file");
}

#[test]
fn replicas_agree_passes_equal_replicas_and_catches_planted_divergence() {
    let dir = tempfile::tempdir().unwrap();
    let common = vec![
        line(10, 0, "activated", 10, None, 3),
        line(11, 120, "guess_charged", 10, Some(1), 2),
    ];
    for n in 1..=3 {
        write_audit(dir.path(), n, &common);
    }
    let mut s = Script::default();
    digest(&mut s, 10, 1, 11, "aaaa");
    digest(&mut s, 20, 2, 11, "aaaa");
    digest(&mut s, 30, 3, 9, "0000");
    let audit = Audit::read(dir.path()).unwrap();
    let v = check::replicas_agree(&s.history(), &audit);
    assert!(v.passed(), "{}", v.summary());
    assert_eq!(v.figures["audit_indexes_compared"], 2);

    // Planted bug 1: two replicas with different state at the same applied index.
    digest(&mut s, 40, 3, 11, "bbbb");
    let v = check::replicas_agree(&s.history(), &audit);
    assert!(
        v.violations
            .iter()
            .any(|m| m.contains("different state digests at applied index 11")),
        "{}",
        v.summary()
    );

    // Planted bug 2: one replica applied the entry differently (another charge number).
    let mut diverged = common.clone();
    diverged[1].charge = Some(2);
    write_audit(dir.path(), 3, &diverged);
    let audit = Audit::read(dir.path()).unwrap();
    let mut s = Script::default();
    digest(&mut s, 10, 1, 11, "aaaa");
    let v = check::replicas_agree(&s.history(), &audit);
    assert!(
        v.violations.iter().any(|m| m.contains("at log index 11")),
        "{}",
        v.summary()
    );

    // Not a bug: a node that installed a snapshot lacks the events before it.
    let mut snap = vec![
        AuditLine {
            log_index: 11,
            kind: "snapshot_installed".into(),
            ..AuditLine::default()
        },
        AuditLine {
            log_index: 11,
            kind: "membership_changed".into(),
            voters: Some(vec![1, 2, 3]),
            ..AuditLine::default()
        },
    ];
    snap.push(line(12, 300, "guess_charged", 10, Some(2), 1));
    write_audit(dir.path(), 3, &snap);
    for n in 1..=2 {
        let mut l = common.clone();
        l.push(line(12, 300, "guess_charged", 10, Some(2), 1));
        write_audit(dir.path(), n, &l);
    }
    let v = check::replicas_agree(&s.history(), &Audit::read(dir.path()).unwrap());
    assert!(v.passed(), "{}", v.summary());
}

#[test]
fn fail_closed_catches_a_release_by_a_node_that_must_fail_closed() {
    let mut s = Script::default();
    s.info(
        1000,
        Entry::new(Role::Nemesis, "nemesis", "fail_closed_begin")
            .node(1)
            .detail("minority"),
    );
    // Before the window, and on another node during it: fine.
    s.op(
        900,
        950,
        start("attacker-0", Role::Attacker, "a1", 1),
        Outcome::Ok,
        released(10, 2),
    );
    s.op(
        1100,
        1150,
        start("attacker-0", Role::Attacker, "a2", 2),
        Outcome::Ok,
        released(10, 1),
    );
    // Refused by the isolated node: what must happen.
    s.op(
        1200,
        6000,
        start("attacker-0", Role::Attacker, "a3", 1),
        Outcome::Unavailable,
        |_| {},
    );
    s.info(
        7000,
        Entry::new(Role::Nemesis, "nemesis", "fail_closed_end").node(1),
    );
    s.op(
        7100,
        7150,
        start("attacker-0", Role::Attacker, "a4", 1),
        Outcome::Ok,
        released(10, 0),
    );
    let v = check::fail_closed(&s.history());
    assert!(v.passed(), "{}", v.summary());
    assert_eq!(v.figures["refused_in_windows"], 1);

    // Planted bug: the minority node answers a recovery start with evaluations.
    s.op(
        1300,
        1350,
        start("attacker-1", Role::Attacker, "a5", 1),
        Outcome::Ok,
        released(10, 0),
    );
    let v = check::fail_closed(&s.history());
    assert!(
        v.violations
            .iter()
            .any(|m| m.contains("node 1 (minority) released")),
        "{}",
        v.summary()
    );
}

#[test]
fn fail_closed_lets_a_node_whose_hsm_fails_serve_charged_tests_but_no_login_or_key() {
    let mut s = Script::default();
    s.info(
        1000,
        Entry::new(Role::Nemesis, "nemesis", "keys_closed_begin")
            .node(1)
            .detail("failpoint hsm_seal=error;hsm_unseal=error"),
    );
    // A password test through the node: charged through Raft and evaluated by the
    // share-holders, allowed (the guess bound counts it).
    s.op(
        1100,
        1150,
        start("attacker-0", Role::Attacker, "a1", 1),
        Outcome::Ok,
        released(10, 2),
    );
    // Its login and a finish are refused: what must happen.
    let login = |attempt: &str| {
        let mut e = Entry::new(Role::Attacker, "attacker-0", "recover_login")
            .account("victim")
            .node(1);
        e.attempt = Some(attempt.into());
        e
    };
    s.op(1200, 1250, login("a1"), Outcome::Error, |_| {});
    s.op(
        1300,
        1350,
        Entry::new(Role::Honest, "owner-0", "recover_finish")
            .account("victim")
            .node(1),
        Outcome::Error,
        |_| {},
    );
    s.info(
        7000,
        Entry::new(Role::Nemesis, "nemesis", "keys_closed_end").node(1),
    );
    let v = check::fail_closed(&s.history());
    assert!(v.passed(), "{}", v.summary());
    assert_eq!(v.figures["refused_in_windows"], 2);

    // Planted bug: the node answers a login although it cannot open the record.
    s.op(1400, 1450, login("a1"), Outcome::Ok, |_| {});
    let v = check::fail_closed(&s.history());
    assert!(
        v.violations
            .iter()
            .any(|m| m
                .contains("node 1 (failpoint hsm_seal=error;hsm_unseal=error) released a login")),
        "{}",
        v.summary()
    );

    // Planted bug: a key from a finish on that node.
    let mut s2 = Script::default();
    s2.info(
        1000,
        Entry::new(Role::Nemesis, "nemesis", "keys_closed_begin")
            .node(2)
            .detail("hsm"),
    );
    s2.op(
        1300,
        1350,
        Entry::new(Role::Honest, "owner-0", "recover_finish")
            .account("victim")
            .node(2),
        Outcome::Ok,
        |e| {
            e.released = true;
            e.version = Some(10);
        },
    );
    let v = check::fail_closed(&s2.history());
    assert!(
        v.violations
            .iter()
            .any(|m| m.contains("node 2 (hsm) released something")),
        "{}",
        v.summary()
    );
}

#[test]
fn no_plaintext_catches_a_canary_written_to_disk() {
    let dir = tempfile::tempdir().unwrap();
    let password = b"canary-pw-00112233445566778899aabb".to_vec();
    let key: Vec<u8> = (0u8..32).collect();
    std::fs::create_dir_all(dir.path().join("data/node1")).unwrap();
    std::fs::write(dir.path().join("data/node1/db"), vec![7u8; 50_000]).unwrap();
    std::fs::write(dir.path().join("node1.log"), "INFO serving clients\n").unwrap();
    let roots = vec![dir.path().to_path_buf()];
    let v = check::no_plaintext(&roots, &[password.clone(), key.clone()]);
    assert!(v.passed(), "{}", v.summary());
    assert_eq!(v.figures["files"], 2);

    // Planted bug: a log line with the key in base64 (a debug print of a struct).
    use base64::Engine as _;
    let leaked = format!(
        "DEBUG record {{ sealed_key: \"{}\" }}\n",
        base64::engine::general_purpose::STANDARD.encode([&[0xffu8][..], &key].concat())
    );
    std::fs::write(dir.path().join("node1.log"), leaked).unwrap();
    // And the password in the sled file.
    let mut db = vec![7u8; 1000];
    db.extend_from_slice(&password);
    std::fs::write(dir.path().join("data/node1/db"), db).unwrap();
    let v = check::no_plaintext(&roots, &[password, key]);
    assert_eq!(v.figures["hits"], 2, "{}", v.summary());
    assert!(
        v.violations
            .iter()
            .any(|m| m.contains("base64") && m.contains("node1.log")),
        "{}",
        v.summary()
    );
    assert!(
        v.violations
            .iter()
            .any(|m| m.contains("raw") && m.contains("db")),
        "{}",
        v.summary()
    );
}

#[test]
fn liveness_catches_a_cluster_that_stays_down_after_healing() {
    let bound = Duration::from_secs(10);
    let good = || {
        let mut s = Script::default();
        s.info(1000, Entry::new(Role::Nemesis, "nemesis", "heal"));
        s.info(
            2500,
            Entry::new(Role::Observer, "observer", "leader").node(2),
        );
        // Failures while the cluster settles are allowed...
        s.op(
            1100,
            3000,
            Entry::new(Role::Honest, "probe", "register").account("p"),
            Outcome::Unavailable,
            |_| {},
        );
        // ...and after the bound everything works.
        s.op(
            12_000,
            12_100,
            Entry::new(Role::Honest, "probe", "register").account("p"),
            Outcome::Ok,
            |_| {},
        );
        s
    };
    let v = check::liveness(&good().history(), bound);
    assert!(v.passed(), "{}", v.summary());
    assert_eq!(v.figures["leader_after_heal_ms"], 1500);
    assert_eq!(v.figures["settled_after_heal_ms"], 100);

    // Planted bug 1: still unavailable well after the bound.
    let mut s = good();
    s.op(
        20_000,
        25_000,
        Entry::new(Role::Honest, "probe", "recover").account("p"),
        Outcome::Unavailable,
        |_| {},
    );
    let v = check::liveness(&s.history(), bound);
    assert!(
        v.violations
            .iter()
            .any(|m| m.contains("failed 19000 ms after the heal")),
        "{}",
        v.summary()
    );

    // Planted bug 2: no leader ever again.
    let mut s = Script::default();
    s.info(1000, Entry::new(Role::Nemesis, "nemesis", "heal"));
    s.op(
        1100,
        3000,
        Entry::new(Role::Honest, "probe", "register").account("p"),
        Outcome::Unavailable,
        |_| {},
    );
    let v = check::liveness(&s.history(), bound);
    assert!(
        v.violations
            .iter()
            .any(|m| m.contains("no leader observed")),
        "{}",
        v.summary()
    );
    assert!(
        v.violations
            .iter()
            .any(|m| m.contains("no honest operation succeeded")),
        "{}",
        v.summary()
    );
}
