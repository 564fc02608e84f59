//! Data-driven tests of the state machine, in the spirit of tikv/raft-rs `datadriven`.
//!
//! Each file in `tests/scripts/` is a list of blocks: a command line, a `----` line, and
//! the expected output up to a blank line. `#` lines are comments. Every log-changing
//! command is applied at the next log index (starting at 1) unless it starts with `@N`.
//! Names stand for ids: `req=r1`, `attempt=a1`, `hash=h1` are the name's bytes padded with
//! zeros; `record=blob` is the sealed record's bytes. Set `BKV_REWRITE=1` to rewrite the
//! expected output of every file from what the code does now (then review the diff).
//!
//! A successful `bootstrap` is followed at once by the share map of the fixtures (epoch 1,
//! three holders) at the next index, shown in the bootstrap's output; `stage` makes records
//! for that map, and `reset` signs with the fixtures' reset key (`reset ... forged` does
//! not).
//!
//! Commands: `bootstrap [max=N] [default=N]`, `stage ACC req=R [limit=N] [record=S]`,
//! `activate ACC v=N`, `charge ACC attempt=A hash=H`, `reset ACC v=N charge=N`,
//! `destroy ACC v=N charge=N`, `delete ACC [through=B]`, `barrier B` (`B` names what the
//! barrier answered, for a later `delete ... through=B`), and the read-only `status ACC`,
//! `count`,
//! `roundtrip` (checks `decode(encode(state))`).
//!
//! Versions are written per account: `v=1` is the account's first version staged since it
//! was last deleted, `v=2` its second, and so on. The state's own versions are the log
//! indexes of the `Stage`s; the runner translates both ways, so that a script reads the same
//! whatever else it did before.
//!
//! Besides comparing output, the runner checks on every command that a rejection leaves
//! the snapshot bytes unchanged.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use bkv_core::fixtures;
use bkv_core::{
    AccountId, AttemptId, AuditEvent, ChargeNumber, Command, GuessLimit, Outcome, RecordStatus,
    RecordVersion, Rejection, Request, RequestId, VaultState,
};

/// One script being run.
struct Runner {
    state: VaultState,
    next_index: u64,
    /// Padded id bytes back to the name used in the script.
    names: BTreeMap<Vec<u8>, String>,
    /// Per account, the state's versions of its stages since it was last deleted, in order.
    versions: BTreeMap<String, Vec<u64>>,
    /// The state's version to the script's.
    aliases: BTreeMap<u64, u64>,
    /// What each named barrier answered.
    barriers: BTreeMap<String, u64>,
}

type Args = BTreeMap<String, String>;

fn padded<const N: usize>(names: &mut BTreeMap<Vec<u8>, String>, name: &str) -> [u8; N] {
    assert!(name.len() <= N, "name {name:?} longer than {N} bytes");
    let mut out = [0u8; N];
    out[..name.len()].copy_from_slice(name.as_bytes());
    names.insert(out.to_vec(), name.to_string());
    out
}

fn num(args: &Args, key: &str) -> u64 {
    let v = args.get(key).unwrap_or_else(|| panic!("missing {key}="));
    v.parse()
        .unwrap_or_else(|_| panic!("{key}={v} is not a number"))
}

fn limit(n: u64) -> GuessLimit {
    GuessLimit::parse_max(u32::try_from(n).expect("small limit")).expect("limit in range")
}

impl Runner {
    fn new() -> Self {
        Self {
            state: VaultState::default(),
            next_index: 1,
            names: BTreeMap::new(),
            versions: BTreeMap::new(),
            aliases: BTreeMap::new(),
            barriers: BTreeMap::new(),
        }
    }

    /// The state's version of the script's `v=N` for `account` (one no record has when
    /// the account has no N-th version).
    fn real_version(&self, account: &AccountId, args: &Args) -> RecordVersion {
        let n = num(args, "v");
        let real = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| self.versions.get(account.as_str())?.get(i).copied());
        RecordVersion(real.unwrap_or(1_000_000 + n))
    }

    /// `text` with the state's versions (`v=N`, `staged=N`) written as the script's.
    fn aliased(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let words: Vec<String> = line
                .split(' ')
                .map(|w| {
                    for key in ["v=", "staged="] {
                        if let Some(n) = w.strip_prefix(key).and_then(|n| n.parse::<u64>().ok())
                            && let Some(alias) = self.aliases.get(&n)
                        {
                            return format!("{key}{alias}");
                        }
                    }
                    w.to_string()
                })
                .collect();
            out.push_str(&words.join(" "));
        }
        out
    }

    fn name(&self, bytes: &[u8]) -> String {
        self.names
            .get(bytes)
            .cloned()
            .unwrap_or_else(|| hex_string(bytes))
    }

    /// Runs one command line and renders its output.
    fn run(&mut self, line: &str) -> String {
        let mut words: Vec<&str> = line.split_whitespace().collect();
        let mut index = None;
        if let Some(at) = words.first().and_then(|w| w.strip_prefix('@')) {
            index = Some(at.parse::<u64>().expect("@N is a number"));
            words.remove(0);
        }
        let (verb, rest) = words.split_first().expect("a command");
        let account = rest
            .first()
            .filter(|w| !w.contains('='))
            .map(|w| AccountId::parse(w).expect("valid account"));
        let args: Args = rest
            .iter()
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let acc = || account.clone().expect("an account");
        let command = match *verb {
            "status" => return self.aliased(&self.status(&acc())),
            "count" => return format!("accounts={}", self.state.account_count()),
            "roundtrip" => {
                let bytes = self.state.encode();
                let back = VaultState::decode(&bytes).expect("own encoding decodes");
                assert_eq!(back, self.state);
                assert_eq!(back.digest(), self.state.digest());
                return "ok".to_string();
            }
            "bootstrap" => fixtures::bootstrap(
                limit(args.get("default").map_or(3, |_| num(&args, "default"))),
                limit(args.get("max").map_or(5, |_| num(&args, "max"))),
            ),
            "stage" => Command::Stage {
                account: acc(),
                request_id: RequestId::new(padded(&mut self.names, &args["req"])),
                guess_limit: limit(args.get("limit").map_or(3, |_| num(&args, "limit"))),
                sealed_record: args
                    .get("record")
                    .map_or(b"rec".to_vec(), |r| r.as_bytes().to_vec()),
                oprf: fixtures::oprf_record(1, 3),
            },
            "activate" => Command::Activate {
                account: acc(),
                version: self.real_version(&acc(), &args),
            },
            "charge" => Command::ChargeGuess {
                account: acc(),
                attempt_id: AttemptId::new(padded(&mut self.names, &args["attempt"])),
                request_hash: padded(&mut self.names, &args["hash"]),
            },
            "reset" => {
                let (version, charge) = (
                    self.real_version(&acc(), &args),
                    ChargeNumber(num(&args, "charge")),
                );
                let signed_for = if rest.contains(&"forged") {
                    ChargeNumber(charge.get() + 1)
                } else {
                    charge
                };
                Command::ResetGuesses {
                    account: acc(),
                    version,
                    charge,
                    signature: fixtures::reset_signature(&acc(), version, signed_for),
                }
            }
            "destroy" => Command::Destroy {
                account: acc(),
                version: self.real_version(&acc(), &args),
                charge: ChargeNumber(num(&args, "charge")),
            },
            "delete" => match args.get("through") {
                Some(name) => Command::DeleteThrough {
                    account: acc(),
                    through: RecordVersion(
                        *self
                            .barriers
                            .get(name)
                            .unwrap_or_else(|| panic!("no barrier {name}")),
                    ),
                },
                None => Command::Delete { account: acc() },
            },
            "barrier" => Command::Barrier,
            "set-share-map" => fixtures::set_share_map(1, 3),
            other => panic!("unknown command {other:?}"),
        };
        let index = index.unwrap_or(self.next_index);
        self.next_index = index + 1;
        let before = self.state.encode();
        let applied = self.state.apply(
            index,
            &Request {
                at_unix_ms: 1_700_000_000_000 + index,
                command,
            },
        );
        if matches!(applied.outcome, Outcome::Rejected(_)) {
            assert_eq!(before, self.state.encode(), "a rejection changed the state");
            assert!(applied.events.is_empty(), "a rejection emitted events");
        }
        if let (Outcome::Barrier { through }, Some(name)) = (&applied.outcome, &account) {
            self.barriers
                .insert(name.as_str().to_string(), through.get());
        }
        match (&applied.outcome, &account) {
            (Outcome::Staged { version }, Some(account))
                if !self.aliases.contains_key(&version.get()) =>
            {
                let staged = self
                    .versions
                    .entry(account.as_str().to_string())
                    .or_default();
                staged.push(version.get());
                self.aliases.insert(version.get(), staged.len() as u64);
            }
            // Aliases go with the account; versions a deletion left stay as they were.
            (Outcome::Deleted { .. }, Some(account))
                if self.state.account_status(account).record == RecordStatus::Absent
                    && self.state.account_status(account).staged.is_none() =>
            {
                self.versions.remove(account.as_str());
            }
            _ => {}
        }
        let mut out = self.outcome(&applied.outcome);
        for e in &applied.events {
            out.push('\n');
            out.push_str(&render_event(e));
        }
        if applied.outcome == Outcome::Bootstrapped {
            out.push('\n');
            out.push_str(&self.run("set-share-map"));
        }
        self.aliased(&out)
    }

    fn outcome(&self, outcome: &Outcome) -> String {
        match outcome {
            Outcome::Bootstrapped => "bootstrapped".to_string(),
            Outcome::ShareMapSet { epoch } => format!("share-map-set epoch={epoch}"),
            Outcome::Staged { version } => format!("staged v={version}"),
            Outcome::Activated { version } => format!("activated v={version}"),
            Outcome::Charged {
                version,
                charge,
                guesses_remaining,
                guess_limit,
                request_id,
                sealed_record,
                oprf: _,
            } => format!(
                "charged v={version} charge={charge} remaining={guesses_remaining} \
                 limit={guess_limit} req={} record={}",
                self.name(request_id.as_bytes()),
                String::from_utf8_lossy(sealed_record)
            ),
            Outcome::Reset { version, reset } => format!("reset v={version} reset={reset}"),
            Outcome::Destroyed { version } => format!("destroyed v={version}"),
            Outcome::Deleted { existed } => format!("deleted existed={existed}"),
            Outcome::Barrier { .. } => "barrier".to_string(),
            Outcome::ShareAdded { version, node_id } => {
                format!("share-added v={version} node={node_id}")
            }
            Outcome::SharesRefreshed { version } => format!("shares-refreshed v={version}"),
            Outcome::Rejected(r) => format!("rejected {}", render_rejection(r)),
        }
    }

    fn status(&self, account: &AccountId) -> String {
        let s = self.state.account_status(account);
        let record = match s.record {
            RecordStatus::Absent => "absent".to_string(),
            RecordStatus::Active {
                version,
                guesses_used,
                guess_limit,
                last_charge,
                last_finished,
            } => format!(
                "active v={version} used={guesses_used} limit={guess_limit} \
                 last_charge={last_charge} finished={last_finished}"
            ),
            RecordStatus::Destroyed { version } => format!("destroyed v={version}"),
        };
        match s.staged {
            Some(v) => format!("{record} staged={v}"),
            None => record,
        }
    }
}

fn render_rejection(r: &Rejection) -> String {
    match r {
        Rejection::NotBootstrapped => "not-bootstrapped".into(),
        Rejection::AlreadyBootstrapped => "already-bootstrapped".into(),
        Rejection::GuessLimitTooHigh { requested, max } => {
            format!("guess-limit-too-high requested={requested} max={max}")
        }
        Rejection::NoRecord => "no-record".into(),
        Rejection::NoSuchVersion => "no-such-version".into(),
        Rejection::RecordDestroyed { version } => format!("record-destroyed v={version}"),
        Rejection::VersionNotActive => "version-not-active".into(),
        Rejection::AttemptConflict => "attempt-conflict".into(),
        Rejection::NotExhausted => "not-exhausted".into(),
        Rejection::BadShareMap(why) => format!("bad-share-map {why}"),
        Rejection::ShareMapEpoch { epoch, current } => {
            format!("share-map-epoch epoch={epoch} current={current}")
        }
        Rejection::NoShareMap => "no-share-map".into(),
        Rejection::StaleShareMap { current } => format!("stale-share-map current={current}"),
        Rejection::BadResetSignature => "bad-reset-signature".into(),
        Rejection::TicketUsed { charge } => format!("ticket-used charge={charge}"),
        Rejection::BadRepair(why) => format!("bad-repair {why}"),
        Rejection::BadRefresh(why) => format!("bad-refresh {why}"),
        Rejection::StaleLogIndex { index, last } => {
            format!("stale-log-index index={index} last={last}")
        }
    }
}

fn render_event(e: &AuditEvent) -> String {
    let mut out = format!("event {}", e.kind.as_str());
    if let Some(a) = &e.account {
        write!(out, " {a}").ok();
    }
    if let Some(v) = e.version {
        write!(out, " v={v}").ok();
    }
    if let Some(c) = e.charge {
        write!(out, " charge={c}").ok();
    }
    if let Some(r) = e.guesses_remaining {
        write!(out, " remaining={r}").ok();
    }
    out
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs one script; returns the file as it should read given what the code does.
fn run_file(text: &str) -> String {
    let mut runner = Runner::new();
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        out.push_str(line);
        out.push('\n');
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        assert_eq!(lines.next(), Some("----"), "no ---- after {line:?}");
        out.push_str("----\n");
        // Skip the expected block; it is replaced by the actual output.
        while lines.peek().is_some_and(|l| !l.trim().is_empty()) {
            lines.next();
        }
        out.push_str(&runner.run(trimmed));
        out.push('\n');
    }
    out
}

#[test]
fn scripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts");
    let rewrite = std::env::var_os("BKV_REWRITE").is_some();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("scripts dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(files.len() >= 7, "scripts missing: {files:?}");
    let mut failed = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("read script");
        let actual = run_file(&text);
        if actual == text {
            continue;
        }
        if rewrite {
            std::fs::write(path, &actual).expect("rewrite script");
            continue;
        }
        let (n, (want, got)) = text
            .lines()
            .zip(actual.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .unwrap_or((
                text.lines().count().min(actual.lines().count()),
                ("<end>", "<end>"),
            ));
        failed.push(format!(
            "{}:{}: expected {want:?}, got {got:?}",
            path.display(),
            n + 1
        ));
    }
    assert!(
        failed.is_empty(),
        "script mismatches:\n{}",
        failed.join("\n")
    );
}
