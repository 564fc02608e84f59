//! Compiles `proto/bkv/v1/*.proto` with the protoc binary vendored by
//! `protoc-bin-vendored`, so no system `protoc` is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest.join("../../proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let files = ["vault.proto", "admin.proto", "raft.proto"].map(|f| root.join("bkv/v1").join(f));
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("bkv_descriptor.bin"))
        .compile_with_config(config, &files, &[root])?;
    Ok(())
}
