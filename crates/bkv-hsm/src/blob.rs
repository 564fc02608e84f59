//! The sealed blob format, version 1:
//!
//! ```text
//! magic "bK" (2) | version 1 (1) | purpose (1) | key_id (8) | aad_check (8) | iv (12) | ciphertext || tag (16)
//! ```
//!
//! `aad_check` is the first 8 bytes of SHA-256 of the caller's AAD, so that a blob opened
//! with the wrong AAD fails with its own error before the HSM is asked. The GCM AAD is the
//! whole 32-byte header followed by the caller's AAD, so every header byte is authenticated.

use bkv_core::{SealError, SealPurpose};
use sha2::{Digest, Sha256};

/// First two bytes of every sealed blob.
pub const MAGIC: [u8; 2] = *b"bK";
/// The only format version so far.
pub const VERSION: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 32;
/// GCM IV length in bytes (96 bits).
pub const IV_LEN: usize = 12;
/// GCM tag length in bytes (128 bits).
pub const TAG_LEN: usize = 16;

/// A parsed blob header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the blob is for.
    pub purpose: SealPurpose,
    /// Id of the cluster key that sealed it.
    pub key_id: [u8; 8],
    /// SHA-256(aad)[..8].
    pub aad_check: [u8; 8],
    /// The GCM IV.
    pub iv: [u8; IV_LEN],
}

impl Header {
    /// A header for sealing `aad` under `key_id` with `iv`.
    pub fn new(purpose: SealPurpose, key_id: [u8; 8], aad: &[u8], iv: [u8; IV_LEN]) -> Self {
        Self {
            purpose,
            key_id,
            aad_check: aad_check(aad),
            iv,
        }
    }

    /// The 32 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..2].copy_from_slice(&MAGIC);
        out[2] = VERSION;
        out[3] = self.purpose as u8;
        out[4..12].copy_from_slice(&self.key_id);
        out[12..20].copy_from_slice(&self.aad_check);
        out[20..32].copy_from_slice(&self.iv);
        out
    }

    /// Parses a blob's header and checks it against what the caller expects. Returns the
    /// header and the ciphertext with its tag.
    pub fn open<'b>(
        blob: &'b [u8],
        purpose: SealPurpose,
        aad: &[u8],
    ) -> Result<(Self, &'b [u8]), SealError> {
        if blob.len() < HEADER_LEN + TAG_LEN {
            return Err(SealError::Malformed("too short"));
        }
        let (head, body) = blob.split_at(HEADER_LEN);
        if head[0..2] != MAGIC {
            return Err(SealError::Malformed("bad magic"));
        }
        if head[2] != VERSION {
            return Err(SealError::Malformed("unknown version"));
        }
        let found =
            SealPurpose::from_byte(head[3]).ok_or(SealError::Malformed("unknown purpose"))?;
        if found != purpose {
            return Err(SealError::WrongPurpose);
        }
        let mut header = Self {
            purpose,
            key_id: [0; 8],
            aad_check: [0; 8],
            iv: [0; IV_LEN],
        };
        header.key_id.copy_from_slice(&head[4..12]);
        header.aad_check.copy_from_slice(&head[12..20]);
        header.iv.copy_from_slice(&head[20..32]);
        if header.aad_check != aad_check(aad) {
            return Err(SealError::WrongAad);
        }
        Ok((header, body))
    }

    /// The GCM AAD: header bytes, then the caller's AAD.
    pub fn gcm_aad(&self, aad: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + aad.len());
        out.extend_from_slice(&self.encode());
        out.extend_from_slice(aad);
        out
    }
}

/// SHA-256(aad)[..8].
fn aad_check(aad: &[u8]) -> [u8; 8] {
    let digest = Sha256::digest(aad);
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(purpose: SealPurpose, aad: &[u8]) -> Vec<u8> {
        let mut b = Header::new(purpose, [7; 8], aad, [9; IV_LEN])
            .encode()
            .to_vec();
        b.extend_from_slice(&[0xAA; TAG_LEN + 5]);
        b
    }

    #[test]
    fn header_round_trips() {
        let b = blob(SealPurpose::Record, b"aad");
        let (h, body) = Header::open(&b, SealPurpose::Record, b"aad").expect("opens");
        assert_eq!(h.key_id, [7; 8]);
        assert_eq!(h.iv, [9; IV_LEN]);
        assert_eq!(body.len(), TAG_LEN + 5);
        assert_eq!(&h.gcm_aad(b"aad")[..HEADER_LEN], &b[..HEADER_LEN]);
    }

    #[test]
    fn each_header_fault_has_its_error() {
        let b = blob(SealPurpose::Ticket, b"aad");
        assert_eq!(
            Header::open(&b[..HEADER_LEN + TAG_LEN - 1], SealPurpose::Ticket, b"aad"),
            Err(SealError::Malformed("too short"))
        );
        let mut bad = b.clone();
        bad[0] ^= 1;
        assert_eq!(
            Header::open(&bad, SealPurpose::Ticket, b"aad"),
            Err(SealError::Malformed("bad magic"))
        );
        let mut bad = b.clone();
        bad[2] = 2;
        assert_eq!(
            Header::open(&bad, SealPurpose::Ticket, b"aad"),
            Err(SealError::Malformed("unknown version"))
        );
        let mut bad = b.clone();
        bad[3] = 0;
        assert_eq!(
            Header::open(&bad, SealPurpose::Ticket, b"aad"),
            Err(SealError::Malformed("unknown purpose"))
        );
        assert_eq!(
            Header::open(&b, SealPurpose::Record, b"aad"),
            Err(SealError::WrongPurpose)
        );
        assert_eq!(
            Header::open(&b, SealPurpose::Ticket, b"other"),
            Err(SealError::WrongAad)
        );
    }
}
