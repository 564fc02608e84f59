//! Fuzz target `register_finish`: see `bkv_fuzz::node::register_finish_fields` (fuzz/checks/node.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = bkv_fuzz::node::register_finish_fields(data);
});
