//! The dev PKI: files and modes, idempotence, chains and SANs, token issuer round trip, and
//! real TLS handshakes with the certificates it makes.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use bkv_core::token::{self, Claims, TrustedIssuers};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;
use crate::testing::{TestPki, serve};

fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                (
                    std::fs::read(e.path()).unwrap(),
                    meta.permissions().mode() & 0o777,
                ),
            )
        })
        .collect()
}

fn der(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes).unwrap();
    pem.contents
}

#[test]
fn init_makes_every_file_once_with_private_keys_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let first = init(&dir, "bkv-local").unwrap();
    assert_eq!(first.files.len(), 8);
    assert!(first.files.iter().all(|(_, s)| *s == FileState::Created));
    let files = snapshot(&dir);
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "admin.key",
            "admin.pem",
            "ca.key",
            "ca.pem",
            "identity.key",
            "identity.pub.pem",
            "issuer.key",
            "issuer.pub.pem"
        ]
    );
    for key in ["admin.key", "ca.key", "identity.key", "issuer.key"] {
        assert_eq!(files[key].1, 0o600, "{key}");
    }
    for public in ["admin.pem", "ca.pem", "identity.pub.pem", "issuer.pub.pem"] {
        assert_eq!(files[public].1, 0o644, "{public}");
    }

    // Again: nothing changes, everything is reported as kept.
    let second = init(&dir, "bkv-local").unwrap();
    assert!(!second.created_any());
    assert_eq!(second.files.len(), 8);
    assert_eq!(snapshot(&dir), files);

    // A node certificate is also made once.
    let sans = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    assert!(node(&dir, 3, &sans).unwrap().created_any());
    let with_node = snapshot(&dir);
    assert!(!node(&dir, 3, &sans).unwrap().created_any());
    assert_eq!(snapshot(&dir), with_node);
    assert_eq!(with_node["node3.key"].1, 0o600);
}

#[test]
fn half_pairs_and_bad_inputs_are_errors_and_nothing_is_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init(dir, "c").unwrap();
    std::fs::remove_file(dir.join("admin.key")).unwrap();
    let before = snapshot(dir);
    assert!(matches!(
        init(dir, "c"),
        Err(PkiError::Incomplete { present, missing })
            if present.ends_with("admin.pem") && missing.ends_with("admin.key")
    ));
    assert_eq!(snapshot(dir), before);

    assert!(matches!(
        node(dir, 0, &["localhost".into()]),
        Err(PkiError::BadInput {
            what: "node id",
            ..
        })
    ));
    assert!(matches!(
        node(dir, 1, &[]),
        Err(PkiError::BadInput { what: "SAN", .. })
    ));
    assert!(matches!(
        node(dir, 1, &["bad name/".into()]),
        Err(PkiError::BadInput { what: "SAN", .. })
    ));
    assert!(matches!(
        admin(dir, "a b"),
        Err(PkiError::BadInput {
            what: "admin name",
            ..
        })
    ));
    assert!(matches!(init(dir, ""), Err(PkiError::BadInput { .. })));

    // No CA: a node certificate cannot be made.
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        node(empty.path(), 1, &["localhost".into()]),
        Err(PkiError::Io { .. })
    ));
    // A public issuer key without its private key is refused.
    let lone = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join(ISSUER_PUB), lone.path().join(ISSUER_PUB)).unwrap();
    assert!(matches!(
        init(lone.path(), "c"),
        Err(PkiError::Incomplete { .. })
    ));
}

#[test]
fn certificates_chain_to_the_ca_and_carry_their_roles_and_sans() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init(dir, "bkv-local").unwrap();
    node(
        dir,
        7,
        &[
            "127.0.0.1".into(),
            "::1".into(),
            "localhost".into(),
            "node7.bkv".into(),
        ],
    )
    .unwrap();

    let ca_der = der(&dir.join(CA_CERT));
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    assert!(ca.is_ca());
    assert!(ca.verify_signature(None).is_ok(), "CA is self-signed");
    assert!(ca.subject().to_string().contains("bkv bkv-local dev CA"));

    let node_der = der(&dir.join("node7.pem"));
    let (_, leaf) = X509Certificate::from_der(&node_der).unwrap();
    assert!(!leaf.is_ca());
    assert!(leaf.verify_signature(Some(ca.public_key())).is_ok());
    assert_eq!(leaf.issuer(), ca.subject());
    let mut ips = Vec::new();
    let mut dns = Vec::new();
    let mut roles = Vec::new();
    let mut server_auth = false;
    let mut client_auth = false;
    for ext in leaf.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        GeneralName::IPAddress(ip) => ips.push(ip.to_vec()),
                        GeneralName::DNSName(d) => dns.push(d.to_string()),
                        GeneralName::URI(u) => roles.push(Role::from_uri(u)),
                        _ => {}
                    }
                }
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                server_auth = eku.server_auth;
                client_auth = eku.client_auth;
            }
            _ => {}
        }
    }
    assert_eq!(roles, [Some(Role::Node(7))]);
    assert_eq!(dns, ["localhost", "node7.bkv"]);
    assert!(ips.contains(&vec![127, 0, 0, 1]));
    assert!(ips.iter().any(|ip| ip.len() == 16));
    assert!(server_auth && client_auth);

    let admin_der = der(&dir.join(ADMIN_CERT));
    let (_, admin_cert) = X509Certificate::from_der(&admin_der).unwrap();
    assert!(admin_cert.verify_signature(Some(ca.public_key())).is_ok());
    let san = admin_cert.subject_alternative_name().unwrap().unwrap();
    let uris: Vec<Option<Role>> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(Role::from_uri(u)),
            _ => None,
        })
        .collect();
    assert_eq!(uris, [Some(Role::Admin("admin".into()))]);
    let eku = admin_cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);

    // A certificate from another CA does not verify under this one.
    let other = tempfile::tempdir().unwrap();
    init(other.path(), "other").unwrap();
    let other_admin = der(&other.path().join(ADMIN_CERT));
    let (_, other_admin) = X509Certificate::from_der(&other_admin).unwrap();
    assert!(other_admin.verify_signature(Some(ca.public_key())).is_err());
}

#[test]
fn tokens_signed_with_issuer_key_verify_with_issuer_pub_pem() {
    let tmp = tempfile::tempdir().unwrap();
    init(tmp.path(), "bkv-local").unwrap();
    let key = read_issuer_key(&tmp.path().join(ISSUER_KEY)).unwrap();
    let public = read_issuer_public(&tmp.path().join(ISSUER_PUB)).unwrap();
    let now = 1_700_000_000;
    let jwt = token::issue(
        &key,
        &Claims {
            iss: "bkv-dev".into(),
            sub: "alice".into(),
            aud: "bkv-local".into(),
            iat: now,
            exp: now + 600,
            nbf: None,
        },
    );
    let mut trusted = TrustedIssuers::new(3600, 60);
    trusted.insert("bkv-dev", public);
    let verified = trusted.verify(&jwt, "bkv-local", now + 1).unwrap();
    assert_eq!(verified.account.as_str(), "alice");
    // Another dir's issuer is another key.
    let other = tempfile::tempdir().unwrap();
    init(other.path(), "bkv-local").unwrap();
    let mut wrong = TrustedIssuers::new(3600, 60);
    wrong.insert(
        "bkv-dev",
        read_issuer_public(&other.path().join(ISSUER_PUB)).unwrap(),
    );
    assert_eq!(
        wrong.verify(&jwt, "bkv-local", now + 1),
        Err(token::TokenError::BadSignature)
    );
}

async fn health(channel: Channel) -> Result<i32, tonic::Status> {
    let request = HealthCheckRequest {
        service: String::new(),
    };
    tokio::time::timeout(
        Duration::from_secs(5),
        HealthClient::new(channel).check(request),
    )
    .await
    .map_err(|_| tonic::Status::deadline_exceeded("test timeout"))?
    .map(|r| r.into_inner().status)
}

async fn channel(url: &str, tls: ClientTlsConfig) -> Result<Channel, tonic::transport::Error> {
    Channel::from_shared(url.to_string())
        .expect("url")
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

#[tokio::test]
async fn mutual_tls_handshake_needs_an_admin_cert_of_this_ca() {
    let pki = TestPki::new();
    let (_reporter, service) = tonic_health::server::health_reporter();
    let server = serve(pki.mutual_server_tls(), |s| s.add_service(service)).await;
    let url = server.url();
    let ca = Certificate::from_pem(pki.ca_pem());
    let admin = Identity::from_pem(pki.read(ADMIN_CERT), pki.read(ADMIN_KEY));

    // Phase 1: the admin certificate gets through, by IP and by DNS name.
    let tls = ClientTlsConfig::new()
        .ca_certificate(ca.clone())
        .identity(admin.clone());
    let ch = channel(&url, tls.clone()).await.expect("admin connects");
    assert_eq!(health(ch).await.ok(), Some(ServingStatus::Serving as i32));
    let by_name = format!("https://localhost:{}", server.addr.port());
    let ch = channel(&by_name, tls).await.expect("localhost SAN");
    assert_eq!(health(ch).await.ok(), Some(ServingStatus::Serving as i32));

    // Phase 2: no client certificate: refused (at connect or at the first call).
    let no_cert = ClientTlsConfig::new().ca_certificate(ca.clone());
    let refused = match channel(&url, no_cert).await {
        Ok(ch) => health(ch).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a client without a certificate got through");

    // Phase 3: an admin certificate from another CA: refused.
    let other = TestPki::new();
    let foreign = Identity::from_pem(other.read(ADMIN_CERT), other.read(ADMIN_KEY));
    let tls = ClientTlsConfig::new().ca_certificate(ca).identity(foreign);
    let refused = match channel(&url, tls).await {
        Ok(ch) => health(ch).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a certificate of another CA got through");

    // Phase 4: a client that trusts another CA does not accept the node.
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(other.ca_pem()))
        .identity(admin);
    let refused = match channel(&url, tls).await {
        Ok(ch) => health(ch).await.is_err(),
        Err(_) => true,
    };
    assert!(
        refused,
        "the node's certificate was accepted under another CA"
    );
    server.stop().await;
}

/// The DER of a `PRIVATE KEY` PEM file.
fn private_key_der(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes).unwrap();
    assert_eq!(pem.label, "PRIVATE KEY");
    pem.contents
}

#[test]
fn ed25519_keys_are_written_as_rfc8410_pkcs8_that_openssl_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init(dir, "bkv-local").unwrap();
    // RFC 8410 section 7: SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 },
    // OCTET STRING { OCTET STRING (32) } }, 48 bytes, no public key and no attributes.
    let prefix: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    for name in [ISSUER_KEY, IDENTITY_KEY] {
        let der = private_key_der(&dir.join(name));
        assert_eq!(der.len(), 48, "{name}");
        assert_eq!(der[..16], prefix, "{name}");
        // And it reads back as the same key, as does the version 2 form older builds wrote.
        let key = read_issuer_key(&dir.join(name)).unwrap();
        assert_eq!(der[16..], key.to_bytes(), "{name}");
    }
    // OpenSSL itself reads them and derives the public keys of the .pub.pem files (the
    // check of issue 24: `openssl pkey -in issuer.key -noout`).
    for (key, public) in [(ISSUER_KEY, ISSUER_PUB), (IDENTITY_KEY, IDENTITY_PUB)] {
        let out = std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(dir.join(key))
            .output()
            .expect("openssl on PATH (.ci/run installs it)");
        assert!(
            out.status.success(),
            "openssl pkey refuses {key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            std::fs::read_to_string(dir.join(public)).unwrap(),
            "{key}"
        );
    }
    let key = read_issuer_key(&dir.join(ISSUER_KEY)).unwrap();
    let v2 = dir.join("v2.key");
    std::fs::write(&v2, key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
    assert_eq!(read_issuer_key(&v2).unwrap().to_bytes(), key.to_bytes());
}
