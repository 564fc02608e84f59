//! The harness of bkv's multi-process tests: real `bkv-node` processes, each with its own
//! data dir, SoftHSM token and ports, on loopback. Every process a test starts is killed when
//! its guard drops, also when the test fails.

pub mod process;
