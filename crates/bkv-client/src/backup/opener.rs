//! The sans-I/O reading side of the format: checks the header MAC, then opens one chunk at a
//! time in place, in order, and tells a truncated or extended backup from an altered one
//! (docs/BACKUP_FORMAT.md §5). [`super::Decryptor`] drives it over `std::io::Read`.

use aes_gcm::aead::{AeadInOut, Nonce};
use aes_gcm::{Aes256Gcm, Tag};
use bkv_core::protocol::BackupKey;
use zeroize::Zeroize as _;

use super::file_keys::FileKeys;
use super::header::{HEADER_LEN, Header};
use super::{StreamError, TAG_LEN};

/// Where the opener is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// More chunks are expected.
    Open,
    /// The last chunk was opened.
    Finished,
    /// A chunk failed; every later call fails the same way.
    Failed(StreamError),
}

/// Opens the chunks of one backup, in order. A chunk's plaintext is released only after
/// its tag verified; the backup is whole only once the chunk marked last has opened.
#[derive(Debug)]
pub struct StreamOpener {
    keys: FileKeys,
    header: Header,
    opened: u64,
    state: State,
}

impl StreamOpener {
    /// Parses the header and checks its MAC under `key`: [`StreamError::WrongKey`] if the
    /// backup was made with another key or the header was altered.
    pub fn new(key: &BackupKey, header: &[u8; HEADER_LEN]) -> Result<Self, StreamError> {
        let header = Header::parse(header)?;
        let keys = FileKeys::derive(key, &header.salt);
        if !keys.verify_header(&header.prefix(), &header.mac) {
            return Err(StreamError::WrongKey);
        }
        Ok(Self {
            keys,
            header,
            opened: 0,
            state: State::Open,
        })
    }

    /// The verified header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Length of a sealed chunk that is not the last: chunk size plus the tag.
    pub fn sealed_chunk_len(&self) -> usize {
        self.header.chunk_size.len() + TAG_LEN
    }

    /// Chunks opened so far.
    pub fn chunks_opened(&self) -> u64 {
        self.opened
    }

    /// Whether the last chunk has opened: the backup is complete.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// Opens the next chunk in place: `sealed` holds `ciphertext || tag` as read, and
    /// `last` says whether the input ends after it. On success `sealed` holds the
    /// plaintext; on failure it is zeroized and emptied, and every later call fails too.
    pub fn open(&mut self, sealed: &mut Vec<u8>, last: bool) -> Result<(), StreamError> {
        match &self.state {
            State::Open => {}
            State::Finished => {
                sealed.zeroize();
                return Err(StreamError::TrailingData {
                    chunk: self.opened.saturating_sub(1),
                });
            }
            State::Failed(e) => {
                sealed.zeroize();
                return Err(e.clone());
            }
        }
        match self.open_inner(sealed, last) {
            Ok(()) => {
                self.opened += 1;
                if last {
                    self.state = State::Finished;
                }
                Ok(())
            }
            Err(e) => {
                sealed.zeroize();
                self.state = State::Failed(e.clone());
                Err(e)
            }
        }
    }

    fn open_inner(&self, sealed: &mut Vec<u8>, last: bool) -> Result<(), StreamError> {
        let chunk = self.opened;
        let full = self.sealed_chunk_len();
        if sealed.len() < TAG_LEN {
            // Only the end of the input can be this short: a backup cut inside a chunk, or
            // at a chunk boundary (nothing after the last full chunk).
            return Err(if last {
                StreamError::Truncated { chunks: chunk }
            } else {
                StreamError::ChunkLength {
                    chunk,
                    len: sealed.len(),
                }
            });
        }
        if sealed.len() > full || (!last && sealed.len() != full) {
            return Err(StreamError::ChunkLength {
                chunk,
                len: sealed.len(),
            });
        }
        let counter = u32::try_from(chunk).map_err(|_| StreamError::TooLong)?;
        let body_len = sealed.len() - TAG_LEN;
        let (body, tag) = sealed.split_at_mut(body_len);
        let tag = <Tag>::try_from(&*tag).map_err(|_| StreamError::ChunkLength {
            chunk,
            len: body_len + TAG_LEN,
        })?;
        let cipher = self.keys.cipher();
        let nonce = |last: bool| Nonce::<Aes256Gcm>::from(self.keys.nonce(counter, last));
        // aes-gcm checks the tag before it decrypts: on failure `body` is untouched.
        if cipher
            .decrypt_inout_detached(&nonce(last), &[], (&mut *body).into(), &tag)
            .is_ok()
        {
            // The final chunk may be empty only when it is the only one.
            if last && body_len == 0 && chunk > 0 {
                return Err(StreamError::Corrupted { chunk });
            }
            sealed.truncate(body_len);
            return Ok(());
        }
        // Tell a cut or an extension from an alteration: the chunk opens with the other
        // flag. Its plaintext is then zeroized by the caller, never released.
        if cipher
            .decrypt_inout_detached(&nonce(!last), &[], (&mut *body).into(), &tag)
            .is_ok()
        {
            return Err(if last {
                StreamError::Truncated { chunks: chunk + 1 }
            } else {
                StreamError::TrailingData { chunk }
            });
        }
        Err(StreamError::Corrupted { chunk })
    }
}
