//! Client commands: `register`, `recover`, `status`, `delete`.

use bkv_client::{BackupKey, KsfParams, VaultClient};
use bkv_core::ids::AccountId;
use clap::Args;
use serde_json::json;

use crate::conn::{ClientConn, TokenArgs, vault_client};
use crate::exit::Failure;
use crate::output::{KeyOut, read_password};
use crate::parse::parse_account;

/// The account and how to reach the vault for it.
#[derive(Debug, Args)]
pub struct AccountConn {
    /// The account id (1 to 128 characters of A-Z a-z 0-9 . _ : @ + = -)
    #[arg(long, value_parser = parse_account, value_name = "ACCOUNT")]
    pub account: AccountId,
    #[command(flatten)]
    pub conn: ClientConn,
    #[command(flatten)]
    pub token: TokenArgs,
}

/// Password and key-stretching options of `register` and `recover`.
#[derive(Debug, Args)]
pub struct PasswordArgs {
    /// Read the password from stdin (one line; the line ending is removed). Required: the
    /// password is never taken from a flag
    #[arg(long, required = true)]
    pub password_stdin: bool,
    /// INSECURE, for test and benchmark accounts only: the smallest Argon2id (8 KiB, 1 pass)
    /// instead of the default (19 MiB, 2 passes). A password registered with it is cheap to
    /// guess offline, and it must be given again at every recovery
    #[arg(long)]
    pub insecure_light_ksf: bool,
}

impl PasswordArgs {
    fn ksf(&self) -> KsfParams {
        if self.insecure_light_ksf {
            eprintln!(
                "bkv: WARNING: --insecure-light-ksf: minimal Argon2id, for test and benchmark \
                 accounts only"
            );
            KsfParams::light()
        } else {
            KsfParams::default()
        }
    }
}

/// `bkv register`
#[derive(Debug, Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    pub account: AccountConn,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Wrong guesses allowed before the record is destroyed (default: the cluster's)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub guess_limit: Option<u32>,
    /// Write the new backup key (64 hex digits) to this new file, mode 0600; `-` for stdout.
    /// Without it the key is not kept
    #[arg(long, value_name = "FILE")]
    pub key_out: Option<String>,
    /// Print the result as JSON (no key unless --key-out -)
    #[arg(long)]
    pub json: bool,
}

/// `bkv recover`
#[derive(Debug, Args)]
pub struct RecoverArgs {
    #[command(flatten)]
    pub account: AccountConn,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Write the recovered key (64 hex digits) to this new file, mode 0600; `-` for stdout
    #[arg(long, value_name = "FILE")]
    pub key_out: String,
    /// Then register the same key under the same password again, with a fresh OPRF key
    /// split over the cluster's current voters (after a node was replaced, or to make old
    /// shares useless)
    #[arg(long)]
    pub reshare: bool,
    /// Print the result as JSON (no key unless --key-out -)
    #[arg(long)]
    pub json: bool,
}

/// `bkv status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub account: AccountConn,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

/// `bkv delete`
#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub account: AccountConn,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

async fn client(a: &AccountConn, ksf: KsfParams) -> Result<VaultClient, Failure> {
    vault_client(&a.conn, &a.token, &a.account, ksf).await
}

/// Delivers `key` to `out`; with JSON and `-`, the key goes into `object` instead.
fn deliver(
    key: &BackupKey,
    out: KeyOut,
    json: bool,
    object: &mut serde_json::Value,
) -> Result<Option<String>, Failure> {
    if json && matches!(out, KeyOut::Stdout) {
        object["key"] = json!(key.to_hex().as_str());
        return Ok(None);
    }
    Ok(out.write(key)?.map(|p| p.display().to_string()))
}

/// Runs `bkv register`.
pub async fn register(a: RegisterArgs) -> Result<(), Failure> {
    let password = read_password()?;
    let ksf = a.password.ksf();
    let out = a.key_out.as_deref().map(KeyOut::open).transpose()?;
    let result = async {
        let vault = client(&a.account, ksf).await?;
        Ok::<_, Failure>(
            vault
                .register(&a.account.account, password, a.guess_limit)
                .await?,
        )
    }
    .await;
    let registered = match result {
        Ok(r) => r,
        Err(e) => {
            if let Some(out) = out {
                out.abandon();
            }
            return Err(e);
        }
    };
    let account = a.account.account.as_str();
    let mut object = json!({ "account": account, "version": registered.version.0 });
    let key_on_stdout = matches!(out, Some(KeyOut::Stdout));
    let written = match out {
        Some(out) => deliver(&registered.key, out, a.json, &mut object)?,
        None => {
            eprintln!("bkv: warning: no --key-out: the new backup key was not kept");
            None
        }
    };
    if let Some(path) = &written {
        object["key_file"] = json!(path);
    }
    if a.json {
        println!("{object}");
    } else {
        match written {
            Some(path) => eprintln!(
                "registered {account} version {}; backup key written to {path}",
                registered.version
            ),
            None => eprintln!("registered {account} version {}", registered.version),
        }
        // stdout carries the key when asked with `--key-out -`, else the version.
        if !key_on_stdout {
            println!("{}", registered.version);
        }
    }
    Ok(())
}

/// Runs `bkv recover`.
pub async fn recover(a: RecoverArgs) -> Result<(), Failure> {
    let password = read_password()?;
    let ksf = a.password.ksf();
    let out = KeyOut::open(&a.key_out)?;
    let result = async {
        let vault = client(&a.account, ksf).await?;
        let account = &a.account.account;
        Ok::<_, Failure>(if a.reshare {
            let r = vault.recover_and_reshare(account, password).await?;
            (r.recovered, Some(r.reshared))
        } else {
            (vault.recover(account, password).await?, None)
        })
    }
    .await;
    let (recovered, reshared) = match result {
        Ok(r) => r,
        Err(e) => {
            out.abandon();
            return Err(e);
        }
    };
    let account = a.account.account.as_str();
    let mut object = json!({
        "account": account,
        "version": recovered.version.0,
        "guesses_remaining_before": recovered.guesses_remaining_before,
        "guess_limit": recovered.guess_limit,
    });
    let reshare_note = match &reshared {
        None => String::new(),
        Some(Ok(version)) => {
            object["reshared_version"] = json!(version.0);
            format!("; registered again with fresh shares as version {version}")
        }
        Some(Err(e)) => {
            object["reshare_error"] = json!(e.to_string());
            format!(
                "; registering it again failed ({e}): version {} stays active",
                recovered.version
            )
        }
    };
    let written = deliver(&recovered.key, out, a.json, &mut object)?;
    if let Some(path) = &written {
        object["key_file"] = json!(path);
    }
    if a.json {
        println!("{object}");
    } else {
        eprintln!(
            "recovered {account} version {} (this was guess {} of {}; the count is reset){}{}",
            recovered.version,
            recovered
                .guess_limit
                .saturating_sub(recovered.guesses_remaining_before)
                + 1,
            recovered.guess_limit,
            written
                .map(|p| format!("; backup key written to {p}"))
                .unwrap_or_default(),
            reshare_note
        );
    }
    match reshared {
        Some(Err(e)) => Err(e.into()),
        _ => Ok(()),
    }
}

/// Runs `bkv status`.
pub async fn status(a: StatusArgs) -> Result<(), Failure> {
    let vault = client(&a.account, KsfParams::default()).await?;
    let s = vault.status().await?;
    let account = a.account.account.as_str();
    let version = |v: Option<bkv_core::ids::RecordVersion>| v.map(|v| v.0);
    if a.json {
        println!(
            "{}",
            json!({
                "account": account,
                "state": s.state.as_str(),
                "version": version(s.version),
                "guesses_used": s.guesses_used,
                "guess_limit": s.guess_limit,
                "staged_version": version(s.staged_version),
            })
        );
    } else {
        let or_dash = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        println!("account         {account}");
        println!("state           {}", s.state);
        println!("version         {}", or_dash(version(s.version)));
        println!("guesses used    {} of {}", s.guesses_used, s.guess_limit);
        println!("staged version  {}", or_dash(version(s.staged_version)));
    }
    Ok(())
}

/// Runs `bkv delete`.
pub async fn delete(a: DeleteArgs) -> Result<(), Failure> {
    let vault = client(&a.account, KsfParams::default()).await?;
    let existed = vault.delete().await?;
    let account = a.account.account.as_str();
    if a.json {
        println!("{}", json!({ "account": account, "existed": existed }));
    } else if existed {
        println!("deleted {account}");
    } else {
        println!("{account} had nothing to delete");
    }
    Ok(())
}
