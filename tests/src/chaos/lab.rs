//! Chaos runs on the kernel-fault harness ([`crate::netns`]): the cluster options of a run in
//! a lab, and the seeded random schedule that draws from the whole fault list: the kernel's
//! (partitions full, one-way and flapping, packet loss, duplication, delay with jitter and
//! reordering, connection resets, rate limits, a node cut off from the clients, full disks)
//! and the processes' (kill -9, SIGSTOP, slow and failing fsync, failing storage and HSM).
//! The soak (`make soak`) is the same schedule at a faster pace for longer.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use super::proxy::Fault;
use super::runner::chaos_options;
use super::schedule::{Schedule, Step, draw_load, draw_target};
use crate::netns::Lab;
use crate::options::{ClusterOptions, RaftOptions};

/// MiB of each node's `tmpfs` data dir (filled by the full-disk fault).
pub const DATA_DISK_MIB: u64 = 256;

/// Options of a chaos cluster of `nodes` nodes in `lab`: the failpoints build, no proxy
/// (the kernel injects the link faults), data dirs on `tmpfs`, a snapshot every 500 entries
/// (so that snapshots meet the faults, full disks included).
pub fn lab_options(nodes: u64, lab: Lab) -> ClusterOptions {
    let mut o = chaos_options(nodes);
    o.peer_proxy = false;
    o.netns = Some(lab);
    o.data_disk_mib = DATA_DISK_MIB;
    o.raft = RaftOptions {
        snapshot_every_logs: 500,
        logs_kept_after_snapshot: 100,
        ..RaftOptions::default()
    };
    o
}

/// How fast faults follow each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// A fault held 1 to 3.5 s, then 0.5 to 2 s of calm (as the loopback random run).
    Test,
    /// A fault held 0.5 to 1.5 s, then 0.25 to 0.75 s of calm: a fault every 1.5 s on
    /// average, plus what the heals take (restarts, catching up: about 2 s a step more in the
    /// hour of v1, which ran 874 steps at the earlier 0.6 to 2 s and 0.3 to 1 s).
    Soak,
}

/// The kinds of fault the lab schedule draws from, by name (the figures count them so).
pub const KINDS: &[&str] = &[
    "partition_blackhole",
    "partition_refused",
    "one_way",
    "delay_jitter_reorder",
    "reset",
    "kill",
    "pause",
    "slow_fsync",
    "storage_error",
    "hsm_error",
    "fsync_error",
    "packet_loss",
    "duplication",
    "rate_limit",
    "cut_from_clients",
    "flapping_partition",
    "disk_full",
];

/// The kind of `step`, one of [`KINDS`].
pub fn kind(step: &Step) -> &'static str {
    match step {
        Step::Isolate(_, Fault::Drop) => "partition_refused",
        Step::Isolate(..) => "partition_blackhole",
        Step::OneWay(..) => "one_way",
        Step::Slow(..) => "delay_jitter_reorder",
        Step::Reset => "reset",
        Step::Kill(_) => "kill",
        Step::Pause(..) => "pause",
        Step::SlowDisk(..) => "slow_fsync",
        Step::DiskError(_) => "storage_error",
        Step::HsmError(_) => "hsm_error",
        Step::FsyncError(_) => "fsync_error",
        Step::Lose(..) => "packet_loss",
        Step::Duplicate(_) => "duplication",
        Step::RateLimit(..) => "rate_limit",
        Step::CutFromClients(_) => "cut_from_clients",
        Step::Flap(..) => "flapping_partition",
        Step::DiskFull(_) => "disk_full",
    }
}

/// Draws a schedule of about `duration` for `nodes` nodes from `seed`, every kind of
/// [`KINDS`] equally likely.
pub fn lab_schedule(seed: u64, duration: Duration, nodes: u64, pace: Pace) -> Schedule {
    let mut rng = StdRng::seed_from_u64(seed);
    let load = draw_load(&mut rng, seed);
    let (hold, rest) = match pace {
        Pace::Test => (1000..=3500, 500..=2000),
        Pace::Soak => (500..=1500, 250..=750),
    };
    let mut steps = Vec::new();
    let mut total = Duration::ZERO;
    // Bounded by count as well as by time.
    for _ in 0..100_000 {
        if total >= duration {
            break;
        }
        let target = draw_target(&mut rng, nodes);
        let a = rng.gen_range(1..=nodes);
        let b = (a % nodes) + 1;
        let step = match rng.gen_range(0..KINDS.len()) {
            0 => Step::Isolate(target, Fault::Blackhole),
            1 => Step::Isolate(target, Fault::Drop),
            2 => Step::OneWay(a, b),
            3 => Step::Slow(
                target,
                Duration::from_millis(rng.gen_range(10..=80)),
                Duration::from_millis(rng.gen_range(20..=120)),
            ),
            4 => Step::Reset,
            5 => Step::Kill(target),
            6 => Step::Pause(target, Duration::from_millis(rng.gen_range(300..=2500))),
            7 => Step::SlowDisk(target, rng.gen_range(50..=400)),
            8 => Step::DiskError(target),
            9 => Step::HsmError(target),
            10 => Step::FsyncError(target),
            11 => Step::Lose(target, rng.gen_range(5..=40), rng.gen_bool(0.5)),
            12 => Step::Duplicate(target),
            13 => Step::RateLimit(target, rng.gen_range(64..=512)),
            14 => Step::CutFromClients(target),
            15 => Step::Flap(target, Duration::from_millis(rng.gen_range(200..=1000))),
            _ => Step::DiskFull(target),
        };
        let hold = Duration::from_millis(rng.gen_range(hold.clone()));
        let rest = Duration::from_millis(rng.gen_range(rest.clone()));
        total += hold + rest;
        steps.push((step, hold, rest));
    }
    Schedule {
        seed,
        nodes,
        load,
        steps,
    }
}

/// How many steps of each kind `schedule` has.
pub fn kinds_of(schedule: &Schedule) -> BTreeMap<&'static str, u64> {
    let mut out = BTreeMap::new();
    for (step, _, _) in &schedule.steps {
        *out.entry(kind(step)).or_default() += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_schedule_draws_every_kind_and_replays_from_its_seed() {
        let a = lab_schedule(9, Duration::from_secs(600), 3, Pace::Test);
        let b = lab_schedule(9, Duration::from_secs(600), 3, Pace::Test);
        assert_eq!(a.describe(), b.describe());
        let kinds = kinds_of(&a);
        assert_eq!(kinds.len(), KINDS.len(), "{kinds:?}");
        let soak = lab_schedule(9, Duration::from_secs(3600), 3, Pace::Soak);
        assert!(soak.steps.len() >= 1_200, "{} steps", soak.steps.len());
        assert!(
            soak.steps
                .iter()
                .all(|(s, _, _)| !matches!(s, Step::OneWay(a, b) if a == b))
        );
    }
}
