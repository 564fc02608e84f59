//! Fuzz target `credential_request`: see `bkv_fuzz::core::credential_request` (fuzz/checks/core.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz::core::credential_request(data));
