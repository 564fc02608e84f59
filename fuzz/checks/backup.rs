//! What the fuzz targets on the backup format (`bkv_client::backup`, docs/BACKUP_FORMAT.md)
//! assert. Shared, word for word, by the cargo-fuzz targets (`fuzz/fuzz_targets/backup_*.rs`)
//! and the bounded property tests (`crates/bkv-client/tests/fuzz_props_backup.rs`), which
//! include this file with `#[path]`.
//!
//! Every function takes hostile bytes and must not panic; it panics (fails the run) when an
//! accepted input breaks the format's promise: a header re-encodes to its own bytes, and a
//! backup that decrypts has exactly the length its chunks give and decrypts the same way
//! through the `Read` interface.

use std::io::Read as _;

use bkv_client::backup::{
    BackupKey, Decryptor, HEADER_LEN, Header, StreamError, StreamOpener, TAG_LEN, decrypt,
};

/// The key the backup seeds are made with.
pub const KEY: [u8; 32] = [0x42; 32];

/// `backup_header`: the keyless parse of the first 74 bytes, then the MAC check under
/// [`KEY`]. An accepted header re-encodes to the very same bytes.
pub fn backup_header(data: &[u8]) {
    let Ok(bytes) = <&[u8; HEADER_LEN]>::try_from(data) else {
        return;
    };
    match Header::parse(bytes) {
        Ok(h) => {
            assert_eq!(&h.encode(), bytes, "an accepted header is not canonical");
            let chunk = h.chunk_size.get();
            assert!((16..=16 << 20).contains(&chunk), "chunk size {chunk}");
            let _ = StreamOpener::new(&BackupKey::from_bytes(KEY), bytes);
        }
        Err(e) => assert!(
            matches!(
                e,
                StreamError::NotABackup
                    | StreamError::UnsupportedVersion(_)
                    | StreamError::UnsupportedAlgorithm(_)
                    | StreamError::BadChunkSize(_)
            ),
            "keyless refusal {e:?}"
        ),
    }
}

/// Whether the header's keyless fields and its MAC under [`KEY`] are accepted.
pub fn header_accepted(data: &[u8]) -> bool {
    <&[u8; HEADER_LEN]>::try_from(data)
        .is_ok_and(|b| StreamOpener::new(&BackupKey::from_bytes(KEY), b).is_ok())
}

/// `backup_stream`: a whole backup under [`KEY`]. Accepted: the plaintext has exactly the
/// length the file's chunks give, and `Decryptor` as a `Read` gives the same bytes.
/// Refused: with an error that fits where the input ends.
pub fn backup_stream(data: &[u8]) {
    let key = BackupKey::from_bytes(KEY);
    let mut out = Vec::new();
    match decrypt(&key, data, &mut out) {
        Ok(n) => {
            assert_eq!(n, out.len() as u64);
            let header = <&[u8; HEADER_LEN]>::try_from(&data[..HEADER_LEN]).expect("74 bytes");
            let chunk = Header::parse(header).expect("accepted").chunk_size.len();
            let chunks = out.len().div_ceil(chunk).max(1);
            assert_eq!(data.len(), HEADER_LEN + out.len() + chunks * TAG_LEN);
            let mut again = Vec::new();
            Decryptor::new(&key, data)
                .expect("the header was accepted")
                .read_to_end(&mut again)
                .expect("the backup was accepted");
            assert_eq!(again, out);
        }
        Err(e) => {
            if data.len() < HEADER_LEN {
                assert!(
                    matches!(
                        e,
                        StreamError::NotABackup | StreamError::Truncated { chunks: 0 }
                    ),
                    "{} bytes: {e:?}",
                    data.len()
                );
            }
            assert!(!matches!(e, StreamError::Io { .. }), "{e:?}");
        }
    }
}

/// Whether the backup decrypts under [`KEY`].
pub fn stream_accepted(data: &[u8]) -> bool {
    decrypt(&BackupKey::from_bytes(KEY), data, std::io::sink()).is_ok()
}
