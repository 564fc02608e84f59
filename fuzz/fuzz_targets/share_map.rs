//! Fuzz target `share_map`: see `bkv_fuzz::core::share_map` (fuzz/checks/core.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = bkv_fuzz::core::share_map(data);
});
