//! What each load-generating client records: one sample per finished operation (when it
//! started, how long it took, how it ended), and the summaries made from all of them:
//! counts, throughput, latency percentiles, the longest stretch without a success, and a
//! per-second timeline.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::mix::Op;

/// How one operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It did what it should (a wrong guess counts as success when the vault refused it).
    Ok,
    /// It failed; the error's kind.
    Failed(&'static str),
}

/// One finished operation, times relative to the run's start.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// The operation.
    pub op: Op,
    /// When it started, µs since the run's start.
    pub start_us: u64,
    /// How long it took, µs.
    pub took_us: u64,
    /// How it ended.
    pub ending: Ending,
}

impl Sample {
    /// When it finished, µs since the run's start.
    pub fn end_us(&self) -> u64 {
        self.start_us.saturating_add(self.took_us)
    }
}

/// The samples of one client.
#[derive(Debug)]
pub struct Recorder {
    origin: Instant,
    samples: Vec<Sample>,
}

impl Recorder {
    /// A recorder measuring from `origin`.
    pub fn new(origin: Instant) -> Self {
        Self {
            origin,
            samples: Vec::with_capacity(4096),
        }
    }

    /// Records an operation that ran from `started` until now.
    pub fn record(&mut self, op: Op, started: Instant, ending: Ending) -> Sample {
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let sample = Sample {
            op,
            start_us: micros(started.saturating_duration_since(self.origin)),
            took_us: micros(started.elapsed()),
            ending,
        };
        self.samples.push(sample);
        sample
    }

    /// The samples.
    pub fn into_samples(self) -> Vec<Sample> {
        self.samples
    }
}

/// Latency percentiles of the successful operations, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

impl Latency {
    /// Nearest-rank percentiles of durations in µs; all zero for none.
    pub fn of(mut micros: Vec<u64>) -> Self {
        if micros.is_empty() {
            return Self::default();
        }
        micros.sort_unstable();
        let n = micros.len();
        let rank = |q: f64| {
            // 1-based nearest rank, clamped into the slice.
            let r = (q * n as f64).ceil() as usize;
            micros[r.clamp(1, n) - 1] as f64 / 1000.0
        };
        let sum: u128 = micros.iter().map(|m| u128::from(*m)).sum();
        Self {
            mean: sum as f64 / n as f64 / 1000.0,
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: micros[n - 1] as f64 / 1000.0,
        }
    }
}

/// The figures of one operation over the measured window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpSummary {
    /// The operation.
    pub op: &'static str,
    /// Finished successfully in the window.
    pub ok: u64,
    /// Failed in the window.
    pub errors: u64,
    /// Successes per second.
    pub per_second: f64,
    /// Latency of the successes.
    pub latency_ms: Latency,
}

/// One second of the run: what finished in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Second {
    /// Seconds since the window's start.
    pub second: u64,
    /// Successes.
    pub ok: u64,
    /// Failures.
    pub errors: u64,
}

/// The longest stretch of the window in which no operation succeeded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Gap {
    /// Its length, ms.
    pub ms: f64,
    /// Where it started, seconds since the window's start.
    pub from_s: f64,
}

/// Everything computed from the samples that finished in a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Per operation, those the mix draws.
    pub operations: Vec<OpSummary>,
    /// Successes of all operations.
    pub ok: u64,
    /// Failures of all operations.
    pub errors: u64,
    /// Successes per second, all operations.
    pub per_second: f64,
    /// Failures by operation and kind (`recover/unavailable`).
    pub error_kinds: BTreeMap<String, u64>,
    /// The longest stretch without a success.
    pub longest_gap: Gap,
    /// What finished in each second.
    pub timeline: Vec<Second>,
}

impl Summary {
    /// Summarises the samples that finished in `[from_us, to_us)`, for the operations in
    /// `ops`.
    pub fn of(samples: &[Sample], ops: &[Op], from_us: u64, to_us: u64) -> Self {
        let window = to_us.saturating_sub(from_us).max(1);
        let secs = window as f64 / 1e6;
        let inside: Vec<&Sample> = samples
            .iter()
            .filter(|s| (from_us..to_us).contains(&s.end_us()))
            .collect();
        let mut operations = Vec::new();
        for op in ops {
            let of_op: Vec<&&Sample> = inside.iter().filter(|s| s.op == *op).collect();
            let oks: Vec<u64> = of_op
                .iter()
                .filter(|s| s.ending == Ending::Ok)
                .map(|s| s.took_us)
                .collect();
            let ok = oks.len() as u64;
            operations.push(OpSummary {
                op: op.name(),
                ok,
                errors: of_op.len() as u64 - ok,
                per_second: ok as f64 / secs,
                latency_ms: Latency::of(oks),
            });
        }
        let mut error_kinds = BTreeMap::new();
        for s in &inside {
            if let Ending::Failed(kind) = s.ending {
                *error_kinds
                    .entry(format!("{}/{kind}", s.op.name()))
                    .or_insert(0) += 1;
            }
        }
        let mut ok_ends: Vec<u64> = inside
            .iter()
            .filter(|s| s.ending == Ending::Ok)
            .map(|s| s.end_us())
            .collect();
        ok_ends.sort_unstable();
        let mut gap = (0u64, from_us);
        let mut last = from_us;
        for end in ok_ends.iter().copied().chain([to_us]) {
            if end - last > gap.0 {
                gap = (end - last, last);
            }
            last = end;
        }
        let seconds = window.div_ceil(1_000_000);
        let mut timeline: Vec<Second> = (0..seconds)
            .map(|second| Second {
                second,
                ..Second::default()
            })
            .collect();
        for s in &inside {
            let i = ((s.end_us() - from_us) / 1_000_000) as usize;
            if let Some(slot) = timeline.get_mut(i) {
                match s.ending {
                    Ending::Ok => slot.ok += 1,
                    Ending::Failed(_) => slot.errors += 1,
                }
            }
        }
        let ok = ok_ends.len() as u64;
        Self {
            operations,
            ok,
            errors: inside.len() as u64 - ok,
            per_second: ok as f64 / secs,
            error_kinds,
            longest_gap: Gap {
                ms: gap.0 as f64 / 1000.0,
                from_s: gap.1.saturating_sub(from_us) as f64 / 1e6,
            },
            timeline,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(op: Op, start_ms: u64, took_ms: u64, ending: Ending) -> Sample {
        Sample {
            op,
            start_us: start_ms * 1000,
            took_us: took_ms * 1000,
            ending,
        }
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let l = Latency::of((1..=100).map(|ms| ms * 1000).collect());
        assert_eq!((l.p50, l.p90, l.p99, l.max), (50.0, 90.0, 99.0, 100.0));
        assert!((l.mean - 50.5).abs() < 1e-9);
        let one = Latency::of(vec![2500]);
        assert_eq!((one.p50, one.p99, one.max), (2.5, 2.5, 2.5));
        assert_eq!(Latency::of(Vec::new()), Latency::default());
    }

    #[test]
    fn a_window_counts_what_finished_in_it_and_finds_the_outage() {
        let samples = vec![
            // Before the window (warm-up): ignored.
            sample(Op::Recover, 0, 500, Ending::Ok),
            sample(Op::Recover, 1_000, 10, Ending::Ok),
            sample(Op::Recover, 1_100, 20, Ending::Failed("unavailable")),
            sample(Op::Register, 1_200, 30, Ending::Ok),
            // Nothing succeeds from 1.23 s to 2.5 s.
            sample(Op::Recover, 2_400, 100, Ending::Ok),
            // Finishes after the window: ignored.
            sample(Op::Recover, 2_950, 100, Ending::Ok),
        ];
        let s = Summary::of(&samples, &[Op::Recover, Op::Register], 1_000_000, 3_000_000);
        assert_eq!((s.ok, s.errors), (3, 1));
        assert!((s.per_second - 1.5).abs() < 1e-9);
        let recover = &s.operations[0];
        assert_eq!((recover.op, recover.ok, recover.errors), ("recover", 2, 1));
        assert_eq!(recover.latency_ms.max, 100.0);
        assert_eq!(s.error_kinds.get("recover/unavailable"), Some(&1));
        assert!(
            (s.longest_gap.ms - 1270.0).abs() < 1e-9,
            "{:?}",
            s.longest_gap
        );
        assert!((s.longest_gap.from_s - 0.23).abs() < 1e-9);
        assert_eq!(s.timeline.len(), 2);
        assert_eq!((s.timeline[0].ok, s.timeline[0].errors), (2, 1));
        assert_eq!((s.timeline[1].ok, s.timeline[1].errors), (1, 0));
    }
}
