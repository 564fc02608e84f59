//! Fuzz target `token_structured`: see `bkv_fuzz::core::token_structured` (fuzz/checks/core.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz::core::token_structured(data));
