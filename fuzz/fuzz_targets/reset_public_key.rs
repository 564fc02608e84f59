//! Fuzz target `reset_public_key`: see `bkv_fuzz::oprf::reset_public_key` (fuzz/checks/oprf.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz::oprf::reset_public_key(data));
