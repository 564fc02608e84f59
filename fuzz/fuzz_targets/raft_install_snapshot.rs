//! Fuzz target `raft_install_snapshot`: see `bkv_fuzz::raft::install_snapshot` (fuzz/checks/raft.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz::raft::install_snapshot(data));
