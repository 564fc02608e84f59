//! The checks the fuzz targets run, one module per crate under test. The same files are
//! included by each crate's `tests/fuzz_props.rs`, so `make test` runs every check as a
//! bounded property test on random bytes and mutated seeds.

#[path = "../checks/backup.rs"]
pub mod backup;
#[path = "../checks/client.rs"]
pub mod client;
#[path = "../checks/core.rs"]
pub mod core;
#[path = "../checks/hsm.rs"]
pub mod hsm;
#[path = "../checks/node.rs"]
pub mod node;
#[path = "../checks/oprf.rs"]
pub mod oprf;
#[path = "../checks/raft.rs"]
pub mod raft;
