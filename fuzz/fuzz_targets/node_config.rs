//! Fuzz target `node_config`: see `bkv_fuzz::node::node_config` (fuzz/checks/node.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = bkv_fuzz::node::node_config(data);
});
