//! The development PKI of a bkv cluster, in one directory: a cluster CA, node and admin
//! certificates carrying their role as a URI SAN, and an Ed25519 account-token issuer.
//!
//! Every function here is idempotent: it creates what is missing and never overwrites a
//! file. A pair (certificate and key) that is half there is an error, not something to
//! guess at. Private keys are written with mode 0600.
//!
//! | file | what |
//! | --- | --- |
//! | `ca.pem`, `ca.key` | cluster CA (ECDSA P-256), 10 years |
//! | `admin.pem`, `admin.key` | operator certificate, URI SAN `bkv://admin/admin`, EKU clientAuth |
//! | `node<N>.pem`, `node<N>.key` | node certificate, URI SAN `bkv://node/<N>` plus DNS/IP SANs, EKU serverAuth + clientAuth |
//! | `issuer.key`, `issuer.pub.pem` | dev account-token issuer (Ed25519, PKCS#8 PEM and SPKI PEM) |
//! | `identity.key`, `identity.pub.pem` | cluster identity key: signs share maps; clients pin its public half (Ed25519, PKCS#8 PEM and SPKI PEM) |
//!
//! ```no_run
//! # fn main() -> Result<(), bkv_devkit::pki::PkiError> {
//! let dir = std::path::Path::new("/tmp/bkv-pki");
//! bkv_devkit::pki::init(dir, "bkv-local")?;
//! bkv_devkit::pki::node(dir, 1, &["127.0.0.1".into(), "localhost".into()])?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use bkv_core::identity::Role;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::RngCore as _;
use rand::rngs::OsRng;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// CA certificate file name.
pub const CA_CERT: &str = "ca.pem";
/// CA private key file name.
pub const CA_KEY: &str = "ca.key";
/// Admin certificate file name.
pub const ADMIN_CERT: &str = "admin.pem";
/// Admin private key file name.
pub const ADMIN_KEY: &str = "admin.key";
/// Token issuer private key (PKCS#8 PEM).
pub const ISSUER_KEY: &str = "issuer.key";
/// Token issuer public key (SPKI PEM), what nodes trust.
pub const ISSUER_PUB: &str = "issuer.pub.pem";
/// Cluster identity private key (PKCS#8 PEM): signs share maps; the operator keeps it, never
/// a node.
pub const IDENTITY_KEY: &str = "identity.key";
/// Cluster identity public key (SPKI PEM), what clients pin.
pub const IDENTITY_PUB: &str = "identity.pub.pem";
/// The admin name of the certificate made by [`init`].
pub const ADMIN_NAME: &str = "admin";

const CA_DAYS: i64 = 3650;
const LEAF_DAYS: i64 = 730;

/// Why the PKI could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// One file of a pair exists without the other.
    #[error("{present} exists but {missing} does not; remove {present} or restore {missing}")]
    Incomplete {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
    /// A file does not hold what it should.
    #[error("{path} is not a valid {what}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        what: &'static str,
    },
    /// A parameter is not acceptable (a SAN, a node id, a name).
    #[error("invalid {what}: {reason}")]
    BadInput {
        /// The parameter.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Generate(String),
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        Self::Generate(e.to_string())
    }
}

/// Whether a file was made now or was already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// Made by this call.
    Created,
    /// Already there; left untouched.
    Kept,
}

impl fmt::Display for FileState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::Kept => "exists, kept",
        })
    }
}

/// What a PKI call did, file by file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PkiReport {
    /// Each file and whether it was made now.
    pub files: Vec<(PathBuf, FileState)>,
}

impl PkiReport {
    fn add(&mut self, path: PathBuf, state: FileState) {
        self.files.push((path, state));
    }

    fn extend(&mut self, other: PkiReport) {
        self.files.extend(other.files);
    }

    /// Whether any file was made.
    pub fn created_any(&self) -> bool {
        self.files.iter().any(|(_, s)| *s == FileState::Created)
    }
}

/// Makes what is missing of a cluster's dev PKI in `dir`: the CA, the admin certificate and
/// the token issuer key pair. Creates `dir` if needed. Never overwrites a file.
pub fn init(dir: &Path, cluster: &str) -> Result<PkiReport, PkiError> {
    if cluster.is_empty() || cluster.len() > 64 {
        return Err(PkiError::BadInput {
            what: "cluster name",
            reason: "must be 1 to 64 characters".into(),
        });
    }
    std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut report = PkiReport::default();
    report.extend(ensure_ca(dir, cluster)?);
    report.extend(admin(dir, ADMIN_NAME)?);
    report.extend(ensure_issuer(dir)?);
    report.extend(ensure_identity(dir)?);
    Ok(report)
}

/// File stem of the certificate of admin `name`: `admin` for the default name, else
/// `admin-<name>`.
pub fn admin_stem(name: &str) -> String {
    if name == ADMIN_NAME {
        ADMIN_NAME.to_string()
    } else {
        format!("admin-{name}")
    }
}

/// Makes an admin certificate for `name` (`<stem>.pem`, `<stem>.key`, see [`admin_stem`])
/// signed by the CA in `dir`, unless it exists.
pub fn admin(dir: &Path, name: &str) -> Result<PkiReport, PkiError> {
    let role = Role::Admin(name.to_string());
    if Role::from_uri(&role.uri()).as_ref() != Some(&role) {
        return Err(PkiError::BadInput {
            what: "admin name",
            reason: "1 to 64 characters of [A-Za-z0-9._-]".into(),
        });
    }
    let stem = admin_stem(name);
    let leaf = Leaf {
        common_name: format!("bkv admin {name}"),
        role,
        dns_and_ips: Vec::new(),
        server: false,
    };
    issue_leaf(dir, &stem, &leaf)
}

/// Makes node `id`'s certificate (`node<id>.pem`, `node<id>.key`) signed by the CA in `dir`,
/// with `sans` (DNS names or IP addresses) and the URI SAN `bkv://node/<id>`, unless it
/// exists.
pub fn node(dir: &Path, id: u64, sans: &[String]) -> Result<PkiReport, PkiError> {
    let role = Role::Node(id);
    if Role::from_uri(&role.uri()).is_none() {
        return Err(PkiError::BadInput {
            what: "node id",
            reason: "must be non-zero".into(),
        });
    }
    if sans.is_empty() {
        return Err(PkiError::BadInput {
            what: "SAN",
            reason: "a node certificate needs at least one DNS name or IP address".into(),
        });
    }
    let leaf = Leaf {
        common_name: format!("bkv node {id}"),
        role,
        dns_and_ips: sans.to_vec(),
        server: true,
    };
    issue_leaf(dir, &format!("node{id}"), &leaf)
}

/// Reads the token issuer's private key (PKCS#8 PEM, as in `issuer.key`).
pub fn read_issuer_key(path: &Path) -> Result<SigningKey, PkiError> {
    let text = zeroize::Zeroizing::new(read_text(path)?);
    SigningKey::from_pkcs8_pem(&text).map_err(|_| PkiError::Invalid {
        path: path.to_path_buf(),
        what: "Ed25519 PKCS#8 PEM private key",
    })
}

/// Reads an Ed25519 private key (PKCS#8 PEM): the cluster identity key of `identity.key`.
pub fn read_identity_key(path: &Path) -> Result<SigningKey, PkiError> {
    read_issuer_key(path)
}

/// Reads an Ed25519 public key (SPKI PEM): the cluster identity key of `identity.pub.pem`,
/// as the 32 bytes clients pin.
pub fn read_identity_public(path: &Path) -> Result<[u8; 32], PkiError> {
    read_issuer_public(path).map(|k| k.to_bytes())
}

/// Reads the token issuer's public key (SPKI PEM, as in `issuer.pub.pem`).
pub fn read_issuer_public(path: &Path) -> Result<VerifyingKey, PkiError> {
    let text = read_text(path)?;
    VerifyingKey::from_public_key_pem(&text).map_err(|_| PkiError::Invalid {
        path: path.to_path_buf(),
        what: "Ed25519 SPKI PEM public key",
    })
}

/// Reads a file as text (PEM).
pub fn read_text(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// What a leaf certificate names.
struct Leaf {
    common_name: String,
    role: Role,
    dns_and_ips: Vec<String>,
    server: bool,
}

/// Which of a pair of files exist.
fn pair_state(cert: &Path, key: &Path) -> Result<Option<FileState>, PkiError> {
    match (cert.exists(), key.exists()) {
        (true, true) => Ok(Some(FileState::Kept)),
        (false, false) => Ok(None),
        (true, false) => Err(PkiError::Incomplete {
            present: cert.to_path_buf(),
            missing: key.to_path_buf(),
        }),
        (false, true) => Err(PkiError::Incomplete {
            present: key.to_path_buf(),
            missing: cert.to_path_buf(),
        }),
    }
}

fn ensure_ca(dir: &Path, cluster: &str) -> Result<PkiReport, PkiError> {
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    let mut report = PkiReport::default();
    if let Some(state) = pair_state(&cert_path, &key_path)? {
        report.add(cert_path, state);
        report.add(key_path, state);
        return Ok(report);
    }
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "bkv");
    dn.push(DnType::CommonName, format!("bkv {cluster} dev CA"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, CA_DAYS);
    let cert = params.self_signed(&key)?;
    write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&cert_path, cert.pem().as_bytes(), 0o644)?;
    report.add(cert_path, FileState::Created);
    report.add(key_path, FileState::Created);
    Ok(report)
}

fn ensure_issuer(dir: &Path) -> Result<PkiReport, PkiError> {
    ensure_ed25519_pair(dir, ISSUER_KEY, ISSUER_PUB)
}

fn ensure_identity(dir: &Path) -> Result<PkiReport, PkiError> {
    ensure_ed25519_pair(dir, IDENTITY_KEY, IDENTITY_PUB)
}

/// An Ed25519 private key as RFC 8410 writes it: PKCS#8 version 1 (`OneAsymmetricKey`
/// without the optional public key), 48 bytes of DER in a `PRIVATE KEY` PEM. OpenSSL 3.0 and
/// Node read this form; they refuse the version 2 form with the public key that
/// `SigningKey::to_pkcs8_pem` writes. Readers here take both.
pub fn ed25519_pkcs8_pem(key: &SigningKey) -> Result<String, PkiError> {
    let bytes = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    bytes
        .to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|e| PkiError::Generate(e.to_string()))
}

/// An Ed25519 key pair as `key_name` (PKCS#8 PEM, 0600) and `pub_name` (SPKI PEM): made if
/// both are missing, checked to match if both are there.
fn ensure_ed25519_pair(dir: &Path, key_name: &str, pub_name: &str) -> Result<PkiReport, PkiError> {
    let key_path = dir.join(key_name);
    let pub_path = dir.join(pub_name);
    let mut report = PkiReport::default();
    let key = if key_path.exists() {
        report.add(key_path.clone(), FileState::Kept);
        read_issuer_key(&key_path)?
    } else if pub_path.exists() {
        return Err(PkiError::Incomplete {
            present: pub_path,
            missing: key_path,
        });
    } else {
        let key = SigningKey::generate(&mut OsRng);
        let pem = ed25519_pkcs8_pem(&key)?;
        write_new(&key_path, pem.as_bytes(), 0o600)?;
        report.add(key_path.clone(), FileState::Created);
        key
    };
    if pub_path.exists() {
        // A public key that does not match the private key would make every signature fail
        // where it is checked: say so now.
        if read_issuer_public(&pub_path)? != key.verifying_key() {
            return Err(PkiError::Invalid {
                path: pub_path,
                what: "public key of its private key",
            });
        }
        report.add(pub_path, FileState::Kept);
    } else {
        let pem = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| PkiError::Generate(e.to_string()))?;
        write_new(&pub_path, pem.as_bytes(), 0o644)?;
        report.add(pub_path, FileState::Created);
    }
    Ok(report)
}

fn issue_leaf(dir: &Path, stem: &str, leaf: &Leaf) -> Result<PkiReport, PkiError> {
    let cert_path = dir.join(format!("{stem}.pem"));
    let key_path = dir.join(format!("{stem}.key"));
    let mut report = PkiReport::default();
    if let Some(state) = pair_state(&cert_path, &key_path)? {
        report.add(cert_path, state);
        report.add(key_path, state);
        return Ok(report);
    }
    let issuer = load_ca(dir)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "bkv");
    dn.push(DnType::CommonName, leaf.common_name.clone());
    params.distinguished_name = dn;
    params.subject_alt_names = sans(&leaf.dns_and_ips, &leaf.role)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = if leaf.server {
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ]
    } else {
        vec![ExtendedKeyUsagePurpose::ClientAuth]
    };
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, LEAF_DAYS);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.signed_by(&key, &issuer)?;
    write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&cert_path, cert.pem().as_bytes(), 0o644)?;
    report.add(cert_path, FileState::Created);
    report.add(key_path, FileState::Created);
    Ok(report)
}

/// The CA of `dir` as an issuer of new certificates.
fn load_ca(dir: &Path) -> Result<Issuer<'static, KeyPair>, PkiError> {
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    if pair_state(&cert_path, &key_path)?.is_none() {
        return Err(PkiError::Io {
            path: cert_path,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no CA here; run `bkv dev pki init` first",
            ),
        });
    }
    let key_pem = zeroize::Zeroizing::new(read_text(&key_path)?);
    let key = KeyPair::from_pem(&key_pem).map_err(|_| PkiError::Invalid {
        path: key_path,
        what: "PEM private key",
    })?;
    let cert_pem = read_text(&cert_path)?;
    Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|_| PkiError::Invalid {
        path: cert_path,
        what: "CA certificate",
    })
}

/// The SANs of a leaf: each DNS name or IP address, then the role URI.
fn sans(dns_and_ips: &[String], role: &Role) -> Result<Vec<SanType>, PkiError> {
    let mut out = Vec::with_capacity(dns_and_ips.len() + 1);
    for name in dns_and_ips {
        let name = name.trim();
        if let Ok(ip) = name.parse::<IpAddr>() {
            out.push(SanType::IpAddress(ip));
            continue;
        }
        let valid = !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.*".contains(&b));
        if !valid {
            return Err(PkiError::BadInput {
                what: "SAN",
                reason: format!("{name:?} is neither an IP address nor a DNS name"),
            });
        }
        let dns = name
            .to_string()
            .try_into()
            .map_err(|_| PkiError::BadInput {
                what: "SAN",
                reason: format!("{name:?} is not ASCII"),
            })?;
        out.push(SanType::DnsName(dns));
    }
    let uri = role
        .uri()
        .try_into()
        .map_err(|_| PkiError::Generate("role URI is not ASCII".into()))?;
    out.push(SanType::URI(uri));
    Ok(out)
}

fn set_validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    // An hour back, for clocks that lag a little.
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
    let mut serial = [0u8; 16];
    OsRng.fill_bytes(&mut serial);
    // A positive serial number, as RFC 5280 asks.
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
}

/// Writes a new file with `mode`; fails if it exists.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests;
