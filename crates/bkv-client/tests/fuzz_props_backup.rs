//! The fuzz targets on the backup format as bounded property tests, so `make test` catches
//! regressions without a fuzzer: each check (`fuzz/checks/backup.rs`, the very code the
//! cargo-fuzz targets run) gets random bytes and mutations of the committed seeds
//! (`fuzz/corpus/<target>/`), and the seeds themselves are held to their names.
//!
//! `cargo test -p bkv-client --test fuzz_props_backup -- --ignored write_seeds` rewrites
//! the seeds.

#[path = "../../../fuzz/checks/backup.rs"]
mod checks;
#[path = "../../../fuzz/checks/props.rs"]
mod props;

use std::io::Write as _;

use bkv_client::backup::{BackupKey, ChunkSize, Encryptor, HEADER_LEN, StreamSealer};
use props::{CASES, check_seeds, mutated, random, write_seed};
use proptest::prelude::*;
use rand::SeedableRng as _;
use rand::rngs::StdRng;

/// A fuzz target as the tests see it: its corpus name, its check, and whether it accepts
/// an input (what the seed names are held to).
type Target = (&'static str, fn(&[u8]), fn(&[u8]) -> bool);

const TARGETS: &[Target] = &[
    (
        "backup_header",
        checks::backup_header,
        checks::header_accepted,
    ),
    (
        "backup_stream",
        checks::backup_stream,
        checks::stream_accepted,
    ),
];

#[test]
fn committed_seeds_match_their_names() {
    for (target, check, accepts) in TARGETS {
        check_seeds(target, *check, accepts);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn backup_parsers_random(which in 0..TARGETS.len(), bytes in random(300)) {
        (TARGETS[which].1)(&bytes);
    }

    #[test]
    fn backup_parsers_mutated(
        (which, bytes) in (0..TARGETS.len()).prop_flat_map(|w| (Just(w), mutated(TARGETS[w].0))),
    ) {
        (TARGETS[which].1)(&bytes);
    }
}

/// A backup of `data` under `key` in chunks of `chunk` bytes, with a salt from `rng`.
fn backup(key: &[u8; 32], chunk: u32, data: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let key = BackupKey::from_bytes(*key);
    let sealer = StreamSealer::with_rng(&key, ChunkSize::new(chunk).expect("valid"), rng);
    let mut enc = Encryptor::from_sealer(sealer, Vec::new()).expect("writes to a Vec");
    enc.write_all(data).expect("writes to a Vec");
    enc.finish().expect("writes to a Vec")
}

/// Rewrites the seed corpora of the backup targets from real backups.
#[test]
#[ignore = "writes fuzz/corpus; run by `make fuzz-seeds`"]
fn write_seeds() {
    let rng = &mut StdRng::seed_from_u64(24);
    let text = b"Backup of the chat history, 40 bytes...!";
    let three = backup(&checks::KEY, 16, text, rng);
    let empty = backup(&checks::KEY, 16, b"", rng);
    let boundary = backup(&checks::KEY, 16, &text[..32], rng);
    let other_key = backup(&[7; 32], 16, text, rng);

    write_seed("backup_header", "valid-1", &three[..HEADER_LEN]);
    write_seed("backup_header", "valid-empty-backup", &empty[..HEADER_LEN]);
    write_seed(
        "backup_header",
        "invalid-other-key",
        &other_key[..HEADER_LEN],
    );
    let mut bad_magic = three[..HEADER_LEN].to_vec();
    bad_magic[0] = b'X';
    write_seed("backup_header", "invalid-magic", &bad_magic);
    let mut big_chunk = three[..HEADER_LEN].to_vec();
    big_chunk[6..10].copy_from_slice(&u32::MAX.to_be_bytes());
    write_seed("backup_header", "invalid-chunk-size", &big_chunk);
    write_seed("backup_header", "invalid-short", &three[..HEADER_LEN - 1]);

    write_seed("backup_stream", "valid-three-chunks", &three);
    write_seed("backup_stream", "valid-empty", &empty);
    write_seed("backup_stream", "valid-ends-on-boundary", &boundary);
    write_seed("backup_stream", "invalid-other-key", &other_key);
    write_seed(
        "backup_stream",
        "invalid-truncated",
        &three[..HEADER_LEN + 32],
    );
    let mut swapped = three[..HEADER_LEN].to_vec();
    swapped.extend_from_slice(&three[HEADER_LEN + 32..HEADER_LEN + 64]);
    swapped.extend_from_slice(&three[HEADER_LEN..HEADER_LEN + 32]);
    swapped.extend_from_slice(&three[HEADER_LEN + 64..]);
    write_seed("backup_stream", "invalid-swapped", &swapped);
    let mut trailing = boundary.clone();
    trailing.push(0);
    write_seed("backup_stream", "invalid-trailing", &trailing);
}
