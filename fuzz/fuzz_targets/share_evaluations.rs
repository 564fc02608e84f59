//! Fuzz target `share_evaluations`: see `bkv_fuzz::client::share_evaluations` (fuzz/checks/client.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = bkv_fuzz::client::share_evaluations(data);
});
