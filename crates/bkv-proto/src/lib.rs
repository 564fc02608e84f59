//! Generated code for the bkv gRPC API: `bkv.v1.Vault` (clients), `bkv.v1.Admin`
//! (operators) and `bkv.v1.Raft` (node to node), and the [`contract`] constants (metadata
//! keys, error reason words) that nodes and SDKs share, the [`convert`]ions between wire
//! messages and `bkv-core` values that more than one side needs, and the standard
//! `google.rpc` error model ([`google::rpc`], [`status`]) that every error travels in.

pub mod contract;
pub mod convert;
pub mod status;

/// Package `bkv.v1`.
#[allow(missing_docs, missing_debug_implementations, clippy::all)]
pub mod v1 {
    tonic::include_proto!("bkv.v1");
}

/// The standard error model of gRPC, vendored from googleapis (`proto/google/rpc`).
#[allow(missing_docs, missing_debug_implementations, clippy::all)]
pub mod google {
    /// Package `google.rpc`: `Status`, `ErrorInfo`, `BadRequest`, `RetryInfo`, ...
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

/// The encoded `FileDescriptorSet` of all three services, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("bkv_descriptor");
