//! bkv-failpoints: named places in bkv's code where a chaos test can make the node sleep,
//! fail or panic. Compiled in only by the `failpoints` feature of `bkv-raft`, `bkv-hsm` and
//! `bkv-node` (never in a default or release build).
//!
//! A failpoint is configured by a spec, `name=action;name=action`, read once from the
//! environment variable [`ENV_VAR`] (`BKV_FAILPOINTS`) on first use, and changed at run time
//! with [`configure`], [`remove`] and [`clear`] (the node exposes them on its HTTP port). An
//! action is `[P%][N*]kind[(arg)]`:
//!
//! - `off`: nothing (the same as no entry);
//! - `on`: the place does what it was built to do when switched on (the `lie_*` places: a
//!   node that lies to its peers; see [`on`]);
//! - `sleep(ms)`: wait `ms` milliseconds, then go on;
//! - `error` or `error(text)`: the operation fails with an I/O error naming the failpoint;
//! - `panic` or `panic(text)`: the thread (or task) panics;
//! - `P%`: fire with probability P percent, `N*`: fire N times, then turn off.
//!
//! Example: `BKV_FAILPOINTS="log_flush=sleep(200);hsm_seal=3*error"`.
//!
//! The places bkv defines (see [`KNOWN`]): `log_flush` (every sled flush of the Raft log and
//! vote), `log_append` (before a log append is written), `vote_save` (before a vote is
//! written), `sm_apply` (before entries are applied to the state machine), `snapshot_persist`
//! (before a snapshot is written), `hsm_seal` and `hsm_unseal` (on the HSM worker, before the
//! PKCS#11 calls); and three switches that make a node lie like a compromised one:
//! `lie_evaluate_unchecked` (it evaluates its OPRF key share with no charge and no ledger),
//! `lie_skip_charge` (its RecoverStart makes up a charge instead of committing one) and
//! `lie_fake_reset` (after each charge it commits, it proposes a reset with a made-up
//! signature); and `planted_charge_reuse`, a bug planted on purpose for the chaos suite to
//! catch (bkv-node's `planted` module: a recovery start answered without a committed charge).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// The environment variable read on first use.
pub const ENV_VAR: &str = "BKV_FAILPOINTS";

/// The failpoints that bkv's code defines.
pub const KNOWN: &[&str] = &[
    "log_flush",
    "log_append",
    "vote_save",
    "sm_apply",
    "snapshot_persist",
    "hsm_seal",
    "hsm_unseal",
    "lie_evaluate_unchecked",
    "lie_skip_charge",
    "lie_fake_reset",
    "planted_charge_reuse",
];

/// What a failpoint does when it fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Nothing.
    Off,
    /// Switched on: the place does what it was built to do ([`on`]).
    On,
    /// Wait, then go on.
    Sleep(Duration),
    /// Fail the operation with this text.
    Error(String),
    /// Panic with this text.
    Panic(String),
}

/// A configured action: what, how often, how many times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// What it does.
    pub kind: Kind,
    /// Chance of firing on each pass, in percent (1..=100).
    pub percent: u8,
    /// Fires left, `None` for no limit.
    pub remaining: Option<u64>,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.percent < 100 {
            write!(f, "{}%", self.percent)?;
        }
        if let Some(n) = self.remaining {
            write!(f, "{n}*")?;
        }
        match &self.kind {
            Kind::Off => f.write_str("off"),
            Kind::On => f.write_str("on"),
            Kind::Sleep(d) => write!(f, "sleep({})", d.as_millis()),
            Kind::Error(t) if t.is_empty() => f.write_str("error"),
            Kind::Error(t) => write!(f, "error({t})"),
            Kind::Panic(t) if t.is_empty() => f.write_str("panic"),
            Kind::Panic(t) => write!(f, "panic({t})"),
        }
    }
}

/// A spec that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad failpoint spec {entry:?}: {reason}")]
pub struct SpecError {
    /// The entry that failed.
    pub entry: String,
    /// Why.
    pub reason: &'static str,
}

/// Parses one action (`[P%][N*]kind[(arg)]`).
pub fn parse_action(text: &str) -> Result<Action, SpecError> {
    let bad = |reason| SpecError {
        entry: text.to_string(),
        reason,
    };
    let mut rest = text.trim();
    let mut percent = 100u8;
    if let Some((p, r)) = rest.split_once('%') {
        percent = p
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|p| (1..=100).contains(p))
            .ok_or_else(|| bad("the percentage must be 1..=100"))?;
        rest = r.trim();
    }
    let mut remaining = None;
    if let Some((n, r)) = rest.split_once('*') {
        remaining = Some(
            n.trim()
                .parse::<u64>()
                .map_err(|_| bad("the count before * must be a number"))?,
        );
        rest = r.trim();
    }
    let (name, arg) = match rest.split_once('(') {
        Some((name, tail)) => {
            let arg = tail
                .strip_suffix(')')
                .ok_or_else(|| bad("missing closing parenthesis"))?;
            (name.trim(), Some(arg.trim()))
        }
        None => (rest, None),
    };
    let kind = match (name, arg) {
        ("off", None) => Kind::Off,
        ("on", None) => Kind::On,
        ("sleep", Some(ms)) => Kind::Sleep(Duration::from_millis(
            ms.parse::<u64>()
                .map_err(|_| bad("sleep takes milliseconds"))?,
        )),
        ("error", arg) => Kind::Error(arg.unwrap_or_default().to_string()),
        ("panic", arg) => Kind::Panic(arg.unwrap_or_default().to_string()),
        _ => {
            return Err(bad(
                "expected off, on, sleep(ms), error[(text)] or panic[(text)]",
            ));
        }
    };
    Ok(Action {
        kind,
        percent,
        remaining,
    })
}

/// Parses a whole spec (`name=action;name=action`); empty entries are skipped.
pub fn parse_spec(spec: &str) -> Result<Vec<(String, Action)>, SpecError> {
    let mut out = Vec::new();
    for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, action) = entry.split_once('=').ok_or_else(|| SpecError {
            entry: entry.to_string(),
            reason: "expected name=action",
        })?;
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(SpecError {
                entry: entry.to_string(),
                reason: "a name is letters, digits and underscores",
            });
        }
        out.push((name.to_string(), parse_action(action)?));
    }
    Ok(out)
}

#[derive(Debug, Default)]
struct Point {
    action: Option<Action>,
    fired: u64,
}

#[derive(Debug, Default)]
struct Registry {
    points: BTreeMap<String, Point>,
    rng: u64,
}

/// Whether any action is configured: the fast path of [`eval`] when none is.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static SEED: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut r = Registry {
            rng: SEED.load(Ordering::Relaxed) ^ u64::from(std::process::id()),
            ..Registry::default()
        };
        if let Ok(spec) = std::env::var(ENV_VAR) {
            match parse_spec(&spec) {
                Ok(entries) => {
                    for (name, action) in entries {
                        tracing::warn!(failpoint = %name, %action, "failpoint set from {ENV_VAR}");
                        r.points.entry(name).or_default().action = Some(action);
                    }
                }
                Err(e) => tracing::error!(error = %e, "{ENV_VAR} ignored"),
            }
        }
        ACTIVE.store(
            r.points.values().any(|p| p.action.is_some()),
            Ordering::Release,
        );
        Mutex::new(r)
    })
}

fn with_registry<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    // The registry holds plain data; a panic elsewhere cannot leave it inconsistent.
    let mut r = registry().lock().unwrap_or_else(PoisonError::into_inner);
    let out = f(&mut r);
    ACTIVE.store(
        r.points.values().any(|p| p.action.is_some()),
        Ordering::Release,
    );
    out
}

/// Reads [`ENV_VAR`] now (it is otherwise read on first use) and logs what it set.
pub fn init() {
    let _ = registry();
}

/// Applies a spec at run time: each entry replaces that failpoint's action (`off` turns it
/// off). Nothing changes if the spec does not parse.
pub fn configure(spec: &str) -> Result<(), SpecError> {
    let entries = parse_spec(spec)?;
    with_registry(|r| {
        for (name, action) in entries {
            tracing::warn!(failpoint = %name, %action, "failpoint set");
            let point = r.points.entry(name).or_default();
            point.action = (action.kind != Kind::Off).then_some(action);
        }
    });
    Ok(())
}

/// Turns one failpoint off.
pub fn remove(name: &str) {
    with_registry(|r| {
        if let Some(p) = r.points.get_mut(name) {
            p.action = None;
        }
    });
}

/// Turns every failpoint off (counts of fires are kept).
pub fn clear() {
    with_registry(|r| {
        for p in r.points.values_mut() {
            p.action = None;
        }
    });
    tracing::warn!("failpoints cleared");
}

/// How many times `name` fired since the process started.
pub fn fired(name: &str) -> u64 {
    with_registry(|r| r.points.get(name).map_or(0, |p| p.fired))
}

/// One line per failpoint that is set or has fired: `name action fired=N`.
pub fn describe() -> String {
    with_registry(|r| {
        let mut out = String::new();
        for (name, p) in &r.points {
            let action = p
                .action
                .as_ref()
                .map_or_else(|| "off".to_string(), Action::to_string);
            out.push_str(&format!("{name} {action} fired={}\n", p.fired));
        }
        out
    })
}

/// What a failpoint does on this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fire {
    /// Switched on.
    On,
    /// Wait this long.
    Sleep(Duration),
    /// Fail with this text.
    Error(String),
    /// Panic with this text.
    Panic(String),
}

/// Decides whether `name` fires on this pass, counting it if so.
pub fn eval(name: &str) -> Option<Fire> {
    // Reads the environment on first use, so that ACTIVE reflects it.
    let _ = registry();
    if !ACTIVE.load(Ordering::Acquire) {
        return None;
    }
    with_registry(|r| {
        // xorshift64*: enough for a percentage.
        r.rng ^= r.rng << 13;
        r.rng ^= r.rng >> 7;
        r.rng ^= r.rng << 17;
        let roll = r.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) % 100;
        let point = r.points.get_mut(name)?;
        let action = point.action.as_mut()?;
        if roll >= u64::from(action.percent) {
            return None;
        }
        let fire = match &action.kind {
            Kind::Off => return None,
            Kind::On => Fire::On,
            Kind::Sleep(d) => Fire::Sleep(*d),
            Kind::Error(t) => Fire::Error(t.clone()),
            Kind::Panic(t) => Fire::Panic(t.clone()),
        };
        if let Some(n) = action.remaining.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                point.action = None;
            }
        }
        point.fired += 1;
        Some(fire)
    })
}

fn failure(name: &str, text: &str) -> io::Error {
    if text.is_empty() {
        io::Error::other(format!("failpoint {name}"))
    } else {
        io::Error::other(format!("failpoint {name}: {text}"))
    }
}

/// Whether switch `name` is on for this pass (any action but `off` counts, so `50%on` and
/// `3*on` work as they do elsewhere); counted as a fire when it is.
pub fn on(name: &str) -> bool {
    eval(name).is_some()
}

/// Passes failpoint `name` in async code: sleeps (without blocking the thread), fails with
/// an I/O error, panics, or does nothing.
pub async fn hit(name: &str) -> Result<(), io::Error> {
    match eval(name) {
        // `on` means nothing to a place that sleeps, fails or panics.
        None | Some(Fire::On) => Ok(()),
        Some(Fire::Sleep(d)) => {
            tracing::debug!(
                failpoint = name,
                ms = d.as_millis() as u64,
                "failpoint sleeps"
            );
            tokio::time::sleep(d).await;
            Ok(())
        }
        Some(Fire::Error(text)) => {
            tracing::warn!(failpoint = name, "failpoint fails the operation");
            Err(failure(name, &text))
        }
        Some(Fire::Panic(text)) => {
            tracing::warn!(failpoint = name, "failpoint panics");
            panic!("failpoint {name} panics {text}")
        }
    }
}

/// Passes failpoint `name` on a blocking thread (the HSM workers): like [`hit`], but a
/// sleep blocks the thread, as a slow device would.
pub fn hit_blocking(name: &str) -> Result<(), io::Error> {
    match eval(name) {
        // `on` means nothing to a place that sleeps, fails or panics.
        None | Some(Fire::On) => Ok(()),
        Some(Fire::Sleep(d)) => {
            std::thread::sleep(d);
            Ok(())
        }
        Some(Fire::Error(text)) => {
            tracing::warn!(failpoint = name, "failpoint fails the operation");
            Err(failure(name, &text))
        }
        Some(Fire::Panic(text)) => {
            tracing::warn!(failpoint = name, "failpoint panics");
            panic!("failpoint {name} panics {text}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_and_print_back() {
        for text in [
            "off",
            "on",
            "3*on",
            "sleep(200)",
            "error",
            "error(disk full)",
            "panic",
            "3*error",
            "50%sleep(10)",
            "25%2*panic(boom)",
        ] {
            let a = parse_action(text).unwrap();
            assert_eq!(a.to_string(), text);
        }
        assert_eq!(
            parse_action(" 3 * sleep( 5 ) ").unwrap(),
            Action {
                kind: Kind::Sleep(Duration::from_millis(5)),
                percent: 100,
                remaining: Some(3),
            }
        );
        for bad in [
            "",
            "sleep",
            "sleep(x)",
            "0%error",
            "101%error",
            "x*error",
            "explode",
            "error(oops",
        ] {
            assert!(parse_action(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn specs_parse_entries_in_order() {
        let spec = parse_spec("log_flush=sleep(200); hsm_seal=error ;").unwrap();
        assert_eq!(spec.len(), 2);
        assert_eq!(spec[0].0, "log_flush");
        assert_eq!(spec[1].1.kind, Kind::Error(String::new()));
        assert!(parse_spec("no-equals").is_err());
        assert!(parse_spec("bad name=error").is_err());
    }

    // One test touches the process-wide registry, so that tests running in parallel cannot
    // see each other's settings.
    #[tokio::test]
    async fn the_registry_fires_counts_and_clears() {
        assert_eq!(eval("t_never_set"), None);
        configure("t_err=2*error(disk);t_sleep=sleep(1);t_panic=panic").unwrap();
        let e = hit("t_err").await.unwrap_err();
        assert!(e.to_string().contains("failpoint t_err: disk"), "{e}");
        assert!(hit_blocking("t_err").is_err());
        // Two fires, then off.
        assert!(hit("t_err").await.is_ok());
        assert_eq!(fired("t_err"), 2);
        assert!(hit("t_sleep").await.is_ok());
        assert_eq!(fired("t_sleep"), 1);
        let panicked = std::panic::catch_unwind(|| hit_blocking("t_panic"));
        assert!(panicked.is_err());
        assert!(
            describe().contains("t_sleep sleep(1) fired=1"),
            "{}",
            describe()
        );
        remove("t_sleep");
        assert!(describe().contains("t_sleep off fired=1"));
        assert!(configure("t_x=explode").is_err());
        configure("t_half=50%error").unwrap();
        let fails = (0..400).filter(|_| hit_blocking("t_half").is_err()).count();
        assert!((100..300).contains(&fails), "{fails} of 400 failed at 50%");
        clear();
        assert!(hit_blocking("t_half").is_ok());
        assert!(hit_blocking("t_panic").is_ok());
    }
}
