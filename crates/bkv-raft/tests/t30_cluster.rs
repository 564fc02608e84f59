//! A three-node cluster over real gRPC on loopback, as one story: initialise, grow to three
//! voters, write through a follower, lose the leader, catch a lagging node up through a
//! snapshot, and refuse garbage on every RPC. Every wait is bounded.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bkv_core::Outcome;
use bkv_proto::contract::{LEADER as LEADER_ADDR_KEY, LEADER_ID as LEADER_ID_KEY};
use bkv_proto::v1::raft_client::RaftClient;
use bkv_proto::v1::{ForwardRequest, RaftMessage};
use bkv_raft::codec;
use bkv_raft::{AuditEntry, AuditRecord, BkvNode, NodeId, NodeOptions, RaftNode, raft_config};
use common::{bootstrap_vault, eventually, stage};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(10);

/// One running node: its Raft, its gRPC server and its audit records.
struct TestNode {
    id: NodeId,
    addr: SocketAddr,
    raft: RaftNode,
    stop_server: oneshot::Sender<()>,
    server: JoinHandle<()>,
    audit: mpsc::UnboundedReceiver<AuditRecord>,
}

fn bkv_node(id: NodeId, addr: SocketAddr) -> BkvNode {
    BkvNode::new(
        addr.to_string(),
        format!("127.0.0.1:{}", 20_000 + id),
        format!("127.0.0.1:{}", 30_000 + id),
    )
}

fn data_dir(root: &Path, id: NodeId) -> PathBuf {
    root.join(format!("node-{id}"))
}

/// Starts node `id` on `listener`, with a small snapshot chunk and no log kept after a
/// snapshot, so that snapshots travel in several chunks and purge the log at once.
async fn start(root: &Path, id: NodeId, listener: TcpListener) -> anyhow::Result<TestNode> {
    let addr = listener.local_addr()?;
    let (tx, audit) = mpsc::unbounded_channel();
    let mut opts = NodeOptions::new(id, data_dir(root, id), Arc::new(tx));
    opts.config = openraft::Config {
        snapshot_policy: openraft::SnapshotPolicy::Never,
        snapshot_max_chunk_size: 512,
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        ..raft_config()
    };
    let raft = RaftNode::open(opts).await?;
    let (stop_server, stop) = oneshot::channel::<()>();
    let svc = raft.service();
    let server = tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stop.await;
            })
            .await;
        if let Err(e) = served {
            eprintln!("server of node {id} failed: {e}");
        }
    });
    Ok(TestNode {
        id,
        addr,
        raft,
        stop_server,
        server,
        audit,
    })
}

impl TestNode {
    /// Stops Raft, then the server; the listener is closed when this returns.
    async fn stop(self) {
        self.raft.shutdown().await;
        let _ = self.stop_server.send(());
        let mut server = self.server;
        if tokio::time::timeout(Duration::from_secs(3), &mut server)
            .await
            .is_err()
        {
            server.abort();
            let _ = server.await;
        }
    }

    fn applied(&self) -> u64 {
        self.raft.state().applied_index()
    }

    async fn client(&self) -> anyhow::Result<RaftClient<Channel>> {
        Ok(RaftClient::connect(format!("http://{}", self.addr)).await?)
    }
}

/// Waits until every node has applied at least `index` and all stand at one applied index;
/// returns their (index, digest). An election on a busy machine appends a blank entry that
/// some nodes apply before others: then it waits for all of them to reach the furthest one,
/// at most 8 rounds.
async fn converge(nodes: &[&TestNode], index: u64) -> anyhow::Result<Vec<(u64, [u8; 32])>> {
    let mut index = index;
    for _ in 0..8 {
        for n in nodes {
            n.raft
                .raft()
                .wait(Some(WAIT))
                .applied_index_at_least(Some(index), format!("node {} applies {index}", n.id))
                .await?;
        }
        let states: Vec<(u64, [u8; 32])> =
            nodes.iter().map(|n| n.raft.state().digest_at()).collect();
        let furthest = states.iter().map(|s| s.0).max().unwrap_or(index);
        if states.iter().all(|s| s.0 == furthest) {
            return Ok(states);
        }
        index = furthest;
    }
    Ok(nodes.iter().map(|n| n.raft.state().digest_at()).collect())
}

fn assert_same(states: &[(u64, [u8; 32])]) {
    let first = states[0];
    for s in states {
        assert_eq!(s.0, first.0, "applied indexes differ: {states:?}");
        assert_eq!(s.1, first.1, "digests differ at index {}", s.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_over_grpc() -> anyhow::Result<()> {
    let root = TempDir::new()?;
    let mut listeners = BTreeMap::new();
    for id in 1..=3u64 {
        listeners.insert(id, TcpListener::bind("127.0.0.1:0").await?);
    }
    let mut nodes = BTreeMap::new();
    for (id, l) in listeners {
        nodes.insert(id, start(root.path(), id, l).await?);
    }
    let addr = |nodes: &BTreeMap<NodeId, TestNode>, id| nodes[&id].addr;

    // --- phase 1: node 1 initialises alone, bootstraps the vault.
    let n1 = &nodes[&1];
    assert!(n1.raft.initialize_single(bkv_node(1, n1.addr)).await?);
    n1.raft
        .raft()
        .wait(Some(WAIT))
        .current_leader(1, "node 1 leads")
        .await?;
    bootstrap_vault(&n1.raft.writer()).await?;

    // --- phase 2: nodes 2 and 3 join as learners, catch up, become voters.
    for id in [2, 3] {
        let node = bkv_node(id, addr(&nodes, id));
        n1.raft.raft().add_learner(id, node, true).await?;
    }
    let leader_last = n1.applied();
    converge(&[&nodes[&2], &nodes[&3]], leader_last).await?;
    n1.raft
        .raft()
        .change_membership(BTreeSet::from([1, 2, 3]), false)
        .await?;
    for n in nodes.values() {
        n.raft
            .raft()
            .wait(Some(WAIT))
            .voter_ids([1, 2, 3], format!("node {} sees three voters", n.id))
            .await?;
    }

    // --- phase 3: writes through a follower are forwarded to the leader.
    let w2 = nodes[&2].raft.writer();
    let mut last = 0;
    for n in 0..20 {
        let w = w2.write(stage(n)).await?;
        assert!(matches!(w.outcome, Outcome::Staged { .. }), "{w:?}");
        assert!(w.log_index > last, "indexes increase");
        last = w.log_index;
    }
    // A retried write is answered, not applied twice.
    let again = w2.write(stage(3)).await?;
    assert!(matches!(again.outcome, Outcome::Staged { .. }));
    let states = converge(&nodes.values().collect::<Vec<_>>(), again.log_index).await?;
    assert_same(&states);

    // Group commit: 64 writes at once, half through the leader and half forwarded, share
    // log entries; each gets its own outcome and its own version.
    let (w1, w3) = (n1.raft.writer(), nodes[&3].raft.writer());
    let burst = (100..164).map(|n| {
        let w = if n % 2 == 0 { w1.clone() } else { w3.clone() };
        async move { w.write(stage(n)).await }
    });
    let written = futures::future::try_join_all(burst).await?;
    // Every command has a version of its own, also within one entry.
    assert_eq!(written.len(), 64);
    let mut versions = BTreeSet::new();
    for w in &written {
        assert!(matches!(w.outcome, Outcome::Staged { .. }), "{w:?}");
        if let Outcome::Staged { version } = w.outcome {
            versions.insert(version.get());
        }
    }
    assert_eq!(versions.len(), 64, "every command has its own version");
    let entries: BTreeSet<u64> = written.iter().map(|w| w.log_index).collect();
    assert!(
        entries.len() < 32,
        "64 concurrent writes took {} entries",
        entries.len()
    );
    let top = entries.last().copied().unwrap_or(0);
    assert_same(&converge(&nodes.values().collect::<Vec<_>>(), top).await?);
    println!(
        "group commit: 64 writes in {} entries, at most {} per entry",
        entries.len(),
        written
            .iter()
            .fold(BTreeMap::<u64, usize>::new(), |mut m, w| {
                *m.entry(w.log_index).or_default() += 1;
                m
            })
            .values()
            .max()
            .unwrap_or(&0)
    );

    // A follower's Forward answers UNAVAILABLE with the leader's id and client address.
    let fwd = codec::encode(&stage(99))?;
    let status = nodes[&3]
        .client()
        .await?
        .forward(ForwardRequest { request: fwd })
        .await
        .expect_err("a follower does not commit");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status
            .metadata()
            .get(LEADER_ID_KEY)
            .map(|v| v.to_str().ok()),
        Some(Some("1"))
    );
    assert_eq!(
        status
            .metadata()
            .get(LEADER_ADDR_KEY)
            .map(|v| v.to_str().ok()),
        Some(Some("127.0.0.1:20001"))
    );

    // --- phase 4: garbage on every RPC is INVALID_ARGUMENT, and the node lives on.
    let mut c = nodes[&2].client().await?;
    let garbage = vec![0xFF; 64];
    let msg = || RaftMessage {
        payload: garbage.clone(),
    };
    let codes = [
        c.append_entries(msg()).await.map(|_| ()),
        c.vote(msg()).await.map(|_| ()),
        c.install_snapshot(msg()).await.map(|_| ()),
        c.forward(ForwardRequest {
            request: garbage.clone(),
        })
        .await
        .map(|_| ()),
        c.vote(RaftMessage {
            payload: Vec::new(),
        })
        .await
        .map(|_| ()),
    ]
    .map(|r| r.err().map(|s| s.code()));
    assert_eq!(codes, [Some(Code::InvalidArgument); 5], "{codes:?}");
    assert!(nodes[&2].raft.metrics().borrow().running_state.is_ok());

    // --- phase 5: the leader stops; another is elected and writes go on.
    let old = nodes.remove(&1).expect("node 1");
    let old_addr = old.addr;
    let killed = Instant::now();
    old.stop().await;
    let stopped = killed.elapsed();
    let new_leader = eventually(WAIT, "a new leader", || {
        let l = nodes[&2].raft.metrics().borrow().current_leader;
        let l3 = nodes[&3].raft.metrics().borrow().current_leader;
        match (l, l3) {
            (Some(a), Some(b)) if a == b && a != 1 => Some(a),
            _ => None,
        }
    })
    .await?;
    let failover = killed.elapsed();
    eprintln!(
        "failover: node {new_leader} leads {failover:?} after the leader stopped (stop took {stopped:?})"
    );
    assert!(
        failover < Duration::from_secs(5),
        "failover took {failover:?}"
    );
    let follower = if new_leader == 2 { 3 } else { 2 };
    for n in 20..30 {
        let w = nodes[&follower].raft.writer().write(stage(n)).await?;
        assert!(matches!(w.outcome, Outcome::Staged { .. }));
    }

    // --- phase 6: the leader snapshots and purges its log; node 1 restarts and catches up
    // through the snapshot.
    let leader = &nodes[&new_leader];
    leader.raft.trigger_snapshot().await?;
    let snap = leader
        .raft
        .raft()
        .wait(Some(WAIT))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= last),
            "snapshot built",
        )
        .await?
        .snapshot;
    let purged_to = leader
        .raft
        .raft()
        .wait(Some(WAIT))
        .metrics(|m| m.purged.is_some_and(|p| p.index > last), "log purged")
        .await?
        .purged;
    eprintln!("leader snapshot {snap:?}, purged {purged_to:?}");
    let data = leader
        .raft
        .raft()
        .get_snapshot()
        .await?
        .expect("a snapshot")
        .snapshot;
    let size = data.get_ref().len();
    eprintln!("snapshot: {size} bytes");
    assert!(
        size > 4 * 512,
        "the snapshot travels in several 512-byte chunks"
    );
    let restarted = start(root.path(), 1, TcpListener::bind(old_addr).await?).await?;
    nodes.insert(1, restarted);
    let target = nodes[&new_leader].applied();
    let states = converge(&nodes.values().collect::<Vec<_>>(), target).await?;
    assert_same(&states);
    let n1 = nodes.get_mut(&1).expect("node 1");
    let installed = eventually(WAIT, "snapshot installed on node 1", || {
        std::iter::from_fn(|| n1.audit.try_recv().ok())
            .find(|r| r.entry == AuditEntry::SnapshotInstalled)
    })
    .await?;
    assert!(installed.log_index > last, "{installed:?}");
    // And it takes part: a write through it commits.
    let w = nodes[&1].raft.writer().write(stage(40)).await?;
    assert!(matches!(w.outcome, Outcome::Staged { .. }));
    let states = converge(&nodes.values().collect::<Vec<_>>(), w.log_index).await?;
    assert_same(&states);

    // --- phase 7: shut everything down.
    for (_, n) in nodes {
        n.stop().await;
    }
    Ok(())
}
