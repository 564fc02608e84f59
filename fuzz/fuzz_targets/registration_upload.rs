//! Fuzz target `registration_upload`: see `bkv_fuzz::core::registration_upload` (fuzz/checks/core.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz::core::registration_upload(data));
