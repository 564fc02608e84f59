//! What the cluster refuses. Client calls without a valid account token (none, another
//! audience, expired, an unknown issuer, a forged signature, too long a lifetime, garbage)
//! get UNAUTHENTICATED and burn no guess; the peer port refuses an admin certificate, a
//! certificate of another CA and no certificate; admin-only calls refuse a node certificate;
//! a node whose token holds another cluster key is refused by add-node, both while it still
//! runs its own cluster and after its data is wiped (the key stays in its token); and a
//! member restarted on that foreign token serves no client (the check value differs).

use std::time::Duration;

use bkv_admin::AdminError;
use bkv_client::proto::RaftMessage;
use bkv_client::proto::raft_client::RaftClient;
use bkv_client::{TokenSource, VaultClient, VaultError};
use bkv_tests::{Cluster, account, password, raw};
use ed25519_dalek::SigningKey;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

const RIGHT: &str = "correct horse battery staple";

fn peer_channel(
    addr: &str,
    ca: &[u8],
    identity: Option<(Vec<u8>, Vec<u8>)>,
) -> anyhow::Result<Channel> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Ok(Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(5))
        .connect_lazy())
}

fn read_pair(dir: &std::path::Path, stem: &str) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    Ok((
        std::fs::read(dir.join(format!("{stem}.pem")))?,
        std::fs::read(dir.join(format!("{stem}.key")))?,
    ))
}

/// A Raft `Vote` with an empty payload: what the peer port answers this caller.
async fn vote(channel: Channel) -> Result<RaftMessage, tonic::Status> {
    RaftClient::new(channel)
        .vote(RaftMessage { payload: vec![] })
        .await
        .map(tonic::Response::into_inner)
}

/// The codes tonic gives a call whose connection failed (handshake refused, connection
/// closed): no bkv handler answers these for the calls made here.
fn transport_code(code: Code) -> bool {
    matches!(code, Code::Unavailable | Code::Unknown | Code::Cancelled)
}

/// A status that never came from the server: the TLS handshake (or the connection) failed.
fn refused_before_any_answer(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some() && transport_code(status.code())
}

fn admin_code(e: &anyhow::Error) -> Option<Code> {
    match e.downcast_ref::<AdminError>() {
        Some(AdminError::Status { code, .. }) => Some(*code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_certificates_roles_and_foreign_cluster_keys_are_refused() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(3).await?;
    let alice_client = cluster.vault(&[1], "alice").await?;
    alice_client
        .register(&account("alice"), password(RIGHT), None)
        .await?;

    // Phase 1: account tokens, below the SDK: every bad token gets UNAUTHENTICATED.
    let good = cluster.token("alice");
    let stranger = SigningKey::generate(&mut rand::rngs::OsRng);
    let base = cluster.claims("alice");
    let now = base.iat;
    let mut bad: Vec<(&str, Option<String>)> = vec![("no token", None)];
    bad.push(("garbage", Some("not-a-jwt".into())));
    let mut c = base.clone();
    c.aud = "another-cluster".into();
    bad.push(("wrong audience", Some(cluster.sign(&c))));
    let mut c = base.clone();
    c.iat = now - 300;
    c.exp = now - 10;
    bad.push(("expired", Some(cluster.sign(&c))));
    let mut c = base.clone();
    c.iss = "stranger".into();
    bad.push((
        "unknown issuer",
        Some(bkv_core::token::issue(&stranger, &c)),
    ));
    bad.push((
        "our issuer's name, another key",
        Some(bkv_core::token::issue(&stranger, &base)),
    ));
    let mut c = base.clone();
    c.exp = now + 2 * 86_400;
    bad.push(("lifetime too long", Some(cluster.sign(&c))));
    for node in cluster.ids() {
        let ok = raw::status(cluster.client_channel(node)?, Some(&good)).await?;
        assert!(ok.is_ok(), "node {node}: a good token works: {ok:?}");
        for (what, token) in &bad {
            let answer = raw::status(cluster.client_channel(node)?, token.as_deref()).await?;
            let code = answer.as_ref().err().map(tonic::Status::code);
            assert_eq!(code, Some(Code::Unauthenticated), "node {node}, {what}");
        }
    }
    // A refused RecoverStart burns no guess.
    for (what, token) in &bad {
        let answer = raw::recover_start(
            cluster.client_channel(2)?,
            token.as_deref(),
            &account("alice"),
            RIGHT,
        )
        .await?;
        let code = answer.as_ref().err().map(tonic::Status::code);
        assert_eq!(code, Some(Code::Unauthenticated), "RecoverStart, {what}");
    }
    assert_eq!(alice_client.status().await?.guesses_used, 0);
    // Through the SDK: a typed error.
    let mut config = cluster.client_config(
        &[3],
        TokenSource::fixed(bad[2].1.clone().unwrap_or_default()),
    )?;
    config.deadline = Duration::from_secs(5);
    let wrong_audience = VaultClient::connect(config).await?;
    let err = wrong_audience
        .recover(&account("alice"), password(RIGHT))
        .await
        .err();
    assert!(
        matches!(err, Some(VaultError::Unauthenticated(_))),
        "SDK with a wrong-audience token: {err:?}"
    );

    // Phase 2: the peer (Raft) port takes node certificates of this CA only.
    let pki = cluster.pki_dir().to_path_buf();
    let ca = cluster.ca_pem().to_vec();
    let other = tempfile::tempdir()?;
    bkv_devkit::pki::init(other.path(), "other-cluster")?;
    bkv_devkit::pki::node(other.path(), 2, &["127.0.0.1".into()])?;
    let peer = cluster.node(1)?.peer_addr();
    let node_cert = vote(peer_channel(&peer, &ca, Some(read_pair(&pki, "node2")?))?).await;
    let control = node_cert.err().map(|s| s.code());
    assert_eq!(
        control,
        Some(Code::InvalidArgument),
        "a node certificate reaches the Raft service (and its empty vote is refused as such)"
    );
    let as_admin = vote(peer_channel(&peer, &ca, Some(read_pair(&pki, "admin")?))?).await;
    assert_eq!(
        as_admin.as_ref().err().map(tonic::Status::code),
        Some(Code::PermissionDenied),
        "admin certificate on the peer port: {as_admin:?}"
    );
    let foreign = vote(peer_channel(
        &peer,
        &ca,
        Some(read_pair(other.path(), "node2")?),
    )?)
    .await;
    let foreign = foreign
        .err()
        .ok_or_else(|| anyhow::anyhow!("a foreign CA's node got in"))?;
    assert!(
        refused_before_any_answer(&foreign),
        "another CA's node certificate: {foreign:?}"
    );
    println!("another CA's node certificate on the peer port: {foreign:?}");
    let anonymous = vote(peer_channel(&peer, &ca, None)?).await;
    let anonymous = anonymous
        .err()
        .ok_or_else(|| anyhow::anyhow!("no certificate got in"))?;
    println!("no certificate on the peer port: {anonymous:?}");
    assert!(
        refused_before_any_answer(&anonymous),
        "no client certificate: {anonymous:?}"
    );

    // Phase 3: admin-only calls refuse a node certificate; another CA's admin gets nowhere.
    let node1 = cluster.node(1)?.admin_addr();
    let as_node = cluster.admin_for(vec![node1.clone()], "node2").await?;
    for (what, result) in [
        ("Snapshot", as_node.snapshot().await.map(|_| ())),
        ("RemoveNode", as_node.remove_node(3).await.map(|_| ())),
        (
            "Init",
            as_node
                .init("x", 0, 0, &SigningKey::generate(&mut rand::rngs::OsRng))
                .await
                .map(|_| ()),
        ),
    ] {
        match result {
            Err(AdminError::Status { code, .. }) => {
                assert_eq!(
                    code,
                    Code::PermissionDenied,
                    "{what} with a node certificate"
                )
            }
            other => panic!("{what} with a node certificate: {other:?}"),
        }
    }
    let admin = cluster.admin_at(1).await?;
    admin.snapshot().await?;
    let mut foreign_admin_cfg = bkv_admin::AdminConfig::new(
        vec![node1],
        ca.clone(),
        std::fs::read(other.path().join("admin.pem"))?,
        std::fs::read(other.path().join("admin.key"))?,
    );
    foreign_admin_cfg.call_timeout = Duration::from_secs(5);
    let foreign_admin = bkv_admin::AdminClient::connect(foreign_admin_cfg).await?;
    let foreign = foreign_admin.snapshot().await;
    println!("another CA's admin certificate on the admin port: {foreign:?}");
    assert!(
        matches!(&foreign, Err(AdminError::Status { code, .. }) if transport_code(*code)),
        "another CA's admin certificate: {foreign:?}"
    );
    cluster
        .wait_voters(&[1, 2, 3], Duration::from_secs(5))
        .await?;

    // Phase 4: a node whose token holds another cluster key. First it runs a cluster of its
    // own (init on it): add-node refuses it as a member of another cluster.
    let x = cluster.spawn_node().await?;
    cluster.init(x).await?;
    let refused = cluster
        .join(x)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("add-node accepted a node of another cluster"))?;
    assert_eq!(
        admin_code(&refused),
        Some(Code::FailedPrecondition),
        "{refused:#}"
    );
    assert!(
        format!("{refused:#}").contains("another cluster"),
        "{refused:#}"
    );
    // Its data wiped, its token still holds its own key: refused for that key.
    cluster.kill9(x)?;
    std::fs::remove_dir_all(cluster.node(x)?.data_dir())?;
    cluster.restart(x).await?;
    let info = cluster.admin_at(x).await?.node_info().await?;
    assert!(
        info.has_cluster_key && info.cluster_id.is_empty(),
        "{info:?}"
    );
    let refused = cluster.join(x).await.err().ok_or_else(|| {
        anyhow::anyhow!("add-node accepted a node whose token holds another cluster key")
    })?;
    assert_eq!(
        admin_code(&refused),
        Some(Code::FailedPrecondition),
        "{refused:#}"
    );
    assert!(
        format!("{refused:#}").contains("another cluster key"),
        "{refused:#}"
    );
    // Not a member, not serving, no client answered.
    cluster
        .wait_voters(&[1, 2, 3], Duration::from_secs(5))
        .await?;
    let ready = cluster.node(x)?.readyz().await?;
    assert_eq!(ready.status, 503, "{}", ready.body);
    let answer = raw::status(cluster.client_channel(x)?, Some(&good)).await?;
    assert_eq!(
        answer.err().map(|s| s.code()),
        Some(Code::Unavailable),
        "the refused node serves no client"
    );
    // Phase 5: a member whose token is swapped for that foreign token (an operator mix-up)
    // restarts with the cluster's Bootstrap but another key: it serves no client.
    cluster.kill9(x)?;
    cluster.kill9(3)?;
    let (from, to) = (
        cluster.node(x)?.token_dir().to_path_buf(),
        cluster.node(3)?.token_dir().to_path_buf(),
    );
    std::fs::remove_dir_all(to.join("tokens"))?;
    bkv_tests::loot::copy_dir(&from.join("tokens"), &to.join("tokens"))?;
    for pin in ["user.pin", "so.pin"] {
        std::fs::copy(from.join(pin), to.join(pin))?;
    }
    let config = cluster.node(3)?.config_path().to_path_buf();
    let text = std::fs::read_to_string(&config)?;
    std::fs::write(
        &config,
        text.replace("\"bkv-node3\"", &format!("\"bkv-node{x}\"")),
    )?;
    cluster.restart(3).await?;
    let node3 = cluster.node(3)?;
    let refused = bkv_tests::wait_for(
        "node 3 to refuse its swapped key",
        Duration::from_secs(15),
        Duration::from_millis(100),
        || async {
            let r = node3.readyz().await?;
            Ok((r.status == 503 && r.body.contains("differs")).then_some(r))
        },
    )
    .await?;
    println!("node 3 with another key: {}", refused.body.trim());
    let answer = raw::status(cluster.client_channel(3)?, Some(&good)).await?;
    assert_eq!(answer.err().map(|s| s.code()), Some(Code::Unavailable));

    // The cluster is unharmed: nodes 1 and 2 are a quorum.
    let again = cluster.vault(&[1, 2, 3], "alice").await?;
    again.recover(&account("alice"), password(RIGHT)).await?;
    Ok(())
}
