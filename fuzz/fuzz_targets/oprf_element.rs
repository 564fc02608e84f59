//! Fuzz target `oprf_element`: see `bkv_fuzz::oprf::oprf_element` (fuzz/checks/oprf.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz::oprf::oprf_element(data));
