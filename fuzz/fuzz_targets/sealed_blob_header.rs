//! Fuzz target `sealed_blob_header`: see `bkv_fuzz::hsm::sealed_blob_header`
//! (fuzz/checks/hsm.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bkv_fuzz::hsm::sealed_blob_header(data));
