//! `bkv backup create` and `bkv backup restore`: the backup journey with a folder standing
//! for the cloud drive. The backup is encrypted with a backup key K in the streaming format
//! of docs/BACKUP_FORMAT.md, in constant memory whatever its size; K is protected by a
//! password in the vault (registered on create, recovered on restore) or derived from a
//! 64-digit recovery key that the person writes down.

use std::fs::File;
use std::io::{BufReader, IsTerminal as _, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bkv_client::backup::{self, BackupKey, Encryptor, RecoveryCode, StreamError};
use bkv_client::{KsfParams, VaultClient};
use bkv_core::ids::AccountId;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use zeroize::Zeroizing;

use crate::conn::{ClientConn, TokenArgs, vault_client};
use crate::drive::{Drive, MANIFEST_FORMAT, Manifest, PendingBackup, Protection};
use crate::exit::Failure;
use crate::output::read_password;
use crate::parse::parse_account;

/// `bkv backup ...`
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Encrypt a file into the drive folder with a new backup key, protected by a password
    /// in the vault or by a 64-digit recovery key
    Create(CreateArgs),
    /// Restore the drive folder's backup into a file with the password or the recovery key
    Restore(RestoreArgs),
}

/// How to reach the vault, for the password protection. The connection settings are
/// optional here (a recovery key needs no vault); with --password-stdin they are checked
/// when the command runs.
#[derive(Debug, Args)]
#[command(
    mut_arg("endpoints", |a| a.required(false)),
    mut_arg("ca_cert", |a| a.required(false))
)]
pub struct VaultArgs {
    /// The account whose vault record protects the backup key (with --password-stdin)
    #[arg(long, value_parser = parse_account, value_name = "ACCOUNT")]
    pub account: Option<AccountId>,
    #[command(flatten)]
    pub conn: Option<ClientConn>,
    #[command(flatten)]
    pub token: TokenArgs,
    /// INSECURE, for test accounts only: the smallest Argon2id (8 KiB, 1 pass) instead of
    /// the default (19 MiB, 2 passes); it must be given again at restore
    #[arg(long, requires = "password_stdin")]
    pub insecure_light_ksf: bool,
}

/// `bkv backup create`
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("protection").required(true).args(["password_stdin", "recovery_key"]))]
pub struct CreateArgs {
    /// The file to back up; `-` for stdin
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// The folder that stands for the cloud drive; backup.bkvb and backup.json are
    /// written there (a previous backup is replaced only once the new one is complete)
    #[arg(long, value_name = "DIR")]
    pub drive: PathBuf,
    /// Protect the backup key with a password read from stdin (one line): once the backup
    /// is written, registers its new key for --account in the vault, which replaces the
    /// account's previous key (backups made with it can no longer be restored)
    #[arg(long, requires = "account")]
    pub password_stdin: bool,
    /// Protect the backup key with a new 64-digit recovery key, printed on stdout once the
    /// backup is written: write it down, nothing else can restore the backup
    #[arg(long)]
    pub recovery_key: bool,
    /// Wrong guesses allowed before the vault destroys the record (default: the cluster's)
    #[arg(long, requires = "password_stdin", value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub guess_limit: Option<u32>,
    #[command(flatten)]
    pub vault: VaultArgs,
    /// Print the result as JSON (with the recovery key when one was made)
    #[arg(long)]
    pub json: bool,
}

/// `bkv backup restore`
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("protection").required(true).args(["password_stdin", "recovery_key_stdin"]))]
pub struct RestoreArgs {
    /// The folder that stands for the cloud drive, holding backup.bkvb
    #[arg(long, value_name = "DIR")]
    pub drive: PathBuf,
    /// Where to restore the backup: a new file (written under a temporary name and renamed
    /// when the whole backup authenticated); `-` for stdout
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
    /// Recover the backup key from the vault with the password read from stdin (one line);
    /// spends one guess
    #[arg(long, requires = "account")]
    pub password_stdin: bool,
    /// Derive the backup key from the 64-digit recovery key read from stdin (spaces, dashes
    /// and line breaks between digits are ignored)
    #[arg(long)]
    pub recovery_key_stdin: bool,
    #[command(flatten)]
    pub vault: VaultArgs,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

impl BackupCommand {
    /// Whether the command prints JSON.
    pub fn json(&self) -> bool {
        match self {
            Self::Create(a) => a.json,
            Self::Restore(a) => a.json,
        }
    }
}

/// Runs `bkv backup ...`.
pub async fn run(command: BackupCommand) -> Result<(), Failure> {
    match command {
        BackupCommand::Create(a) => create(a).await,
        BackupCommand::Restore(a) => restore(a).await,
    }
}

impl VaultArgs {
    /// A vault client for the account, from the connection settings.
    async fn client(&self) -> Result<(VaultClient, &AccountId), Failure> {
        let account = self
            .account
            .as_ref()
            .ok_or_else(|| Failure::usage("--password-stdin needs --account"))?;
        let conn = self.conn.as_ref().ok_or_else(|| {
            Failure::usage("--password-stdin needs the vault: set --endpoints or BKV_ENDPOINTS")
        })?;
        let ksf = if self.insecure_light_ksf {
            eprintln!(
                "bkv: WARNING: --insecure-light-ksf: minimal Argon2id, for test accounts only"
            );
            KsfParams::light()
        } else {
            KsfParams::default()
        };
        Ok((
            vault_client(conn, &self.token, account, ksf).await?,
            account,
        ))
    }
}

/// Runs `bkv backup create`.
async fn create(a: CreateArgs) -> Result<(), Failure> {
    let from_stdin = a.input == Path::new("-");
    if from_stdin && a.password_stdin {
        return Err(Failure::usage(
            "--input - and --password-stdin both read stdin: back up a file, or use \
             --recovery-key",
        ));
    }
    // Open everything local before the vault is asked for anything: a key is never
    // registered for a backup that cannot be written.
    let (input, input_len): (Box<dyn Read + Send>, Option<u64>) = if from_stdin {
        (Box::new(std::io::stdin()), None)
    } else {
        let file = File::open(&a.input)
            .map_err(|e| Failure::other(format!("cannot open {}: {e}", a.input.display())))?;
        let len = file.metadata().ok().map(|m| m.len());
        (Box::new(file), len)
    };
    // The password first (stdin), then the vault connection, so that a create that
    // cannot reach the vault fails before it encrypts anything.
    let vault = match a.password_stdin {
        true => {
            let password = read_password()?;
            Some((password, a.vault.client().await?))
        }
        false => None,
    };
    let drive = Drive::create(&a.drive)?;
    let PendingBackup {
        path: partial,
        file,
    } = drive.begin()?;

    // A fresh K: random for the vault, or derived from a new recovery key.
    let (key, code) = match vault {
        Some(_) => (BackupKey::generate(), None),
        None => {
            let code = RecoveryCode::generate();
            (code.backup_key(), Some(code))
        }
    };
    let bar = progress_bar(input_len, "encrypting");
    let written = (|| {
        let mut enc = Encryptor::new(&key, file)?;
        let n = std::io::copy(&mut bar.wrap_read(input), &mut enc)?;
        let file = enc.finish()?;
        Ok::<_, std::io::Error>((n, file))
    })();
    bar.finish_and_clear();
    let (bytes, file) = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(stream_failure("cannot write the backup", e));
        }
    };

    // Only now is K registered: it replaces the account's previous key, and with it the
    // previous backup, so that happens once the new backup is written. A registration that
    // fails leaves the previous backup and key as they were.
    let protection = match vault {
        Some((password, (vault, account))) => {
            match vault
                .register_key(account, password, a.guess_limit, &key)
                .await
            {
                Ok(version) => Protection::Password {
                    account: account.as_str().to_string(),
                    version: version.0,
                },
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    return Err(e.into());
                }
            }
        }
        None => Protection::RecoveryKey,
    };
    let manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        protection: protection.clone(),
        bytes,
        created_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    drive.commit(
        PendingBackup {
            path: partial,
            file,
        },
        &manifest,
    )?;

    let path = drive.backup_path();
    let mut object = json!({
        "drive": a.drive.display().to_string(),
        "backup": path.display().to_string(),
        "bytes": bytes,
    });
    match (&protection, code) {
        (Protection::Password { version, .. }, _) => {
            object["protection"] = json!("password");
            object["version"] = json!(version);
            if a.json {
                println!("{object}");
            } else {
                eprintln!(
                    "backed up {bytes} bytes to {}; the key is in the vault (version {version})",
                    path.display()
                );
            }
        }
        (Protection::RecoveryKey, Some(code)) => {
            let grouped = code.grouped();
            if a.json {
                object["protection"] = json!("recovery-key");
                object["recovery_key"] = json!(grouped.as_str());
                println!("{object}");
            } else {
                eprintln!(
                    "backed up {bytes} bytes to {}. Your recovery key is below: write it \
                     down; without it the backup cannot be restored.",
                    path.display()
                );
                println!("{}", grouped.as_str());
            }
        }
        (Protection::RecoveryKey, None) => {
            // A recovery-key protection is only ever made with its code, above.
            return Err(Failure::other(
                "internal error: the recovery key is missing",
            ));
        }
    }
    Ok(())
}

/// Runs `bkv backup restore`.
async fn restore(a: RestoreArgs) -> Result<(), Failure> {
    let drive = Drive::open(&a.drive)?;
    let manifest = drive.manifest()?;
    // Ask for the secret the backup was made with before any guess is spent.
    match (&manifest, a.password_stdin) {
        (
            Some(Manifest {
                protection: Protection::RecoveryKey,
                ..
            }),
            true,
        ) => {
            return Err(Failure::usage(
                "this backup is protected by a recovery key, not a password: use \
                 --recovery-key-stdin",
            ));
        }
        (
            Some(Manifest {
                protection: Protection::Password { account, .. },
                ..
            }),
            false,
        ) => {
            return Err(Failure::usage(format!(
                "this backup is protected by the password of account {account:?} in the \
                 vault, not a recovery key: use --password-stdin --account {account}"
            )));
        }
        _ => {}
    }
    let backup_file = File::open(drive.backup_path()).map_err(|e| {
        Failure::other(format!(
            "cannot open {}: {e}",
            drive.backup_path().display()
        ))
    })?;
    let backup_len = backup_file.metadata().ok().map(|m| m.len());
    let output = Output::open(&a.output)?;

    let key_result = if a.password_stdin {
        restore_key_from_vault(&a, manifest.as_ref()).await
    } else {
        read_recovery_key()
    };
    let (key, version) = match key_result {
        Ok(k) => k,
        Err(e) => {
            output.abandon();
            return Err(e);
        }
    };

    let bar = progress_bar(backup_len, "restoring");
    let result = decrypt_into(&key, bar.wrap_read(BufReader::new(backup_file)), output);
    bar.finish_and_clear();
    let (bytes, written) = result?;
    let target = written.map_or_else(|| "stdout".to_string(), |p| p.display().to_string());
    if a.json {
        let mut object = json!({
            "drive": a.drive.display().to_string(),
            "output": target,
            "bytes": bytes,
        });
        if let Some(v) = version {
            object["version"] = json!(v);
        }
        println!("{object}");
    } else {
        eprintln!("restored {bytes} bytes to {target}");
    }
    Ok(())
}

/// Recovers K from the vault with the password on stdin; checks the record version against
/// the manifest's.
async fn restore_key_from_vault(
    a: &RestoreArgs,
    manifest: Option<&Manifest>,
) -> Result<(BackupKey, Option<u64>), Failure> {
    let password = read_password()?;
    let (vault, account) = a.vault.client().await?;
    if let Some(Manifest {
        protection: Protection::Password {
            account: made_for, ..
        },
        ..
    }) = manifest
        && made_for != account.as_str()
    {
        return Err(Failure::usage(format!(
            "this backup's key is in the vault under account {made_for:?}, not {:?}",
            account.as_str()
        )));
    }
    let recovered = vault
        .restore_key_with_password(account, password)
        .await
        .map_err(backup_failure)?;
    if let Some(Manifest {
        protection: Protection::Password { version, .. },
        ..
    }) = manifest
        && *version != recovered.version.0
    {
        return Err(Failure::other(format!(
            "the password is right, but the vault now holds version {} of the account's key \
             and this backup was made with version {version}: the key was replaced since \
             (a later backup create or register), and this backup cannot be restored",
            recovered.version
        )));
    }
    eprintln!(
        "recovered the backup key of {} (version {})",
        account.as_str(),
        recovered.version
    );
    Ok((recovered.key, Some(recovered.version.0)))
}

/// Reads the recovery key from stdin and derives K from it.
fn read_recovery_key() -> Result<(BackupKey, Option<u64>), Failure> {
    let mut text = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_to_string(&mut text)
        .map_err(|e| Failure::other(format!("cannot read the recovery key from stdin: {e}")))?;
    let code = RecoveryCode::parse(&text).map_err(|e| Failure::usage(e.to_string()))?;
    Ok((code.backup_key(), None))
}

/// Where a restore goes: a new file under a temporary name, or stdout.
#[derive(Debug)]
enum Output {
    Stdout,
    File {
        path: PathBuf,
        partial: PathBuf,
        file: File,
    },
}

impl Output {
    fn open(arg: &Path) -> Result<Self, Failure> {
        if arg == Path::new("-") {
            return Ok(Self::Stdout);
        }
        if arg.exists() {
            return Err(Failure::other(format!(
                "{} exists; refusing to overwrite it",
                arg.display()
            )));
        }
        let mut partial = arg.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&partial)
            .map_err(|e| Failure::other(format!("cannot create {}: {e}", partial.display())))?;
        Ok(Self::File {
            path: arg.to_path_buf(),
            partial,
            file,
        })
    }

    fn abandon(self) {
        if let Self::File { partial, file, .. } = self {
            drop(file);
            let _ = std::fs::remove_file(partial);
        }
    }
}

/// Decrypts the backup into the output; a file output is renamed into place only when the
/// whole backup authenticated, and removed otherwise.
fn decrypt_into(
    key: &BackupKey,
    backup: impl Read,
    output: Output,
) -> Result<(u64, Option<PathBuf>), Failure> {
    match output {
        Output::Stdout => {
            let out = std::io::stdout().lock();
            let bytes = backup::decrypt(key, backup, std::io::BufWriter::new(out))
                .map_err(|e| restore_failure(e, " (what reached stdout is incomplete)"))?;
            Ok((bytes, None))
        }
        Output::File {
            path,
            partial,
            file,
        } => {
            let mut writer = std::io::BufWriter::with_capacity(256 * 1024, file);
            let result = backup::decrypt(key, backup, &mut writer).and_then(|n| {
                writer.flush()?;
                Ok(n)
            });
            let synced = result.and_then(|n| {
                let file = writer
                    .into_inner()
                    .map_err(|e| StreamError::from(e.into_error()))?;
                file.sync_all()?;
                Ok(n)
            });
            match synced {
                Ok(bytes) => {
                    std::fs::rename(&partial, &path).map_err(|e| {
                        Failure::other(format!("cannot rename to {}: {e}", path.display()))
                    })?;
                    Ok((bytes, Some(path)))
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    Err(restore_failure(e, " (nothing was written)"))
                }
            }
        }
    }
}

/// A restore that failed on the backup itself.
fn restore_failure(e: StreamError, what_happened: &str) -> Failure {
    let hint = match e {
        StreamError::WrongKey => "; if it is a recovery key, check that it is this backup's",
        _ => "",
    };
    Failure::other(format!(
        "cannot restore the backup: {e}{what_happened}{hint}"
    ))
}

fn stream_failure(what: &str, e: std::io::Error) -> Failure {
    Failure::other(format!("{what}: {}", StreamError::from_io(e)))
}

/// The journey's errors as CLI failures: the vault's with their exit codes.
fn backup_failure(e: backup::BackupError) -> Failure {
    match e {
        backup::BackupError::Vault(v) => v.into(),
        other => Failure::other(other.to_string()),
    }
}

/// A byte progress bar on stderr when it is a terminal, hidden otherwise.
fn progress_bar(len: Option<u64>, what: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match len {
        Some(len) => (
            ProgressBar::new(len),
            "{msg:>10} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{msg:>10} {spinner} {bytes} {bytes_per_sec}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what);
    bar
}
