//! The fuzz target on the sealed-blob header as a bounded property test, so `make test`
//! catches regressions without a fuzzer: the check (`fuzz/checks/hsm.rs`, the very code the
//! cargo-fuzz target runs) gets random bytes and mutations of the committed seeds
//! (`fuzz/corpus/sealed_blob_header/`), and the seeds themselves are held to their names.
//!
//! `cargo test -p bkv-hsm --test fuzz_props -- --ignored write_seeds` rewrites the seeds.

#[path = "../../../fuzz/checks/hsm.rs"]
mod checks;
#[path = "../../../fuzz/checks/props.rs"]
mod props;

use bkv_core::SealPurpose;
use bkv_hsm::blob::{Header, IV_LEN, TAG_LEN};
use props::{CASES, check_seeds, mutated, random, write_seed};
use proptest::prelude::*;

const TARGET: &str = "sealed_blob_header";

/// Whether some purpose opens the blob with the checks' AAD.
fn opens(blob: &[u8]) -> bool {
    checks::PURPOSES
        .iter()
        .any(|p| Header::open(blob, *p, checks::AAD).is_ok())
}

#[test]
fn committed_seeds_match_their_names() {
    check_seeds(TARGET, checks::sealed_blob_header, opens);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn random_blobs(bytes in random(120)) {
        checks::sealed_blob_header(&bytes);
    }

    #[test]
    fn mutated_blobs(bytes in mutated(TARGET)) {
        checks::sealed_blob_header(&bytes);
    }
}

fn blob(purpose: SealPurpose, aad: &[u8], body_len: usize) -> Vec<u8> {
    let mut b = Header::new(purpose, [3; 8], aad, [4; IV_LEN])
        .encode()
        .to_vec();
    b.extend(std::iter::repeat_n(0xc5, body_len));
    b
}

/// Rewrites the seed corpus of the header target.
#[test]
#[ignore = "writes fuzz/corpus; run by `make fuzz-seeds`"]
fn write_seeds() {
    write_seed(
        TARGET,
        "valid-record",
        &blob(SealPurpose::Record, checks::AAD, 60),
    );
    write_seed(
        TARGET,
        "valid-ticket-tag-only",
        &blob(SealPurpose::Ticket, checks::AAD, TAG_LEN),
    );
    write_seed(
        TARGET,
        "valid-watermark",
        &blob(SealPurpose::Watermark, checks::AAD, 24),
    );
    write_seed(
        TARGET,
        "invalid-other-aad",
        &blob(SealPurpose::Record, b"other", 60),
    );
    write_seed(
        TARGET,
        "invalid-no-tag",
        &blob(SealPurpose::Record, checks::AAD, TAG_LEN - 1),
    );
    let mut v2 = blob(SealPurpose::ServerSetup, checks::AAD, 40);
    v2[2] = 2;
    write_seed(TARGET, "invalid-version-2", &v2);
}
