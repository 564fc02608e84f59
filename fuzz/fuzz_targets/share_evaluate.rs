//! Fuzz target `share_evaluate`: see `bkv_fuzz::node::share_evaluate` (fuzz/checks/node.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = bkv_fuzz::node::share_evaluate(data);
});
