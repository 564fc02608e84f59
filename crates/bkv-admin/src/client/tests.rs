//! The admin client against fake admin services under mutual TLS: leader routing, status
//! failover, streams, and the certificate check.

use std::sync::{Arc, Mutex};

use bkv_proto::v1::{AddNodePhase, MemberStatus};
use tonic::Code;
use zeroize::Zeroizing;

use super::*;
use bkv_devkit::pki::{ADMIN_CERT, ADMIN_KEY};
use bkv_devkit::testing::{FakeAdmin, FakeMembership, TestPki, TestServer, dead_endpoint, serve};

struct Rig {
    pki: TestPki,
    nodes: Vec<FakeAdmin>,
    servers: Vec<TestServer>,
    membership: Arc<Mutex<FakeMembership>>,
}

/// Three fake admin services; node 2 leads.
async fn rig() -> Rig {
    let pki = TestPki::new();
    let membership = Arc::new(Mutex::new(FakeMembership {
        leader_id: 2,
        term: 5,
        ..FakeMembership::default()
    }));
    let mut nodes = Vec::new();
    let mut servers = Vec::new();
    for id in 1..=3u64 {
        let node = FakeAdmin::new(id, membership.clone());
        let svc = node.service();
        servers.push(serve(pki.mutual_server_tls(), move |s| s.add_service(svc)).await);
        nodes.push(node);
    }
    {
        let mut m = membership.lock().unwrap();
        for (i, s) in servers.iter().enumerate() {
            m.members
                .push((i as u64 + 1, s.host_port(), String::new(), true));
        }
    }
    Rig {
        pki,
        nodes,
        servers,
        membership,
    }
}

fn config(pki: &TestPki, endpoints: Vec<String>) -> AdminConfig {
    let mut c = AdminConfig::new(
        endpoints,
        pki.ca_pem(),
        pki.read(ADMIN_CERT),
        pki.read(ADMIN_KEY),
    );
    c.call_timeout = Duration::from_secs(5);
    c
}

#[tokio::test]
async fn membership_changes_go_to_the_leader() {
    let rig = rig().await;
    // The operator only knows node 1.
    let admin = AdminClient::connect(config(&rig.pki, vec![rig.servers[0].host_port()]))
        .await
        .unwrap();
    assert_eq!(admin.leader().await.unwrap(), rig.servers[1].host_port());

    let mut progress = admin
        .add_node(4, "127.0.0.1:7402", "ff00", false)
        .await
        .unwrap();
    let mut phases = Vec::new();
    for _ in 0..10 {
        match progress.next().await.unwrap() {
            Some(p) => phases.push((p.phase, p.matched_index, p.leader_index)),
            None => break,
        }
    }
    assert_eq!(
        phases,
        [
            (AddNodePhase::Enrolled as i32, 0, 0),
            (AddNodePhase::KeyProvisioned as i32, 0, 0),
            (AddNodePhase::CatchingUp as i32, 20, 42),
            (AddNodePhase::CatchingUp as i32, 42, 42),
            (AddNodePhase::Done as i32, 42, 42),
        ]
    );
    assert!(rig.nodes[1].calls().contains(&"AddNode".to_string()));
    assert!(!rig.nodes[0].calls().contains(&"AddNode".to_string()));

    let removed = admin.remove_node(4).await.unwrap();
    assert_eq!(removed.voters, [1, 2, 3]);
    assert_eq!(
        admin.transfer_leader(3).await.unwrap().leader_id,
        3,
        "sent to node 2, the leader then"
    );
    assert_eq!(admin.leader().await.unwrap(), rig.servers[2].host_port());
    assert!(rig.nodes[1].calls().contains(&"TransferLeader".to_string()));
}

#[tokio::test]
async fn share_maps_name_the_voters_and_are_not_republished_unchanged() {
    let rig = rig().await;
    let admin = AdminClient::connect(config(&rig.pki, vec![rig.servers[0].host_port()]))
        .await
        .unwrap();
    let identity = SigningKey::from_bytes(&[9; 32]);
    let first = admin.publish_share_map(&identity).await.unwrap();
    assert!(!first.unchanged);
    assert_eq!(first.map.epoch, 1);
    assert_eq!(first.map.threshold, 2);
    let ids: Vec<u64> = first.map.holders.iter().map(|h| h.node_id).collect();
    assert_eq!(ids, [1, 2, 3]);
    // What the leader now holds is exactly what was signed.
    let signed = rig.membership.lock().unwrap().share_map.clone().unwrap();
    let verified = bkv_core::SignedShareMap::try_from(signed)
        .unwrap()
        .verify(&identity.verifying_key().to_bytes())
        .unwrap();
    assert_eq!(verified, first.map);

    let again = admin.publish_share_map(&identity).await.unwrap();
    assert!(again.unchanged, "the same voters with the same keys");
    assert_eq!(again.map, first.map);
    assert_eq!(rig.membership.lock().unwrap().share_map_epoch, 1);

    admin.remove_node(3).await.unwrap();
    let after = admin.publish_share_map(&identity).await.unwrap();
    assert!(!after.unchanged);
    assert_eq!(after.map.epoch, 2);
    let ids: Vec<u64> = after.map.holders.iter().map(|h| h.node_id).collect();
    assert_eq!(
        (ids.as_slice(), after.map.threshold),
        ([1u64, 2].as_slice(), 2)
    );
}

#[tokio::test]
async fn a_share_map_publish_follows_a_leader_that_moves_under_it() {
    let rig = rig().await;
    let admin = AdminClient::connect(config(&rig.pki, vec![rig.servers[0].host_port()]))
        .await
        .unwrap();
    let identity = SigningKey::from_bytes(&[9; 32]);
    // Node 2 leads when the client reads the status; by its write, node 3 does.
    rig.membership.lock().unwrap().leader_moves_on_share_map = Some(3);
    let published = admin.publish_share_map(&identity).await.unwrap();
    assert!(!published.unchanged);
    assert_eq!(published.map.epoch, 1);
    assert!(rig.nodes[1].calls().contains(&"SetShareMap".to_string()));
    assert!(
        rig.nodes[2].calls().contains(&"SetShareMap".to_string()),
        "tried again at the new leader"
    );
    assert_eq!(rig.membership.lock().unwrap().share_map_epoch, 1);

    // A refusal is not tried again.
    rig.membership.lock().unwrap().leader_id = 0;
    let err = admin.remove_node(3).await.unwrap_err();
    assert!(matches!(err, AdminError::NoLeader(_)), "{err:?}");
    assert!(err.is_transient());
    let refused = AdminError::Status {
        endpoint: String::new(),
        code: Code::InvalidArgument,
        message: "share_map: refused".into(),
    };
    assert!(!refused.is_transient());
}

#[tokio::test]
async fn status_fails_over_and_per_node_calls_use_the_first_endpoint() {
    let rig = rig().await;
    let dead = dead_endpoint().await;
    let admin = AdminClient::connect(config(&rig.pki, vec![dead.clone(), rig.servers[2].url()]))
        .await
        .unwrap();
    let status = admin.status().await.unwrap();
    assert_eq!(
        (status.leader_id, status.term, status.members.len()),
        (2, 5, 3)
    );
    // Node info, status, snapshot and audit address one node: the dead one here.
    assert!(admin.node_info().await.is_err());
    let node3 = admin.at(&rig.servers[2].host_port()).unwrap();
    let info = node3.node_info().await.unwrap();
    assert_eq!(info.enrollment_fingerprint, rig.nodes[2].fingerprint());
    assert_eq!(node3.node_status().await.unwrap().node_id, 3);
    assert_eq!(node3.snapshot().await.unwrap().last_log_index, 41);
    let identity = SigningKey::from_bytes(&[9; 32]);
    let init = node3.init("bkv-test", 0, 0, &identity).await.unwrap();
    assert_eq!(init.node_id, 3);
    let mut audit = node3.audit(2, false).await.unwrap();
    let mut seqs = Vec::new();
    for _ in 0..10 {
        match audit.next().await.unwrap() {
            Some(r) => seqs.push(r.seq),
            None => break,
        }
    }
    assert_eq!(seqs, [2, 3]);
}

#[tokio::test]
async fn no_leader_and_foreign_certificates_are_errors() {
    let rig = rig().await;
    rig.membership.lock().unwrap().leader_id = 0;
    let admin = AdminClient::connect(config(&rig.pki, vec![rig.servers[0].host_port()]))
        .await
        .unwrap();
    assert!(matches!(admin.leader().await, Err(AdminError::NoLeader(_))));
    assert!(matches!(
        admin.remove_node(3).await,
        Err(AdminError::NoLeader(_))
    ));
    let mut status = ClusterStatusResponse {
        leader_id: 9,
        ..Default::default()
    };
    assert!(
        matches!(leader_admin_addr(&status), Err(AdminError::NoLeader(m)) if m.contains("not in"))
    );
    status.members.push(MemberStatus {
        node_id: 9,
        ..Default::default()
    });
    assert!(
        matches!(leader_admin_addr(&status), Err(AdminError::NoLeader(m)) if m.contains("no admin address"))
    );

    // An admin certificate from another CA does not get in.
    let other = TestPki::new();
    let mut c = config(&rig.pki, vec![rig.servers[0].host_port()]);
    c.cert_pem = other.read(ADMIN_CERT);
    c.key_pem = Zeroizing::new(other.read(ADMIN_KEY));
    let stranger = AdminClient::connect(c).await.unwrap();
    assert!(stranger.status().await.is_err());
    // A node certificate is refused by the role check for operator calls.
    let mut c = config(&rig.pki, vec![rig.servers[0].host_port()]);
    c.cert_pem = rig.pki.read("node1.pem");
    c.key_pem = Zeroizing::new(rig.pki.read("node1.key"));
    let node_as_admin = AdminClient::connect(c).await.unwrap();
    assert!(matches!(
        node_as_admin.status().await,
        Err(AdminError::Status {
            code: Code::PermissionDenied,
            ..
        })
    ));
    assert!(node_as_admin.node_info().await.is_ok());
    assert!(format!("{:?}", config(&rig.pki, vec![])).contains("endpoints"));
    assert!(!format!("{:?}", config(&rig.pki, vec![])).contains("PRIVATE"));
}
