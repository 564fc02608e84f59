//! `bkv`: the command-line tool of the Backup Key Vault: register and recover backup keys,
//! issue dev account tokens, operate a cluster, and make a dev PKI.

mod account;
mod admin;
mod backup;
mod bench;
mod conn;
mod dev;
mod drive;
mod exit;
mod output;
mod parse;
mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::exit::Failure;

const LONG_ABOUT: &str = "\
bkv keeps backup keys behind a password: a client registers a random 256-bit key under a
password with OPAQUE (the vault never sees the password or the key) and recovers it later.
Every attempt is counted; after the record's guess limit of wrong passwords it is destroyed.

Client commands talk to the nodes' client ports (BKV_ENDPOINTS, BKV_CA_CERT) with an
account token (BKV_TOKEN, or issued on the fly from BKV_ISSUER_KEY in dev set-ups). Admin
commands talk to the admin ports under mutual TLS (BKV_ADMIN_ENDPOINTS, BKV_ADMIN_CERT,
BKV_ADMIN_KEY). Passwords are read from standard input, never from a flag.

`bkv backup create` encrypts a file into a folder that stands for the cloud drive with a new
backup key, protected by a password in the vault or by a 64-digit recovery key that is
printed once; `bkv backup restore` gets it back with either (docs/BACKUP_FORMAT.md).

Exit codes:
  0  success
  1  any other error
  2  usage error (bad flags or values)
  3  wrong password (the message says how many guesses remain)
  4  record destroyed after too many wrong guesses
  5  no record for the account
  6  vault unavailable (no endpoint answered before the deadline)
  7  account token refused, or permission denied
  8  rate limited (the message says when to retry)
`bkv admin health` exits 0 when the node is SERVING and 1 otherwise.";

/// The `bkv` command line.
#[derive(Debug, Parser)]
#[command(
    name = "bkv",
    version,
    about = "Backup Key Vault: register and recover backup keys, back up files with them, operate a bkv cluster",
    long_about = LONG_ABOUT,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register a new backup key under a password (read from stdin)
    Register(account::RegisterArgs),
    /// Recover the backup key with the password (read from stdin); spends one guess
    Recover(account::RecoverArgs),
    /// Show what the vault holds for an account
    Status(account::StatusArgs),
    /// Delete an account's record (every version)
    Delete(account::DeleteArgs),
    /// End-to-end encrypted backups in a folder standing for the cloud drive, with a key
    /// protected by a password in the vault or by a 64-digit recovery key
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// Account tokens
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Operate a cluster (mutual TLS with an admin certificate)
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Development helpers (PKI)
    #[command(subcommand)]
    Dev(dev::DevCommand),
    /// Load generator: concurrent registrations, recoveries and wrong guesses against a
    /// cluster, with throughput and latency percentiles
    Bench(bench::BenchArgs),
}

impl Command {
    fn json(&self) -> bool {
        match self {
            Self::Register(a) => a.json,
            Self::Recover(a) => a.json,
            Self::Status(a) => a.json,
            Self::Delete(a) => a.json,
            Self::Bench(a) => a.json,
            Self::Backup(c) => c.json(),
            _ => false,
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Register(a) => account::register(a).await,
        Command::Recover(a) => account::recover(a).await,
        Command::Status(a) => account::status(a).await,
        Command::Delete(a) => account::delete(a).await,
        Command::Backup(c) => backup::run(c).await,
        Command::Token(c) => token::run(c),
        Command::Admin(c) => admin::run(c).await,
        Command::Dev(c) => dev::run(c),
        Command::Bench(a) => bench::run(a).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.command.json();
    // The load generator gets a worker per CPU (or --threads); other commands need two.
    let threads = match &cli.command {
        Command::Bench(a) => a.threads(),
        _ => 2,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bkv: cannot start the runtime: {e}");
            return ExitCode::from(exit::OTHER);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(json),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_consistent_and_takes_no_password_value() {
        Cli::command().debug_assert();
        fn walk(cmd: &clap::Command) {
            for arg in cmd.get_arguments() {
                let long = arg.get_long().unwrap_or_default();
                assert!(
                    !long.contains("password") || long == "password-stdin",
                    "{long}"
                );
            }
            cmd.get_subcommands().for_each(walk);
        }
        walk(&Cli::command());
    }

    /// Compares `text` with the snapshot file `name`; `BKV_UPDATE_SNAPSHOTS=1` rewrites it.
    fn snapshot(name: &str, text: &str) -> Result<(), String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/snapshots")
            .join(name);
        if std::env::var_os("BKV_UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, text).expect("write snapshot");
            return Ok(());
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if text == want {
            Ok(())
        } else {
            Err(name.to_string())
        }
    }

    /// Every command's and subcommand's `--help`, one file each.
    #[test]
    fn help_snapshots() {
        fn walk(
            cmd: &mut clap::Command,
            path: &str,
            names: &mut Vec<String>,
            bad: &mut Vec<String>,
        ) {
            // The values of BKV_* variables in the environment must not leak into the
            // snapshots.
            *cmd = std::mem::take(cmd).mut_args(|a| a.hide_env_values(true));
            let text = cmd.render_long_help().to_string();
            let name = format!("{path}.help.txt");
            if let Err(n) = snapshot(&name, &text) {
                bad.push(n);
            }
            names.push(name);
            let subs: Vec<String> = cmd
                .get_subcommands()
                .map(|s| s.get_name().to_string())
                .filter(|n| n != "help")
                .collect();
            for sub in subs {
                let child = cmd.find_subcommand_mut(&sub).expect("subcommand");
                walk(child, &format!("{path}-{sub}"), names, bad);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut names = Vec::new();
        let mut bad = Vec::new();
        walk(&mut cmd, "bkv", &mut names, &mut bad);
        assert!(
            bad.is_empty(),
            "help changed for {bad:?}; run with BKV_UPDATE_SNAPSHOTS=1 to accept"
        );
        // No stale snapshot of a command that is gone.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .expect("snapshots dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("bkv") && n.ends_with(".help.txt"))
            .collect();
        on_disk.sort();
        names.sort();
        assert_eq!(on_disk, names);
        assert!(names.len() >= 20, "{names:?}");
    }
}
