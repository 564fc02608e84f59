//! Fuzz target `raft_responses`: see `bkv_fuzz::raft::responses` (fuzz/checks/raft.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz::raft::responses(data));
