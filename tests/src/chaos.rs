//! The chaos and failover suite's machinery (issue 6): a fault-injecting peer proxy, the
//! workloads of honest and attacking clients, histories of what they did and saw, the
//! nemesis that injects faults, the checkers that judge a run, and the runner that ties them
//! together (scenarios in `tests/tests/c*_*.rs`, the seeded random run in
//! `c99_random_chaos.rs`, `make chaos SEED=... DURATION=...`).
//!
//! - [`proxy`]: [`PeerProxy`], per-link faults between nodes (drop, blackhole, delay, reset).
//! - [`history`]: [`History`], JSON lines of invokes, completes and infos.
//! - [`workload`]: [`ClientKit`], [`Honest`] (SDK), [`Attacker`] (raw calls), [`Canaries`].
//! - [`nemesis`]: [`Nemesis`], faults recorded in the history, fail-closed windows.
//! - [`audit`]: the nodes' audit files, merged.
//! - [`check`]: the checkers, each returning a [`check::Verdict`].
//! - [`canary`]: the plaintext scan.
//! - [`runner`]: [`ChaosCluster`], [`Load`], the final verification.
//! - [`schedule`]: seeded random fault schedules.

pub mod audit;
pub mod canary;
pub mod check;
pub mod history;
pub mod nemesis;
pub mod proxy;
pub mod runner;
pub mod schedule;
pub mod workload;

pub use history::{Entry, History, Outcome, Phase, Role};
pub use nemesis::Nemesis;
pub use proxy::{Fault, PeerProxy};
pub use runner::{ChaosCluster, Load, LoadSpec, Summary, VerifyOptions, chaos_dir, chaos_options};
pub use workload::{Attacker, Canaries, ClientKit, Honest};
