//! What client commands read and write locally: the password from stdin, the backup key to
//! a file (mode 0600, never overwriting) or to stdout when asked with `-`.

use std::io::{BufRead as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;

use bkv_client::{BackupKey, SecretString};
use zeroize::Zeroizing;

use crate::exit::Failure;

/// Reads the password: one line of stdin, without its line ending.
pub fn read_password() -> Result<SecretString, Failure> {
    let mut line = Zeroizing::new(String::new());
    let n = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::other(format!("cannot read the password from stdin: {e}")))?;
    if n == 0 {
        return Err(Failure::usage("no password on stdin"));
    }
    let trimmed = line.strip_suffix('\n').unwrap_or(&line);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Err(Failure::usage("the password on stdin is empty"));
    }
    Ok(SecretString::from(trimmed.to_string()))
}

/// Where the backup key goes: a new file, opened before anything is sent to the vault so
/// that a key is never registered or recovered only to be lost; or stdout.
#[derive(Debug)]
pub enum KeyOut {
    /// `-`: the key goes to stdout.
    Stdout,
    /// A new file, mode 0600.
    File {
        /// Its path.
        path: PathBuf,
        /// The open file.
        file: std::fs::File,
    },
}

impl KeyOut {
    /// Opens `arg` (`-` for stdout). Refuses an existing file: it may hold another key.
    pub fn open(arg: &str) -> Result<Self, Failure> {
        if arg == "-" {
            return Ok(Self::Stdout);
        }
        let path = PathBuf::from(arg);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Failure::other(format!(
                        "{} exists; refusing to overwrite a key file",
                        path.display()
                    ))
                } else {
                    Failure::other(format!("cannot create {}: {e}", path.display()))
                }
            })?;
        Ok(Self::File { path, file })
    }

    /// Writes the key as 64 hex digits and a newline, and syncs the file.
    pub fn write(self, key: &BackupKey) -> Result<Option<PathBuf>, Failure> {
        let mut text = key.to_hex();
        text.push('\n');
        match self {
            Self::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(|e| Failure::other(format!("cannot write the key: {e}")))?;
                Ok(None)
            }
            Self::File { path, mut file } => {
                file.write_all(text.as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| {
                        Failure::other(format!("cannot write the key to {}: {e}", path.display()))
                    })?;
                Ok(Some(path))
            }
        }
    }

    /// Removes the (still empty) file after a failure.
    pub fn abandon(self) {
        if let Self::File { path, file } = self {
            drop(file);
            let _ = std::fs::remove_file(path);
        }
    }
}
