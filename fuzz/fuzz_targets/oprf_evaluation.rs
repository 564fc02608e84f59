//! Fuzz target `oprf_evaluation`: see `bkv_fuzz::oprf::oprf_evaluation` (fuzz/checks/oprf.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz::oprf::oprf_evaluation(data));
