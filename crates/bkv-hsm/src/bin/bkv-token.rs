//! `bkv-token`: provisions and inspects SoftHSM2 tokens for bkv nodes without ever taking a
//! PIN on the command line (where `ps` would show it): PINs come from files.
//!
//! ```text
//! SOFTHSM2_CONF=DIR/softhsm2.conf bkv-token init --label L --so-pin-file F --user-pin-file F
//! SOFTHSM2_CONF=DIR/softhsm2.conf bkv-token show [--label L --user-pin-file F]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use bkv_hsm::provision::{self, Provisioned};
use bkv_hsm::{DEFAULT_MODULE, HsmConfig, Partition, Pin};
use clap::{Parser, Subcommand};

/// Provision and inspect the SoftHSM2 token of a bkv node. PINs are read from files only.
#[derive(Debug, Parser)]
#[command(name = "bkv-token", version)]
struct Cli {
    /// PKCS#11 module to load.
    #[arg(
        long,
        env = "BKV_PKCS11_MODULE",
        hide_env_values = true,
        default_value = DEFAULT_MODULE,
        global = true
    )]
    module: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Initialise a token with this label on the free slot and set its user PIN; does
    /// nothing if a token with the label exists.
    Init {
        /// Token label (1 to 32 bytes).
        #[arg(long)]
        label: String,
        /// File holding the security officer PIN.
        #[arg(long)]
        so_pin_file: PathBuf,
        /// File holding the user PIN.
        #[arg(long)]
        user_pin_file: PathBuf,
    },
    /// List token labels; with a label and the user PIN, also show the cluster key's id and
    /// check value and the enrollment key's fingerprint (never creating either).
    Show {
        /// Token to look into.
        #[arg(long, requires = "user_pin_file")]
        label: Option<String>,
        /// File holding the user PIN.
        #[arg(long, requires = "label")]
        user_pin_file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bkv-token: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init {
            label,
            so_pin_file,
            user_pin_file,
        } => {
            let so_pin = Pin::from_file(&so_pin_file)?;
            let user_pin = Pin::from_file(&user_pin_file)?;
            match provision::init_token(&cli.module, &label, &so_pin, &user_pin)? {
                Provisioned::Created => println!("initialised token {label:?}"),
                Provisioned::Existed => println!("token {label:?} exists; left as it is"),
            }
            Ok(())
        }
        Command::Show {
            label,
            user_pin_file,
        } => {
            let ctx = bkv_hsm::pkcs11_context(&cli.module)?;
            for l in bkv_hsm::token_labels(&ctx)? {
                println!("token {l:?}");
            }
            let (Some(label), Some(pin_file)) = (label, user_pin_file) else {
                return Ok(());
            };
            let mut cfg = HsmConfig::new(label.clone(), Pin::from_file(&pin_file)?);
            cfg.module = cli.module;
            cfg.workers = 1;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("tokio runtime")?;
            rt.block_on(async {
                let p = Partition::open(cfg).await?;
                println!("label: {label}");
                match p.cluster_key().await? {
                    Some(info) => println!(
                        "cluster key: id {} kcv {}",
                        hex::encode(info.key_id),
                        hex::encode(info.key_check_value)
                    ),
                    None => println!("cluster key: none"),
                }
                match p.find_enrollment_key().await? {
                    Some(key) => println!("enrollment key: sha256 {}", key.fingerprint),
                    None => println!("enrollment key: none"),
                }
                anyhow::Ok(())
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_consistent_and_takes_no_pin_value() {
        Cli::command().debug_assert();
        // Every PIN argument is a file path: no `--pin`, `--so-pin`, `--user-pin`.
        for sub in Cli::command().get_subcommands() {
            for arg in sub.get_arguments() {
                let long = arg.get_long().unwrap_or_default();
                assert!(
                    !long.contains("pin") || long.ends_with("-pin-file"),
                    "{long}"
                );
            }
        }
    }

    /// Compares `text` with the snapshot file `name`; `BKV_UPDATE_SNAPSHOTS=1` rewrites it.
    fn snapshot(name: &str, text: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/snapshots")
            .join(name);
        if std::env::var_os("BKV_UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, text).expect("write snapshot");
            return;
        }
        let want = std::fs::read_to_string(&path).expect("snapshot file (BKV_UPDATE_SNAPSHOTS=1)");
        assert_eq!(
            text, want,
            "help of {name} changed; BKV_UPDATE_SNAPSHOTS=1 to accept"
        );
    }

    #[test]
    fn help_snapshots() {
        let mut cmd = Cli::command();
        snapshot("bkv-token.help.txt", &cmd.render_long_help().to_string());
        for sub in ["init", "show"] {
            let help = cmd
                .find_subcommand_mut(sub)
                .expect("subcommand")
                .render_long_help()
                .to_string();
            snapshot(&format!("bkv-token-{sub}.help.txt"), &help);
        }
    }
}
