//! The chaos and failover suite's machinery (issue 6): a fault-injecting peer proxy, the
//! workloads of honest and attacking clients, histories of what they did and saw, the
//! nemesis that injects faults, the checkers that judge a run, and the runner that ties them
//! together (scenarios in `tests/tests/c*_*.rs`, the seeded random run in
//! `c99_random_chaos.rs`, `make chaos SEED=... DURATION=...`).
//!
//! - [`proxy`]: [`PeerProxy`], per-link faults between nodes (drop, blackhole, delay, reset).
//! - [`history`]: [`History`], JSON lines of invokes, completes and infos.
//! - [`kit`]: [`ClientKit`], how clients reach the nodes.
//! - [`honest`], [`attacker`], [`workload`]: [`Honest`] (SDK), [`Attacker`] (raw calls), and
//!   what they share; [`load`]: [`Load`], clients running concurrently.
//! - [`nemesis`]: [`Nemesis`], faults recorded in the history, fail-closed windows.
//! - [`audit`]: the nodes' audit files, merged.
//! - [`check`]: the checkers, each returning a [`check::Verdict`]; [`excerpt`]: the part of
//!   a history that broke one, printed when a run fails.
//! - [`canary`]: [`Canaries`] and the plaintext scan.
//! - [`runner`]: [`ChaosCluster`], the final verification.
//! - [`schedule`]: seeded random fault schedules; [`lab`]: runs on the kernel-fault harness
//!   ([`crate::netns`]) and their schedule over the whole fault list.

pub mod attacker;
pub mod audit;
pub mod canary;
pub mod check;
pub mod excerpt;
pub mod history;
pub mod honest;
pub mod kit;
pub mod lab;
pub mod load;
pub mod nemesis;
pub mod proxy;
pub mod runner;
pub mod schedule;
pub mod workload;

pub use attacker::Attacker;
pub use canary::Canaries;
pub use history::{Entry, Evaluation, History, Outcome, Phase, Role};
pub use honest::Honest;
pub use kit::ClientKit;
pub use load::{Load, LoadSpec};
pub use nemesis::Nemesis;
pub use proxy::{Fault, PeerProxy};
pub use runner::{ChaosCluster, Summary, VerifyOptions, chaos_dir, chaos_options};
