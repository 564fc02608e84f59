//! What the fuzz target on bkv-hsm's sealed-blob header asserts. Shared by the cargo-fuzz
//! target (`fuzz/fuzz_targets/sealed_blob_header.rs`) and the bounded property test
//! (`crates/bkv-hsm/tests/fuzz_props.rs`), which includes this file with `#[path]`.
//!
//! `Header::open` is all of a sealed blob that runs before the HSM sees it: it must never
//! panic, must accept exactly the blobs that a simple model of the format accepts, and what it
//! accepts must re-encode to the same header bytes.

use bkv_core::{SealError, SealPurpose};
use bkv_hsm::blob::{HEADER_LEN, Header, MAGIC, TAG_LEN, VERSION};
use sha2::{Digest as _, Sha256};

/// The AAD every header check opens with.
pub const AAD: &[u8] = b"bkv-fuzz/aad";

/// Every purpose a blob can name.
pub const PURPOSES: [SealPurpose; 6] = [
    SealPurpose::Record,
    SealPurpose::ServerSetup,
    SealPurpose::Ticket,
    SealPurpose::Watermark,
    SealPurpose::OprfShare,
    SealPurpose::Test,
];

/// `Header::open` against each purpose, compared with the format's model.
pub fn sealed_blob_header(data: &[u8]) {
    let aad_check = &Sha256::digest(AAD)[..8];
    for purpose in PURPOSES {
        let got = Header::open(data, purpose, AAD);
        let expected: Result<(), SealError> = if data.len() < HEADER_LEN + TAG_LEN {
            Err(SealError::Malformed("too short"))
        } else if data[0..2] != MAGIC {
            Err(SealError::Malformed("bad magic"))
        } else if data[2] != VERSION {
            Err(SealError::Malformed("unknown version"))
        } else if SealPurpose::from_byte(data[3]).is_none() {
            Err(SealError::Malformed("unknown purpose"))
        } else if data[3] != purpose as u8 {
            Err(SealError::WrongPurpose)
        } else if data[12..20] != *aad_check {
            Err(SealError::WrongAad)
        } else {
            Ok(())
        };
        match got {
            Ok((header, body)) => {
                assert_eq!(expected, Ok(()), "{purpose:?}: accepted a bad header");
                assert_eq!(header.purpose, purpose);
                assert_eq!(header.encode()[..], data[..HEADER_LEN]);
                assert_eq!(body, &data[HEADER_LEN..]);
                let gcm_aad = header.gcm_aad(AAD);
                assert_eq!(gcm_aad[..HEADER_LEN], data[..HEADER_LEN]);
                assert_eq!(&gcm_aad[HEADER_LEN..], AAD);
            }
            Err(e) => assert_eq!(Err(e), expected, "{purpose:?}: wrong refusal"),
        }
    }
}
