//! Fuzz target `raft_append_entries`: see `bkv_fuzz::raft::append_entries` (fuzz/checks/raft.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz::raft::append_entries(data));
