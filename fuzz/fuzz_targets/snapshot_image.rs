//! Fuzz target `snapshot_image`: see `bkv_fuzz::raft::snapshot_image` (fuzz/checks/raft.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz::raft::snapshot_image(data));
