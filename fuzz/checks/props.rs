//! Helpers of the bounded property tests that run the fuzz checks in `make test`: the
//! committed seed corpora (`fuzz/corpus/<target>/`), random mutations of them, and writing
//! fresh seeds. Included with `#[path]` by each crate's `tests/fuzz_props.rs`.
//!
//! Seed names say what the parser must do with them: `valid-*` is accepted, `invalid-*`
//! refused; [`check_seeds`] holds the committed corpora to that, so a format change that
//! strands the seeds fails the tests (regenerate with `make fuzz-seeds`).

use std::path::PathBuf;

use proptest::prelude::*;

/// Cases per property test: enough to shake out regressions, cheap enough for every run.
pub const CASES: u32 = 256;

/// The corpus directory of a target.
pub fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

/// The committed seeds of a target, by name (sorted, so runs are reproducible).
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} is missing: {e}", dir.display()));
    let mut out: Vec<(String, Vec<u8>)> = entries
        .map(|e| {
            let path = e.expect("corpus entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("seed names are text")
                .to_string();
            let bytes = std::fs::read(&path).expect("seed reads");
            (name, bytes)
        })
        .filter(|(name, _)| !name.starts_with('.'))
        .collect();
    out.sort();
    out
}

/// Writes (or rewrites) one seed of a target.
pub fn write_seed(target: &str, name: &str, bytes: &[u8]) {
    assert!(
        name.starts_with("valid-") || name.starts_with("invalid-"),
        "seed {name}: names start with valid- or invalid-"
    );
    let dir = corpus_dir(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    std::fs::write(dir.join(name), bytes).expect("seed writes");
}

/// Runs `check` on every committed seed of `target` and holds each seed to its name:
/// `accepts` is true for `valid-*` seeds and false for `invalid-*` ones.
pub fn check_seeds(target: &str, check: fn(&[u8]), accepts: impl Fn(&[u8]) -> bool) {
    let seeds = seeds(target);
    assert!(
        seeds.iter().any(|(n, _)| n.starts_with("valid-")),
        "{target}: no valid seed"
    );
    assert!(
        seeds.iter().any(|(n, _)| n.starts_with("invalid-")),
        "{target}: no invalid seed"
    );
    for (name, bytes) in &seeds {
        check(bytes);
        let valid = name.starts_with("valid-");
        assert_eq!(accepts(bytes), valid, "{target}/{name}");
    }
}

/// One edit of a seed.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Sets the byte at a position.
    Set(usize, u8),
    /// Flips one bit of the byte at a position.
    Flip(usize, u8),
    /// Inserts a byte.
    Insert(usize, u8),
    /// Removes the byte at a position.
    Remove(usize),
    /// Cuts the input at a position.
    Truncate(usize),
    /// Writes an edge-case big-endian u32 (a length prefix) at a position.
    Length(usize, u32),
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = || any::<usize>();
    prop_oneof![
        (at(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        (at(), 0u8..8).prop_map(|(i, b)| Edit::Flip(i, b)),
        (at(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        at().prop_map(Edit::Remove),
        at().prop_map(Edit::Truncate),
        (
            at(),
            prop::sample::select(vec![0u32, 1, 127, 128, 255, 4096, 0x7fff_ffff, u32::MAX])
        )
            .prop_map(|(i, n)| Edit::Length(i, n)),
    ]
}

/// Applies edits to a seed.
pub fn mutate(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for e in edits {
        let n = b.len();
        match *e {
            Edit::Set(i, v) if n > 0 => b[i % n] = v,
            Edit::Flip(i, bit) if n > 0 => b[i % n] ^= 1 << bit,
            Edit::Insert(i, v) => b.insert(i % (n + 1), v),
            Edit::Remove(i) if n > 0 => {
                b.remove(i % n);
            }
            Edit::Truncate(i) => b.truncate(i % (n + 1)),
            Edit::Length(i, v) if n >= 4 => {
                let at = i % (n - 3);
                b[at..at + 4].copy_from_slice(&v.to_be_bytes());
            }
            _ => {}
        }
    }
    b
}

/// A committed seed of `target` with one to six edits.
pub fn mutated(target: &str) -> impl Strategy<Value = Vec<u8>> + use<> {
    let seeds: Vec<Vec<u8>> = seeds(target).into_iter().map(|(_, b)| b).collect();
    (
        prop::sample::select(seeds),
        prop::collection::vec(edit(), 1..7),
    )
        .prop_map(|(seed, edits)| mutate(&seed, &edits))
}

/// Random bytes up to `max` long.
pub fn random(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}
