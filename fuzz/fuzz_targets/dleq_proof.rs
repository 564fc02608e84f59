//! Fuzz target `dleq_proof`: see `bkv_fuzz::oprf::dleq_proof` (fuzz/checks/oprf.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz::oprf::dleq_proof(data));
