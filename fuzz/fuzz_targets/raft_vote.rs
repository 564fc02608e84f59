//! Fuzz target `raft_vote`: see `bkv_fuzz::raft::vote` (fuzz/checks/raft.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz::raft::vote(data));
