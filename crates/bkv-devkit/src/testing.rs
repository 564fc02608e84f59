//! Test support: a dev PKI in a temp dir, TLS gRPC servers on loopback, a stand-in for
//! admin nodes, [`FakeVault`], vault nodes in one process that can inject failures, and
//! [`GeneratedStream`], large test data generated as it is read, with
//! [`peak_resident_kib`] to check that streaming code stays in constant memory.
//!
//! NOT a vault: it exists so that the layer above the node (SDK retries, failover, error
//! mapping, CLI exit codes) can be tested without a cluster.

mod fake_admin;
mod fake_vault;
mod generated_stream;
mod memory;
mod server;

pub use fake_admin::{FAKE_KCV, FakeAdmin, FakeMembership};
pub use fake_vault::{Call, FakeCluster, FakeVault, Fault, TEST_AUDIENCE, TEST_ISSUER};
pub use generated_stream::GeneratedStream;
pub use memory::{LARGE_STREAM_VAR, large_stream_len, peak_resident_kib};
pub use server::{TestPki, TestServer, dead_endpoint, serve};

/// A request carrying `token` in its `authorization` metadata, as a client's call does: for
/// calling a vault service in process.
pub fn authorized<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("{}{token}", bkv_proto::contract::BEARER_PREFIX).parse() {
        request
            .metadata_mut()
            .insert(bkv_proto::contract::AUTHORIZATION, value);
    }
    request
}
