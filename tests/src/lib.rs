//! The harness of bkv's multi-process tests: real `bkv-node` processes, each with its own
//! data dir, SoftHSM token and ports, on loopback. Every process a test starts is killed when
//! its guard drops, also when the test fails.
//!
//! - [`Cluster`]: a cluster set up the way an operator does it (PKI, `cluster/mk-token`,
//!   `init`, the add-node ceremony), with handles to kill, freeze, restart, add and remove
//!   nodes, and to read leaders, status and state digests.
//! - [`NodeProcess`]: one node's process, ports, files and signals.
//! - [`raw`]: vault calls below the SDK, to check exact answers.
//! - [`Metrics`]: a node's `/metrics` page, parsed.
//! - [`process`]: child guards, workspace binaries, free ports.
//! - [`loot`]: the offline attacker: nodes' material at rest, opened with bkv's own code.
//! - [`RecoveryLoad`]: a client recovering one account without a pause, counting failures.
//! - [`chaos`]: the chaos suite's proxy, workloads, histories, checkers and runner.
//! - [`netns`]: network namespaces for kernel-level faults (packet filters, rate limits,
//!   full disks).

pub mod chaos;
mod cluster;
pub mod cluster_up;
mod load;
pub mod loot;
mod metrics;
pub mod netns;
mod node;
mod options;
pub mod process;
pub mod raw;

pub use cluster::{Cluster, Digest, ISSUER_NAME, refresh_pass, wait_for};
pub use load::RecoveryLoad;
pub use metrics::{Metrics, Sample};
pub use node::{HttpAnswer, NodeProcess, Ports, ProcessState};
pub use options::{ClusterOptions, FAILPOINTS_NODE_BINARY, LimitsOptions, RaftOptions};

/// A password for tests (a `SecretString`).
pub fn password(text: &str) -> bkv_client::SecretString {
    bkv_client::SecretString::from(text.to_string())
}

/// An account id for tests; panics on a name that is not a valid account id.
pub fn account(name: &str) -> bkv_core::ids::AccountId {
    bkv_core::ids::AccountId::parse(name).unwrap_or_else(|e| panic!("account {name:?}: {e}"))
}
