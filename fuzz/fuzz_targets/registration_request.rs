//! Fuzz target `registration_request`: see `bkv_fuzz::core::registration_request` (fuzz/checks/core.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz::core::registration_request(data));
