//! Decrypts a backup as it is read: an `std::io::Read` that reads one sealed chunk (and one
//! byte beyond it, to know whether it is the last), opens it with [`StreamOpener`] and
//! releases its plaintext only once it authenticated. Memory stays at one chunk.

use std::io::{self, Read};

use bkv_core::protocol::BackupKey;
use zeroize::Zeroizing;

use super::header::{HEADER_LEN, MAGIC};
use super::{StreamError, StreamOpener};

/// A reader of the plaintext of a backup read from `inner`.
///
/// The header is read and checked (magic, version, MAC under the key) by [`Self::new`].
/// Each chunk's plaintext is released only after the chunk authenticated, but the backup as
/// a whole is only known to be complete when the reader reaches its end without error
/// (`read` returns 0): a caller writing the plaintext somewhere keeps it provisional until
/// then. Errors come as `io::Error`s of kind `InvalidData` that carry a [`StreamError`]
/// ([`StreamError::from_io`] gets it back); after one, every call fails the same way.
pub struct Decryptor<R: Read> {
    inner: R,
    opener: StreamOpener,
    /// The current chunk: sealed as read, then its plaintext.
    chunk: Zeroizing<Vec<u8>>,
    /// How much of the current chunk's plaintext was handed out.
    pos: usize,
    /// The byte read beyond a full chunk to learn whether another follows.
    lookahead: Option<u8>,
    plaintext: u64,
    /// A failure that ends the stream: every later call returns it.
    failed: Option<StreamError>,
}

impl<R: Read> Decryptor<R> {
    /// Reads the header from `inner` and checks it under `key`.
    pub fn new(key: &BackupKey, mut inner: R) -> Result<Self, StreamError> {
        let mut header = [0u8; HEADER_LEN];
        let n = read_full(&mut inner, &mut header)?;
        if n < HEADER_LEN {
            // A start of the magic followed by nothing is a backup cut inside its header.
            let magic_len = n.min(MAGIC.len());
            return Err(if n > 0 && header[..magic_len] == MAGIC[..magic_len] {
                StreamError::Truncated { chunks: 0 }
            } else {
                StreamError::NotABackup
            });
        }
        let opener = StreamOpener::new(key, &header)?;
        let chunk = Zeroizing::new(Vec::with_capacity(opener.sealed_chunk_len()));
        Ok(Self {
            inner,
            opener,
            chunk,
            pos: 0,
            lookahead: None,
            plaintext: 0,
            failed: None,
        })
    }

    /// The next chunk's plaintext, authenticated; `None` once the last chunk was read.
    pub fn next_chunk(&mut self) -> Result<Option<&[u8]>, StreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.opener.is_finished() {
            self.pos = self.chunk.len();
            return Ok(None);
        }
        self.pos = 0;
        if let Err(e) = self.read_and_open() {
            self.chunk.clear();
            self.failed = Some(e.clone());
            return Err(e);
        }
        self.pos = self.chunk.len();
        self.plaintext += self.chunk.len() as u64;
        Ok(Some(&self.chunk[..]))
    }

    /// Reads the next sealed chunk and opens it in place.
    fn read_and_open(&mut self) -> Result<(), StreamError> {
        let full = self.opener.sealed_chunk_len();
        self.chunk.clear();
        self.chunk.resize(full, 0);
        let mut filled = 0;
        if let Some(b) = self.lookahead.take() {
            self.chunk[0] = b;
            filled = 1;
        }
        filled += read_full(&mut self.inner, &mut self.chunk[filled..])?;
        let last = if filled < full {
            true
        } else {
            let mut one = [0u8; 1];
            let more = read_full(&mut self.inner, &mut one)? == 1;
            self.lookahead = more.then_some(one[0]);
            !more
        };
        self.chunk.truncate(filled);
        self.opener.open(&mut self.chunk, last)
    }

    /// Whether the whole backup was read and authenticated.
    pub fn is_finished(&self) -> bool {
        self.opener.is_finished() && self.pos == self.chunk.len()
    }

    /// Plaintext bytes authenticated so far.
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext
    }

    /// The inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for Decryptor<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.pos == self.chunk.len() {
            match self.next_chunk() {
                Ok(Some(_)) => self.pos = 0,
                Ok(None) => return Ok(0),
                Err(e) => return Err(e.into_io()),
            }
        }
        let n = out.len().min(self.chunk.len().saturating_sub(self.pos));
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Shows where the reader is, never the chunk it holds (plaintext).
impl<R: Read> std::fmt::Debug for Decryptor<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor")
            .field("chunks_opened", &self.opener.chunks_opened())
            .field("plaintext_len", &self.plaintext)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// Reads until `buf` is full or the input ends; the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
