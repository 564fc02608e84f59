//! Fuzz target `oprf_commitments`: see `bkv_fuzz::oprf::oprf_commitments` (fuzz/checks/oprf.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz::oprf::oprf_commitments(data));
