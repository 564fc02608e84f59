//! Fuzz target `share_ciphertext`: see `bkv_fuzz::oprf::share_ciphertext` (fuzz/checks/oprf.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz::oprf::share_ciphertext(data));
