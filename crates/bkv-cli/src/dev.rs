//! `bkv dev pki ...`: the development PKI of a cluster (see `bkv_devkit::pki`).

use std::path::PathBuf;

use bkv_devkit::pki::{self, PkiReport};
use clap::{Args, Subcommand};

use crate::exit::Failure;

/// `bkv dev ...`
#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// A development PKI: cluster CA, node and admin certificates, token issuer key
    #[command(subcommand)]
    Pki(PkiCommand),
}

/// `bkv dev pki ...`
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Make the cluster CA, the admin certificate and the token issuer key (idempotent)
    #[command(
        long_about = "Make what is missing in DIR, never overwriting a file:\n\
        \n  ca.pem, ca.key            cluster CA (ECDSA P-256, 10 years)\
        \n  admin.pem, admin.key      admin client certificate, URI SAN bkv://admin/admin, EKU clientAuth\
        \n  issuer.key                dev account-token issuer, Ed25519 PKCS#8 PEM\
        \n  issuer.pub.pem            its public key (SPKI PEM), what nodes trust\
        \n\nPrivate keys are written with mode 0600. Running it again changes nothing."
    )]
    Init(InitArgs),
    /// Make node N's certificate, signed by the CA in DIR (idempotent)
    #[command(
        long_about = "Make nodeN.pem and nodeN.key in DIR, signed by the CA there: SANs \
        are the given DNS names and IP addresses plus the URI SAN bkv://node/N, EKU serverAuth \
        and clientAuth. An existing pair is kept as it is."
    )]
    Node(NodeArgs),
    /// Make another admin certificate, signed by the CA in DIR (idempotent)
    #[command(
        long_about = "Make admin-NAME.pem and admin-NAME.key in DIR (admin.pem and \
        admin.key for the name \"admin\"), signed by the CA there, with the URI SAN \
        bkv://admin/NAME and EKU clientAuth. An existing pair is kept as it is."
    )]
    Admin(AdminArgs),
}

/// `bkv dev pki init`
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The PKI directory (created if missing)
    #[arg(long, env = "BKV_PKI_DIR", value_name = "DIR")]
    pub dir: PathBuf,
    /// The cluster name, shown in the CA's name
    #[arg(
        long,
        env = "BKV_CLUSTER",
        default_value = "bkv-local",
        value_name = "NAME"
    )]
    pub cluster: String,
}

/// `bkv dev pki node`
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The PKI directory, holding ca.pem and ca.key
    #[arg(long, env = "BKV_PKI_DIR", value_name = "DIR")]
    pub dir: PathBuf,
    /// The node id
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub id: u64,
    /// A DNS name or IP address the node is reached at (repeat for several)
    #[arg(long = "san", required = true, value_name = "NAME_OR_IP")]
    pub sans: Vec<String>,
}

/// `bkv dev pki admin`
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The PKI directory, holding ca.pem and ca.key
    #[arg(long, env = "BKV_PKI_DIR", value_name = "DIR")]
    pub dir: PathBuf,
    /// The operator's name (1 to 64 characters of A-Z a-z 0-9 . _ -)
    #[arg(long, value_name = "NAME")]
    pub name: String,
}

fn print(report: &PkiReport) {
    for (path, state) in &report.files {
        println!("{}: {state}", path.display());
    }
}

/// Runs `bkv dev ...`.
pub fn run(command: DevCommand) -> Result<(), Failure> {
    let DevCommand::Pki(command) = command;
    let report = match command {
        PkiCommand::Init(a) => pki::init(&a.dir, &a.cluster)?,
        PkiCommand::Node(a) => pki::node(&a.dir, a.id, &a.sans)?,
        PkiCommand::Admin(a) => pki::admin(&a.dir, &a.name)?,
    };
    print(&report);
    Ok(())
}
