//! The folder that stands for the cloud drive of `bkv backup`: the encrypted backup
//! (`backup.bkvb`, docs/BACKUP_FORMAT.md) and a manifest beside it (`backup.json`) that says
//! how its key is protected, so that a restore asks for the right secret before spending a
//! guess. Neither holds a secret in the clear: the manifest names the account and the record
//! version, never the key, the password or the recovery key.
//!
//! A new backup is written under a temporary name and renamed over the old one only when it
//! is complete, so a failed `backup create` leaves the previous backup as it was.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exit::Failure;

/// The encrypted backup in the drive.
pub const BACKUP_FILE: &str = "backup.bkvb";
/// The manifest in the drive.
pub const MANIFEST_FILE: &str = "backup.json";
/// What the manifest's `format` field holds.
pub const MANIFEST_FORMAT: &str = "bkv-backup-manifest/1";

/// How the backup's key is protected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "protection", rename_all = "kebab-case")]
pub enum Protection {
    /// Behind a password in the vault, for this account and record version.
    Password {
        /// The account id.
        account: String,
        /// The record version whose key encrypted the backup.
        version: u64,
    },
    /// Derived from a 64-digit recovery key that the person wrote down.
    RecoveryKey,
}

/// The manifest: no secret, only what a restore needs to ask for the right one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// How the key is protected.
    #[serde(flatten)]
    pub protection: Protection,
    /// Plaintext bytes in the backup.
    pub bytes: u64,
    /// When the backup was made, seconds since the Unix epoch.
    pub created_unix: u64,
}

/// A drive folder.
#[derive(Debug, Clone)]
pub struct Drive {
    dir: PathBuf,
}

/// A backup being written: the temporary file, renamed into place by [`Drive::commit`].
#[derive(Debug)]
pub struct PendingBackup {
    /// Its temporary path.
    pub path: PathBuf,
    /// The file, buffered.
    pub file: BufWriter<File>,
}

impl Drive {
    /// The drive at `dir`, created if missing.
    pub fn create(dir: &Path) -> Result<Self, Failure> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Failure::other(format!("cannot create the drive {}: {e}", dir.display()))
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The drive at `dir`, which must hold a backup.
    pub fn open(dir: &Path) -> Result<Self, Failure> {
        let drive = Self {
            dir: dir.to_path_buf(),
        };
        if !drive.backup_path().is_file() {
            return Err(Failure::other(format!(
                "no backup in {}: {BACKUP_FILE} is missing",
                dir.display()
            )));
        }
        Ok(drive)
    }

    /// The encrypted backup's path.
    pub fn backup_path(&self) -> PathBuf {
        self.dir.join(BACKUP_FILE)
    }

    fn manifest_path(&self) -> PathBuf {
        self.dir.join(MANIFEST_FILE)
    }

    /// Starts a new backup under a temporary name (an old temporary file is replaced).
    pub fn begin(&self) -> Result<PendingBackup, Failure> {
        let path = self.dir.join(format!("{BACKUP_FILE}.partial"));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| Failure::other(format!("cannot create {}: {e}", path.display())))?;
        Ok(PendingBackup {
            path,
            file: BufWriter::with_capacity(256 * 1024, file),
        })
    }

    /// Makes a finished backup and its manifest the drive's: syncs the backup, renames it
    /// into place, then writes the manifest the same way.
    pub fn commit(&self, pending: PendingBackup, manifest: &Manifest) -> Result<(), Failure> {
        let PendingBackup { path, file } = pending;
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            Failure::other(format!("cannot {what} in {}: {e}", self.dir.display()))
        };
        let file = file
            .into_inner()
            .map_err(|e| fail("write the backup", &e.error().to_string()))?;
        file.sync_all().map_err(|e| fail("sync the backup", &e))?;
        let manifest_tmp = self.dir.join(format!("{MANIFEST_FILE}.partial"));
        let text = serde_json::to_string_pretty(manifest).map_err(|e| fail("encode", &e))? + "\n";
        let mut m = File::create(&manifest_tmp).map_err(|e| fail("write the manifest", &e))?;
        m.write_all(text.as_bytes())
            .and_then(|()| m.sync_all())
            .map_err(|e| fail("write the manifest", &e))?;
        std::fs::rename(&path, self.backup_path()).map_err(|e| fail("rename the backup", &e))?;
        std::fs::rename(&manifest_tmp, self.manifest_path())
            .map_err(|e| fail("rename the manifest", &e))?;
        Ok(())
    }

    /// The manifest. A drive without one (a backup copied without it) gives `None`.
    pub fn manifest(&self) -> Result<Option<Manifest>, Failure> {
        let path = self.manifest_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Failure::other(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
            Failure::other(format!("{} is not a backup manifest: {e}", path.display()))
        })?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(Failure::other(format!(
                "{} has format {:?}; this bkv reads {MANIFEST_FORMAT:?}",
                path.display(),
                manifest.format
            )));
        }
        Ok(Some(manifest))
    }
}
