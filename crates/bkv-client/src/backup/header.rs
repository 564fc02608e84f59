//! The header of a backup file: magic, version, algorithm, chunk size, the per-file salt and
//! the header MAC (docs/BACKUP_FORMAT.md §2). Parsing checks the fields that need no key;
//! the MAC is checked by [`super::StreamOpener`], which has the key.

use super::StreamError;

/// The first four bytes of every backup file: `BKVB`.
pub const MAGIC: [u8; 4] = *b"BKVB";

/// The format version this code writes and reads.
pub const VERSION: u8 = 1;

/// Length of the per-file salt.
pub const SALT_LEN: usize = 32;

/// Length of the header MAC (HMAC-SHA256, untruncated).
pub const HEADER_MAC_LEN: usize = 32;

/// Length of the header bytes the MAC covers: magic, version, algorithm, chunk size, salt.
pub const HEADER_PREFIX_LEN: usize = 4 + 1 + 1 + 4 + SALT_LEN;

/// Length of the whole header.
pub const HEADER_LEN: usize = HEADER_PREFIX_LEN + HEADER_MAC_LEN;

/// The AEAD construction of a file. Version 1 defines one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HKDF-SHA256 per-file keys, AES-256-GCM chunks, STREAM nonces (id 1).
    Aes256GcmHkdfSha256,
}

impl Algorithm {
    /// The byte that names the algorithm in the header.
    pub fn id(self) -> u8 {
        match self {
            Self::Aes256GcmHkdfSha256 => 1,
        }
    }

    /// The algorithm named by `id`.
    pub fn from_id(id: u8) -> Result<Self, StreamError> {
        match id {
            1 => Ok(Self::Aes256GcmHkdfSha256),
            other => Err(StreamError::UnsupportedAlgorithm(other)),
        }
    }
}

/// Plaintext bytes per chunk: every chunk but the last holds exactly this many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkSize(u32);

impl ChunkSize {
    /// The smallest chunk size a file may declare (16 bytes).
    pub const MIN: u32 = 16;
    /// The largest chunk size a file may declare (16 MiB): what a reader must buffer.
    pub const MAX: u32 = 16 * 1024 * 1024;
    /// What this code writes unless told otherwise (64 KiB).
    pub const DEFAULT: Self = Self(64 * 1024);

    /// A chunk size in `MIN..=MAX`.
    pub fn new(bytes: u32) -> Result<Self, StreamError> {
        if (Self::MIN..=Self::MAX).contains(&bytes) {
            Ok(Self(bytes))
        } else {
            Err(StreamError::BadChunkSize(bytes))
        }
    }

    /// The size in bytes.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The size in bytes, as a length. A `u32` always fits a `usize` on the targets bkv
    /// builds for (64-bit).
    pub fn len(self) -> usize {
        self.0 as usize
    }

    /// Always false: a chunk size is at least [`Self::MIN`]. (For clippy's `len` rule.)
    pub fn is_empty(self) -> bool {
        false
    }
}

impl Default for ChunkSize {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A parsed header. Its MAC is not checked here: see [`super::StreamOpener::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The AEAD construction.
    pub algorithm: Algorithm,
    /// Plaintext bytes per chunk.
    pub chunk_size: ChunkSize,
    /// The random per-file salt that the file's keys are derived with.
    pub salt: [u8; SALT_LEN],
    /// HMAC-SHA256 of the first [`HEADER_PREFIX_LEN`] bytes under the file's header key.
    pub mac: [u8; HEADER_MAC_LEN],
}

impl Header {
    /// The bytes the MAC covers: `magic || version || algorithm || chunk_size (u32 BE) || salt`.
    pub fn prefix(&self) -> [u8; HEADER_PREFIX_LEN] {
        let mut out = [0u8; HEADER_PREFIX_LEN];
        out[..4].copy_from_slice(&MAGIC);
        out[4] = VERSION;
        out[5] = self.algorithm.id();
        out[6..10].copy_from_slice(&self.chunk_size.get().to_be_bytes());
        out[10..].copy_from_slice(&self.salt);
        out
    }

    /// The header as written: `prefix || mac`.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..HEADER_PREFIX_LEN].copy_from_slice(&self.prefix());
        out[HEADER_PREFIX_LEN..].copy_from_slice(&self.mac);
        out
    }

    /// Parses the fields that need no key, in the order a reader meets them: magic,
    /// version, algorithm, chunk size.
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Result<Self, StreamError> {
        if bytes[..4] != MAGIC {
            return Err(StreamError::NotABackup);
        }
        if bytes[4] != VERSION {
            return Err(StreamError::UnsupportedVersion(bytes[4]));
        }
        let algorithm = Algorithm::from_id(bytes[5])?;
        let chunk_size =
            ChunkSize::new(u32::from_be_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]))?;
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&bytes[10..HEADER_PREFIX_LEN]);
        let mut mac = [0u8; HEADER_MAC_LEN];
        mac.copy_from_slice(&bytes[HEADER_PREFIX_LEN..]);
        Ok(Self {
            algorithm,
            chunk_size,
            salt,
            mac,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            algorithm: Algorithm::Aes256GcmHkdfSha256,
            chunk_size: ChunkSize::DEFAULT,
            salt: [7; SALT_LEN],
            mac: [9; HEADER_MAC_LEN],
        }
    }

    #[test]
    fn headers_round_trip_and_lay_out_as_documented() {
        let h = header();
        let bytes = h.encode();
        assert_eq!(bytes.len(), 74);
        assert_eq!(&bytes[..10], b"BKVB\x01\x01\x00\x01\x00\x00");
        assert_eq!(Header::parse(&bytes), Ok(h));
    }

    #[test]
    fn each_keyless_field_is_checked_in_order() {
        let good = header().encode();
        let mut b = good;
        b[0] = b'X';
        assert_eq!(Header::parse(&b), Err(StreamError::NotABackup));
        let mut b = good;
        b[4] = 2;
        assert_eq!(Header::parse(&b), Err(StreamError::UnsupportedVersion(2)));
        let mut b = good;
        b[5] = 0;
        assert_eq!(Header::parse(&b), Err(StreamError::UnsupportedAlgorithm(0)));
        let mut b = good;
        b[6..10].copy_from_slice(&15u32.to_be_bytes());
        assert_eq!(Header::parse(&b), Err(StreamError::BadChunkSize(15)));
        b[6..10].copy_from_slice(&(ChunkSize::MAX + 1).to_be_bytes());
        assert_eq!(
            Header::parse(&b),
            Err(StreamError::BadChunkSize(ChunkSize::MAX + 1))
        );
        b[6..10].copy_from_slice(&ChunkSize::MAX.to_be_bytes());
        assert!(Header::parse(&b).is_ok());
    }
}
