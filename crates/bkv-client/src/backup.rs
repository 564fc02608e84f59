//! End-to-end encrypted backups with the backup key K (docs/BACKUP_FORMAT.md).
//!
//! - The format: a 74-byte header (magic `BKVB`, version, algorithm, chunk size, a random
//!   salt, an HMAC-SHA256 over them), then the backup in chunks of a fixed size (64 KiB by
//!   default), each sealed with AES-256-GCM under a per-file key derived from K and the
//!   salt with HKDF-SHA256, with the STREAM nonce `prefix || counter || last-flag`, so that
//!   a backup cut short, extended, reordered or spliced with another one is refused.
//! - Streaming in constant memory (one chunk): [`Encryptor`] (an `io::Write`),
//!   [`Decryptor`] (an `io::Read`), [`encrypt`] and [`decrypt`] between a reader and a
//!   writer; the sans-I/O [`StreamSealer`] and [`StreamOpener`] for callers with their own
//!   (e.g. async) I/O.
//! - The 64-digit [`RecoveryCode`] that K can be derived from instead of being kept in the
//!   vault.
//! - The journey: [`VaultClient::enable_backup_with_password`](crate::VaultClient::enable_backup_with_password),
//!   [`enable_backup_with_recovery_code`],
//!   [`VaultClient::restore_key_with_password`](crate::VaultClient::restore_key_with_password),
//!   [`restore_key_with_code`].

mod backup_error;
mod decryptor;
mod encryptor;
mod file_keys;
mod header;
mod journey;
mod opener;
mod recovery_code;
mod sealer;
mod stream_error;

use std::io::{Read, Write};

pub use backup_error::BackupError;
pub use bkv_core::protocol::BackupKey;
pub use decryptor::Decryptor;
pub use encryptor::Encryptor;
pub use file_keys::{FILE_KEYS_INFO, NONCE_LEN, NONCE_PREFIX_LEN};
pub use header::{
    Algorithm, ChunkSize, HEADER_LEN, HEADER_MAC_LEN, HEADER_PREFIX_LEN, Header, MAGIC, SALT_LEN,
    VERSION,
};
pub use journey::{
    EnabledBackup, Protection, enable_backup_with_recovery_code, restore_key_with_code,
};
pub use opener::StreamOpener;
pub use recovery_code::{
    RECOVERY_CODE_DIGITS, RECOVERY_CODE_GROUP, RECOVERY_CODE_INFO, RECOVERY_CODE_RANDOM_DIGITS,
    RecoveryCode, RecoveryCodeError,
};
pub use sealer::StreamSealer;
pub use stream_error::StreamError;

/// Length of the AES-GCM tag that ends every sealed chunk.
pub const TAG_LEN: usize = 16;

/// Encrypts everything `input` yields into `output` as one backup under `key` (64 KiB
/// chunks). Returns the plaintext bytes. `output` gets the complete backup only if this
/// returns `Ok`.
pub fn encrypt(key: &BackupKey, input: impl Read, output: impl Write) -> Result<u64, StreamError> {
    encrypt_with_chunk_size(key, ChunkSize::DEFAULT, input, output)
}

/// [`encrypt`] with another chunk size.
pub fn encrypt_with_chunk_size(
    key: &BackupKey,
    chunk_size: ChunkSize,
    mut input: impl Read,
    output: impl Write,
) -> Result<u64, StreamError> {
    let mut enc = Encryptor::with_chunk_size(key, chunk_size, output)?;
    let mut buf = zeroize::Zeroizing::new(vec![0u8; chunk_size.len()]);
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        enc.write_all(&buf[..n])?;
    }
    let total = enc.bytes_written();
    enc.finish()?;
    Ok(total)
}

/// Decrypts the backup that `input` yields into `output` under `key`. Returns the plaintext
/// bytes. Chunks reach `output` as they authenticate, so after an error `output` holds a
/// prefix of the backup that must not be taken for all of it.
pub fn decrypt(
    key: &BackupKey,
    input: impl Read,
    mut output: impl Write,
) -> Result<u64, StreamError> {
    let mut dec = Decryptor::new(key, input)?;
    while let Some(chunk) = dec.next_chunk()? {
        output.write_all(chunk)?;
    }
    output.flush()?;
    Ok(dec.plaintext_len())
}
