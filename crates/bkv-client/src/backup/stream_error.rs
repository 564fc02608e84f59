//! Why a backup stream could not be written or read. The messages name the chunk and the
//! reason, never a key or a byte of plaintext.

use std::io;

/// Why a backup could not be encrypted or decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The input does not start with the magic `BKVB` (or is empty).
    #[error("not a bkv backup (it does not start with BKVB)")]
    NotABackup,
    /// The header names a format version this code does not read.
    #[error("backup format version {0} is not supported (this reads version 1)")]
    UnsupportedVersion(u8),
    /// The header names an algorithm this code does not know.
    #[error("backup algorithm {0} is not supported (this reads algorithm 1)")]
    UnsupportedAlgorithm(u8),
    /// A chunk size outside 16 bytes to 16 MiB (in a header, or asked of the writer).
    #[error("chunk size {0} is outside 16..=16777216 bytes")]
    BadChunkSize(u32),
    /// The header's MAC does not verify: the backup was made with another key, or its
    /// header was altered. Nothing was decrypted.
    #[error("the backup was not made with this key, or its header was altered")]
    WrongKey,
    /// A chunk does not authenticate: it was altered, moved, cut inside, or taken from
    /// another backup. Chunks before it authenticated.
    #[error(
        "chunk {chunk} of the backup does not authenticate: altered, cut short inside the \
         chunk, reordered or mixed with another backup"
    )]
    Corrupted {
        /// The chunk's index, from 0.
        chunk: u64,
    },
    /// The backup ends before its final chunk: it was cut short at a chunk boundary or
    /// inside its header. The chunks before the cut authenticated.
    #[error("the backup is truncated: it ends after {chunks} chunks, before its final one")]
    Truncated {
        /// Chunks that authenticated before the end.
        chunks: u64,
    },
    /// Bytes follow the final chunk: something was appended to the backup.
    #[error("data follows the final chunk (chunk {chunk}) of the backup")]
    TrailingData {
        /// The index of the final chunk.
        chunk: u64,
    },
    /// A chunk of a length the format does not allow at its place (a caller of the sans-I/O
    /// [`super::StreamSealer`] or [`super::StreamOpener`] passed it).
    #[error("chunk {chunk} has {len} bytes, which the format does not allow there")]
    ChunkLength {
        /// The chunk's index, from 0.
        chunk: u64,
        /// Its length (plaintext when sealing, sealed when opening).
        len: usize,
    },
    /// A backup of more than 2^32 chunks (256 TiB at 64 KiB): the chunk counter would wrap.
    #[error("the backup is too long for its chunk counter")]
    TooLong,
    /// The encryptor was used after it finished or failed.
    #[error("the backup stream is already finished")]
    Finished,
    /// Reading or writing the underlying stream failed.
    #[error("I/O error: {message}")]
    Io {
        /// The kind of the I/O error.
        kind: io::ErrorKind,
        /// Its message.
        message: String,
    },
}

impl StreamError {
    /// The stream error inside an I/O error that [`super::Decryptor`] or
    /// [`super::Encryptor`] returned, or the I/O error itself.
    pub fn from_io(e: io::Error) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<StreamError>()) {
            let kind = e.kind();
            let message = e.to_string();
            return match e.into_inner().map(|inner| inner.downcast::<StreamError>()) {
                Some(Ok(stream)) => *stream,
                _ => Self::Io { kind, message },
            };
        }
        Self::Io {
            kind: e.kind(),
            message: e.to_string(),
        }
    }

    /// This error as an I/O error (kind `InvalidData` unless it is one), for the `Read` and
    /// `Write` implementations; [`Self::from_io`] gets it back.
    pub fn into_io(self) -> io::Error {
        match self {
            Self::Io { kind, message } => io::Error::new(kind, message),
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

impl From<io::Error> for StreamError {
    fn from(e: io::Error) -> Self {
        Self::from_io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_errors_survive_a_trip_through_io_errors() {
        let e = StreamError::Corrupted { chunk: 3 }.into_io();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(StreamError::from_io(e), StreamError::Corrupted { chunk: 3 });
        let plain = io::Error::new(io::ErrorKind::BrokenPipe, "pipe");
        assert_eq!(
            StreamError::from(plain),
            StreamError::Io {
                kind: io::ErrorKind::BrokenPipe,
                message: "pipe".into()
            }
        );
        let io_again = StreamError::Io {
            kind: io::ErrorKind::UnexpectedEof,
            message: "eof".into(),
        }
        .into_io();
        assert_eq!(io_again.kind(), io::ErrorKind::UnexpectedEof);
    }
}
