//! Fuzz target `vault_state`: see `bkv_fuzz::core::vault_state` (fuzz/checks/core.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz::core::vault_state(data));
