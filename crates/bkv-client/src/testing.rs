//! Test support for the SDK and the CLI: a dev PKI in a temp dir, TLS gRPC servers on
//! loopback, and [`FakeVault`], an in-process stand-in for vault nodes that runs the real
//! OPAQUE server of bkv-core over a software sealer and can inject failures.
//!
//! Compiled for this crate's tests and with the `testing` feature. NOT a vault: it exists
//! so that the layer above the node (SDK retries, failover, error mapping, CLI exit codes)
//! can be tested without a cluster.

mod fake_admin;
mod fake_vault;
mod server;

pub use fake_admin::{FAKE_KCV, FakeAdmin, FakeMembership};
pub use fake_vault::{Call, FakeCluster, FakeVault, Fault, TEST_AUDIENCE, TEST_ISSUER};
pub use server::{TestPki, TestServer, dead_endpoint, serve};
