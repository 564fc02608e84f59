//! How the gRPC network and the writer report failures: an unreachable peer, a peer that
//! never answers, a stopped remote Raft, an oversized batch, and no leader at all.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bkv_core::{Command, Request};
use bkv_raft::types::{LogEntry, LogId, Proposal, Vote};
use bkv_raft::{
    BkvNode, DiscardAudit, GrpcNetworkFactory, NodeOptions, PeerChannels, PeerOptions, RaftNode,
    WriteError,
};
use common::{account, stage};
use openraft::error::{Fatal, RPCError, RaftError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::{CommittedLeaderId, EntryPayload};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

fn peer(addr: &str) -> BkvNode {
    BkvNode::new(addr, "127.0.0.1:1", "127.0.0.1:2")
}

async fn network_to(addr: &str) -> bkv_raft::GrpcNetwork {
    let mut f = GrpcNetworkFactory::new(9, PeerChannels::new(PeerOptions::default()));
    f.new_client(1, &peer(addr)).await
}

fn vote_req() -> VoteRequest<u64> {
    VoteRequest::new(Vote::new(5, 9), None)
}

#[tokio::test]
async fn closed_port_is_unreachable() -> anyhow::Result<()> {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        l.local_addr()?.to_string()
    };
    let mut net = network_to(&addr).await;
    let err = net
        .vote(vote_req(), RPCOption::new(Duration::from_secs(2)))
        .await
        .expect_err("nobody listens");
    assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn silent_peer_times_out() -> anyhow::Result<()> {
    // Accepts connections and never says a word.
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?.to_string();
    let hold = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = l.accept().await {
            conns.push(c);
        }
    });
    let mut net = network_to(&addr).await;
    let ttl = Duration::from_millis(400);
    let err = tokio::time::timeout(
        Duration::from_secs(5),
        net.vote(vote_req(), RPCOption::new(ttl)),
    )
    .await?
    .expect_err("no answer");
    assert!(
        matches!(&err, RPCError::Timeout(t) if t.timeout <= ttl),
        "{err:?}"
    );
    hold.abort();
    Ok(())
}

#[tokio::test]
async fn oversized_batch_is_split_by_openraft() -> anyhow::Result<()> {
    let mut net = network_to("127.0.0.1:9").await;
    let big = |i: u64| LogEntry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), i),
        payload: EntryPayload::Normal(Proposal::one(Request {
            at_unix_ms: 0,
            command: Command::Stage {
                account: account(1),
                request_id: bkv_core::RequestId::new([0; 16]),
                guess_limit: bkv_core::GuessLimit::DEFAULT,
                sealed_record: vec![0; 1024 * 1024],
                oprf: bkv_core::fixtures::oprf_record(1, 3),
            },
        })),
    };
    let req = AppendEntriesRequest {
        vote: Vote::new_committed(1, 1),
        prev_log_id: None,
        leader_commit: None,
        entries: (1..=4).map(big).collect(),
    };
    let err = net
        .append_entries(req, RPCOption::new(Duration::from_secs(1)))
        .await
        .expect_err("too large");
    match err {
        RPCError::PayloadTooLarge(p) => assert_eq!(p.entries_hint(), 2),
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn stopped_remote_raft_is_a_remote_fatal_error() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let node = RaftNode::open(NodeOptions::new(1, dir.path(), Arc::new(DiscardAudit))).await?;
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?.to_string();
    let svc = node.service();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(TcpListenerStream::new(l)),
    );
    node.shutdown().await;
    let mut net = network_to(&addr).await;
    let err = net
        .vote(vote_req(), RPCOption::new(Duration::from_secs(2)))
        .await
        .expect_err("raft is stopped");
    match err {
        RPCError::RemoteError(r) => {
            assert_eq!(r.target, 1);
            assert!(
                matches!(r.source, RaftError::Fatal(Fatal::Stopped)),
                "{r:?}"
            );
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
    server.abort();
    Ok(())
}

#[tokio::test]
async fn writer_without_leader_gives_up_at_its_deadline() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let mut opts = NodeOptions::new(1, dir.path(), Arc::new(DiscardAudit));
    opts.write_deadline = Duration::from_millis(300);
    let node = RaftNode::open(opts).await?;
    let started = std::time::Instant::now();
    let err = node.writer().write(stage(1)).await.expect_err("no cluster");
    assert!(matches!(err, WriteError::NoLeader(_)), "{err:?}");
    assert!(err.is_unavailable());
    assert!(started.elapsed() < Duration::from_secs(2));

    // An oversized request is refused before Raft, at once.
    let mut big = stage(2);
    if let Command::Stage { sealed_record, .. } = &mut big.command {
        *sealed_record = vec![0; 2 * 1024 * 1024];
    }
    let err = node.writer().write(big).await.expect_err("too large");
    assert!(matches!(err, WriteError::TooLarge { .. }), "{err:?}");
    assert!(!err.is_unavailable());
    node.shutdown().await;
    let err = node.writer().write(stage(3)).await.expect_err("stopped");
    assert!(matches!(err, WriteError::Stopped), "{err:?}");
    Ok(())
}
