//! Fuzz target `sealed_key`: see `bkv_fuzz::core::sealed_key` (fuzz/checks/core.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz::core::sealed_key(data));
