//! The sans-I/O writing side of the format: seals one chunk at a time in place, numbering
//! the chunks and marking the last (docs/BACKUP_FORMAT.md §4). [`super::Encryptor`] drives
//! it over `std::io::Write`; an async caller can drive it over its own I/O.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, Nonce};
use bkv_core::protocol::BackupKey;
use rand::rngs::OsRng;
use rand::{CryptoRng, RngCore};

use super::file_keys::FileKeys;
use super::header::{Algorithm, ChunkSize, HEADER_LEN, Header, SALT_LEN};
use super::{StreamError, TAG_LEN};

/// Seals the chunks of one backup. Write [`Self::header`] first, then each chunk as
/// [`Self::seal`] leaves it; the chunk marked last ends the backup.
#[derive(Debug)]
pub struct StreamSealer {
    keys: FileKeys,
    header: Header,
    sealed: u64,
    finished: bool,
}

impl StreamSealer {
    /// A sealer for a new backup under `key`, with a fresh random salt from the operating
    /// system.
    pub fn new(key: &BackupKey, chunk_size: ChunkSize) -> Self {
        Self::with_rng(key, chunk_size, &mut OsRng)
    }

    /// A sealer whose salt comes from `rng` (the test vectors use a fixed one). The salt
    /// must never repeat under the same key: two files would share their keys and nonces.
    pub fn with_rng(
        key: &BackupKey,
        chunk_size: ChunkSize,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Self {
        let mut salt = [0u8; SALT_LEN];
        rng.fill_bytes(&mut salt);
        let keys = FileKeys::derive(key, &salt);
        let mut header = Header {
            algorithm: Algorithm::Aes256GcmHkdfSha256,
            chunk_size,
            salt,
            mac: [0; 32],
        };
        header.mac = keys.header_mac(&header.prefix());
        Self {
            keys,
            header,
            sealed: 0,
            finished: false,
        }
    }

    /// The header, as the backup starts with it.
    pub fn header(&self) -> [u8; HEADER_LEN] {
        self.header.encode()
    }

    /// Plaintext bytes per chunk.
    pub fn chunk_size(&self) -> ChunkSize {
        self.header.chunk_size
    }

    /// Chunks sealed so far.
    pub fn chunks_sealed(&self) -> u64 {
        self.sealed
    }

    /// Whether the last chunk was sealed.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Seals the next chunk in place: `chunk` holds its plaintext, exactly the chunk size
    /// unless `last`; a last chunk holds 1 to chunk-size bytes, or none if it is the only
    /// chunk (an empty backup). On return `chunk` holds `ciphertext || tag`.
    pub fn seal(&mut self, chunk: &mut Vec<u8>, last: bool) -> Result<(), StreamError> {
        if self.finished {
            return Err(StreamError::Finished);
        }
        let size = self.header.chunk_size.len();
        let len_ok = if last {
            chunk.len() <= size && (!chunk.is_empty() || self.sealed == 0)
        } else {
            chunk.len() == size
        };
        if !len_ok {
            return Err(StreamError::ChunkLength {
                chunk: self.sealed,
                len: chunk.len(),
            });
        }
        let counter = u32::try_from(self.sealed).map_err(|_| StreamError::TooLong)?;
        let nonce = Nonce::<Aes256Gcm>::from(self.keys.nonce(counter, last));
        let tag = self
            .keys
            .cipher()
            .encrypt_inout_detached(&nonce, &[], chunk.as_mut_slice().into())
            // AES-GCM refuses only messages over 64 GiB; a chunk is at most 16 MiB.
            .map_err(|_| StreamError::ChunkLength {
                chunk: self.sealed,
                len: chunk.len(),
            })?;
        chunk.reserve_exact(TAG_LEN);
        chunk.extend_from_slice(&tag);
        self.sealed += 1;
        self.finished = last;
        Ok(())
    }
}
