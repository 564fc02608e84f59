//! Fuzz target `ticket`: see `bkv_fuzz::core::ticket` (fuzz/checks/core.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz::core::ticket(data));
