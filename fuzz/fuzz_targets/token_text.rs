//! Fuzz target `token_text`: see `bkv_fuzz::core::token_text` (fuzz/checks/core.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz::core::token_text(data));
