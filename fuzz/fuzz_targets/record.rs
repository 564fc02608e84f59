//! Fuzz target `record`: see `bkv_fuzz::core::record` (fuzz/checks/core.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz::core::record(data));
