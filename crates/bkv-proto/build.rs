//! Compiles `proto/bkv/v1/*.proto` and the vendored `proto/google/rpc/*.proto` (the standard
//! error model) with the protoc binary vendored by `protoc-bin-vendored`, so no system
//! `protoc` is needed. `google.protobuf` types come from `prost-types`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest.join("../../proto");
    let include = protoc_bin_vendored::include_path()?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let files = [
        "bkv/v1/vault.proto",
        "bkv/v1/admin.proto",
        "bkv/v1/raft.proto",
        "google/rpc/status.proto",
        "google/rpc/error_details.proto",
        "google/rpc/code.proto",
    ]
    .map(|f| root.join(f));
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("bkv_descriptor.bin"))
        // Ordered, so that an encoded `ErrorInfo` is the same bytes every time.
        .btree_map(".google.rpc.ErrorInfo.metadata")
        .compile_with_config(config, &files, &[root, include])?;
    Ok(())
}
