//! The committed test vector files under `testdata/vectors/` (tests only): each vector test
//! compares what the code computes with its file byte for byte, or rewrites the file when
//! `BKV_WRITE_VECTORS=1`; its public-API test then reads the committed file back.

use std::path::PathBuf;

/// The path of vector file `name` at the repository root.
pub(crate) fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/vectors")
        .join(name)
}

/// Whether this run rewrites the files (`BKV_WRITE_VECTORS=1`).
pub(crate) fn writing() -> bool {
    std::env::var_os("BKV_WRITE_VECTORS").is_some_and(|v| v == "1")
}

/// Compares `vectors`, as pretty JSON with a final newline, with the committed file `name`,
/// or writes it when [`writing`]. `filter` is the test filter that rewrites it.
pub(crate) fn match_or_write(name: &str, vectors: &impl serde::Serialize, filter: &str) {
    let mut text = serde_json::to_string_pretty(vectors).expect("serialize");
    text.push('\n');
    let path = path(name);
    if writing() {
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(&path, &text).expect("write vectors");
        return;
    }
    let rewrite = format!("BKV_WRITE_VECTORS=1 cargo test -p bkv-core {filter}");
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; write it with {rewrite}", path.display()));
    assert!(
        committed == text,
        "{} differs from what the code computes; if the change is intended, rewrite it with \
         {rewrite}",
        path.display()
    );
}

/// The committed file `name` as JSON, or `None` while a run rewrites the files (the
/// comparing test is writing it right now).
pub(crate) fn read(name: &str) -> Option<serde_json::Value> {
    if writing() {
        return None;
    }
    let text = std::fs::read_to_string(path(name)).expect("vector file");
    Some(serde_json::from_str(&text).expect("json"))
}
