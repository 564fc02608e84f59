//! Fuzz target `grpc_requests`: see `bkv_fuzz::node::grpc_request` (fuzz/checks/node.rs) for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = bkv_fuzz::node::grpc_request(data);
});
