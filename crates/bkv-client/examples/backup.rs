//! The backup journey of an app, end to end: turn on end-to-end encrypted backup, encrypt a
//! backup into the "cloud drive" (a folder here), lose the phone, and restore everything on a
//! new one: once with the password kept in bkv, once with a 64-digit recovery key.
//!
//! Run it against the local cluster:
//!
//! ```sh
//! cluster/up && . cluster/local/bkv.env
//! cargo run -p bkv-client --example backup -- alice@example.com [FILE]
//! ```
//!
//! It backs up FILE, or 8 MiB of generated data. Without `BKV_ENDPOINTS` only the
//! recovery-key half runs (it needs no vault). Settings: see `common/env_config.rs`.
//!
//! Nothing secret leaves the device in the clear: the vault never sees the password or K
//! (OPAQUE and the threshold OPRF), and the drive holds only ciphertext
//! (docs/BACKUP_FORMAT.md).

#[path = "common/env_config.rs"]
mod env_config;

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write as _};
use std::path::{Path, PathBuf};

use bkv_client::backup::{
    self, BackupKey, Protection, StreamError, enable_backup_with_recovery_code,
    restore_key_with_code,
};
use bkv_client::{SecretString, VaultClient};
use bkv_core::AccountId;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let account = AccountId::parse(&args.next().unwrap_or_else(|| "example-user".into()))?;
    let drive = std::env::temp_dir().join(format!("bkv-example-drive-{}", std::process::id()));
    std::fs::create_dir_all(&drive)?;
    let input = match args.next() {
        Some(path) => PathBuf::from(path),
        None => generated_file(&drive.join("chat-history.db"), 8 << 20)?,
    };
    println!(
        "backing up {} into the drive {}",
        input.display(),
        drive.display()
    );

    if env_config::cluster_configured() {
        with_password(&account, &input, &drive).await?;
    } else {
        println!("BKV_ENDPOINTS is not set: skipping the password half (it needs the vault)");
    }
    with_recovery_key(&input, &drive)?;

    std::fs::remove_dir_all(&drive)?;
    Ok(())
}

/// K behind a password in the vault.
async fn with_password(
    account: &AccountId,
    input: &Path,
    drive: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let password = || SecretString::from("a long passphrase only the user knows");
    let client = VaultClient::connect(env_config::config(account)?).await?;

    // 1. On the old phone: turn backup on. The SDK makes K and registers it in the vault.
    let enabled = client
        .enable_backup_with_password(account, password(), Some(5))
        .await?;
    let Protection::Password { version } = enabled.protection else {
        unreachable!("a password protection")
    };
    println!("password: backup key registered for {account}, version {version}");
    let backup = drive.join("password.bkvb");
    let bytes = backup::encrypt(
        &enabled.key,
        BufReader::new(File::open(input)?),
        BufWriter::new(File::create(&backup)?),
    )?;
    println!(
        "password: encrypted {bytes} bytes into {}",
        backup.display()
    );
    drop(enabled); // the old phone is lost, and K with it

    // 2. On the new phone: a wrong guess is counted...
    let wrong = client
        .restore_key_with_password(account, SecretString::from("not the passphrase"))
        .await
        .expect_err("a wrong passphrase is refused");
    println!(
        "password: wrong passphrase refused, {} guesses left",
        wrong.guesses_remaining().unwrap_or(0)
    );
    // ...and the right one brings K back, and with it the backup.
    let recovered = client
        .restore_key_with_password(account, password())
        .await?;
    let restored = drive.join("password-restored.db");
    restore(&recovered.key, &backup, &restored)?;
    same_contents(input, &restored)?;
    println!("password: restored and checked {}", restored.display());
    Ok(())
}

/// K derived from a 64-digit recovery key the person writes down; no vault involved.
fn with_recovery_key(input: &Path, drive: &Path) -> Result<(), Box<dyn std::error::Error>> {
    // 1. On the old phone: turn backup on with a recovery key, and show it once.
    let enabled = enable_backup_with_recovery_code();
    let Protection::RecoveryCode(code) = &enabled.protection else {
        unreachable!("a recovery code protection")
    };
    let written_down = code.grouped().to_string();
    println!("recovery key (write it down): {written_down}");
    let backup = drive.join("recovery-key.bkvb");
    backup::encrypt(
        &enabled.key,
        BufReader::new(File::open(input)?),
        BufWriter::new(File::create(&backup)?),
    )?;
    drop(enabled);

    // 2. On the new phone: a typo is caught by the check digits before anything is read...
    let mut typo = written_down.clone().into_bytes();
    typo[0] = if typo[0] == b'9' { b'0' } else { typo[0] + 1 };
    let e = restore_key_with_code(std::str::from_utf8(&typo)?).expect_err("a typo is caught");
    println!("recovery key: typo refused: {e}");
    // ...another backup's key is refused by the header...
    let other = enable_backup_with_recovery_code().key;
    match backup::decrypt(&other, File::open(&backup)?, std::io::sink()) {
        Err(StreamError::WrongKey) => println!("recovery key: another backup's key refused"),
        other => return Err(format!("another key must be refused, got {other:?}").into()),
    }
    // ...and the key as written down restores the backup.
    let key = restore_key_with_code(&written_down)?;
    let restored = drive.join("recovery-key-restored.db");
    restore(&key, &backup, &restored)?;
    same_contents(input, &restored)?;
    println!("recovery key: restored and checked {}", restored.display());
    Ok(())
}

/// Decrypts `backup` into a new file, kept only if the whole backup authenticated.
fn restore(key: &BackupKey, backup: &Path, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut writer = BufWriter::new(File::create(out)?);
    if let Err(e) = backup::decrypt(key, BufReader::new(File::open(backup)?), &mut writer) {
        drop(writer);
        std::fs::remove_file(out)?;
        return Err(e.into());
    }
    writer.flush()?;
    Ok(())
}

/// Writes `len` bytes of made-up data (a stand-in for the app's database).
fn generated_file(path: &Path, len: usize) -> std::io::Result<PathBuf> {
    let mut w = BufWriter::new(File::create(path)?);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..len / 8 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        w.write_all(&x.to_le_bytes())?;
    }
    w.flush()?;
    Ok(path.to_path_buf())
}

/// Compares two files in 64 KiB steps.
fn same_contents(a: &Path, b: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let (mut a, mut b) = (
        BufReader::new(File::open(a)?),
        BufReader::new(File::open(b)?),
    );
    let (mut x, mut y) = (vec![0u8; 65536], vec![0u8; 65536]);
    loop {
        let n = read_full(&mut a, &mut x)?;
        let m = read_full(&mut b, &mut y)?;
        if x[..n] != y[..m] {
            return Err("the restored file differs".into());
        }
        if n == 0 {
            return Ok(());
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
