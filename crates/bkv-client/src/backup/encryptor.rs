//! Encrypts a backup as it is written: an `std::io::Write` that buffers one chunk, seals it
//! with [`StreamSealer`] and writes it on. Memory stays at one chunk whatever the size.

use std::io::{self, Write};

use bkv_core::protocol::BackupKey;
use zeroize::Zeroizing;

use super::header::ChunkSize;
use super::{StreamError, StreamSealer, TAG_LEN};

/// A writer that encrypts everything written to it into `inner` in the backup format.
///
/// [`Self::finish`] must be called at the end: it seals the last chunk. A backup whose
/// encryptor was dropped without `finish` lacks its last chunk, and every reader refuses it
/// as truncated.
///
/// ```
/// use bkv_client::backup::{Encryptor, decrypt};
/// use bkv_client::BackupKey;
/// use std::io::Write as _;
///
/// let key = BackupKey::generate();
/// let mut enc = Encryptor::new(&key, Vec::new())?;
/// enc.write_all(b"chat history")?;
/// let file = enc.finish()?;
/// let mut restored = Vec::new();
/// decrypt(&key, file.as_slice(), &mut restored)?;
/// assert_eq!(restored, b"chat history");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Encryptor<W: Write> {
    inner: W,
    sealer: StreamSealer,
    /// The plaintext of the chunk being filled; sealed in place, then written.
    chunk: Zeroizing<Vec<u8>>,
    /// A failure that ends the stream: every later call returns it.
    failed: Option<StreamError>,
}

impl<W: Write> Encryptor<W> {
    /// An encryptor with the default chunk size (64 KiB). Writes the header to `inner`.
    pub fn new(key: &BackupKey, inner: W) -> io::Result<Self> {
        Self::with_chunk_size(key, ChunkSize::DEFAULT, inner)
    }

    /// An encryptor with another chunk size. Writes the header to `inner`.
    pub fn with_chunk_size(key: &BackupKey, chunk_size: ChunkSize, inner: W) -> io::Result<Self> {
        Self::from_sealer(StreamSealer::new(key, chunk_size), inner)
    }

    /// An encryptor over a sealer made elsewhere (e.g. with [`StreamSealer::with_rng`]).
    /// Writes the sealer's header to `inner`; the sealer must not have sealed a chunk yet.
    pub fn from_sealer(sealer: StreamSealer, mut inner: W) -> io::Result<Self> {
        if sealer.chunks_sealed() > 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the sealer has already sealed chunks of another stream",
            ));
        }
        inner.write_all(&sealer.header())?;
        let chunk = Zeroizing::new(Vec::with_capacity(sealer.chunk_size().len() + TAG_LEN));
        Ok(Self {
            inner,
            sealer,
            chunk,
            failed: None,
        })
    }

    /// Seals the last chunk, writes it, flushes, and gives the inner writer back.
    pub fn finish(mut self) -> io::Result<W> {
        self.seal_and_write(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }

    /// Plaintext bytes taken so far.
    pub fn bytes_written(&self) -> u64 {
        self.sealer.chunks_sealed() * u64::from(self.sealer.chunk_size().get())
            + self.chunk.len() as u64
    }

    fn seal_and_write(&mut self, last: bool) -> io::Result<()> {
        if let Some(e) = &self.failed {
            return Err(e.clone().into_io());
        }
        let result = self
            .sealer
            .seal(&mut self.chunk, last)
            .map_err(StreamError::into_io)
            .and_then(|()| self.inner.write_all(&self.chunk));
        self.chunk.clear();
        if let Err(e) = &result {
            // A half-written chunk cannot be taken back: the stream is over.
            self.failed = Some(StreamError::Io {
                kind: e.kind(),
                message: e.to_string(),
            });
        }
        result
    }
}

/// Shows where the writer is, never the chunk it holds (plaintext).
impl<W: Write> std::fmt::Debug for Encryptor<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor")
            .field("chunks_sealed", &self.sealer.chunks_sealed())
            .field("bytes_written", &self.bytes_written())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl<W: Write> Write for Encryptor<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Some(e) = &self.failed {
            return Err(e.clone().into_io());
        }
        if data.is_empty() {
            return Ok(0);
        }
        let size = self.sealer.chunk_size().len();
        // A full chunk is sealed only when more data comes: if the backup ends on a chunk
        // boundary, that chunk is the last and is sealed as such by `finish`.
        if self.chunk.len() == size {
            self.seal_and_write(false)?;
        }
        let n = data.len().min(size - self.chunk.len());
        self.chunk.extend_from_slice(&data[..n]);
        Ok(n)
    }

    /// Flushes the inner writer. The chunk being filled stays buffered: only whole chunks
    /// (and the last, at [`Encryptor::finish`]) are ever written.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
