//! `bkv token issue`: account tokens signed by the dev issuer key, and the issuing used on
//! the fly by client commands in dev set-ups.

use std::path::PathBuf;

use bkv_core::ids::AccountId;
use bkv_core::token;
use bkv_devkit::issue_token;
use clap::{Args, Subcommand};

use crate::exit::Failure;
use crate::parse::parse_account;

/// Who signs tokens and for which cluster.
#[derive(Debug, Clone, Args)]
pub struct IssuerArgs {
    /// The dev token issuer's private key (PKCS#8 PEM, `issuer.key` of `bkv dev pki init`)
    #[arg(long, env = "BKV_ISSUER_KEY", value_name = "FILE")]
    pub issuer_key: Option<PathBuf>,
    /// The issuer name (`iss`), as the nodes' configuration names it
    #[arg(long, default_value = "bkv-dev", value_name = "NAME")]
    pub issuer: String,
    /// The cluster name (`aud`)
    #[arg(
        long,
        env = "BKV_CLUSTER",
        default_value = "bkv-local",
        value_name = "NAME"
    )]
    pub audience: String,
}

/// `bkv token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print an account token signed by the dev issuer key
    #[command(
        long_about = "Print an account token (an EdDSA JWT: sub = account, aud = cluster name, \
                      exp = now + ttl) signed by the dev issuer key. For development and tests; \
                      production tokens come from the app's own issuer."
    )]
    Issue(IssueArgs),
}

/// `bkv token issue`
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The account the token acts for (`sub`)
    #[arg(long, value_parser = parse_account, value_name = "ACCOUNT")]
    pub account: AccountId,
    /// Lifetime in seconds (nodes refuse more than their max_token_lifetime_secs, 3600 by
    /// default)
    #[arg(long, default_value_t = 3600, value_name = "SECS")]
    pub ttl: u64,
    #[command(flatten)]
    pub issuer: IssuerArgs,
}

/// Runs `bkv token ...`.
pub fn run(command: TokenCommand) -> Result<(), Failure> {
    match command {
        TokenCommand::Issue(a) => {
            if a.ttl == 0 {
                return Err(Failure::usage("--ttl must be at least 1 second"));
            }
            if a.ttl > token::MAX_LIFETIME_SECS {
                eprintln!(
                    "bkv: warning: nodes refuse tokens living longer than their \
                     max_token_lifetime_secs ({} by default)",
                    token::MAX_LIFETIME_SECS
                );
            }
            let Some(path) = &a.issuer.issuer_key else {
                return Err(Failure::usage(
                    "no issuer key: set --issuer-key or BKV_ISSUER_KEY",
                ));
            };
            let key = bkv_devkit::pki::read_issuer_key(path)?;
            let jwt = issue_token(
                &key,
                &a.issuer.issuer,
                &a.issuer.audience,
                &a.account,
                a.ttl,
            )
            .map_err(Failure::other)?;
            println!("{jwt}");
            Ok(())
        }
    }
}
