//! A gRPC round trip: one trivial unary call (`bkv.v1.Raft/Vote` answered at once by a
//! service that does nothing) over mutual TLS on loopback, with the node's transport
//! settings (nodelay, the peer channel of [`bkv_raft::PeerChannels`]). Reports the latency
//! of one call at a time and the throughput of 64 concurrent calls on one connection.
//!
//! `cargo bench -p bkv-raft --bench grpc`

mod support;

use std::time::Duration;

use bkv_proto::v1::raft_server::{Raft, RaftServer};
use bkv_proto::v1::{ForwardRequest, ForwardResponse, RaftMessage};
use bkv_raft::{PeerChannels, PeerOptions};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use support::{Pki, concurrent_rounds, runtime};
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// Answers every call at once with an empty message.
struct Echo;

#[tonic::async_trait]
impl Raft for Echo {
    async fn append_entries(
        &self,
        r: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        Ok(Response::new(r.into_inner()))
    }
    async fn vote(&self, r: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        Ok(Response::new(r.into_inner()))
    }
    async fn install_snapshot(
        &self,
        r: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        Ok(Response::new(r.into_inner()))
    }
    async fn forward(
        &self,
        _: Request<ForwardRequest>,
    ) -> Result<Response<ForwardResponse>, Status> {
        Ok(Response::new(ForwardResponse::default()))
    }
}

fn bench_round_trip(c: &mut Criterion) {
    let rt = runtime();
    let pki = Pki::new();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let tls = pki.server_tls();
    rt.spawn(async move {
        let _ = Server::builder()
            .tls_config(tls)
            .expect("tls")
            .add_service(RaftServer::new(Echo))
            .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
            .await;
    });
    // Channels are built lazily and spawn their connection task on the current runtime.
    let _runtime = rt.enter();
    let peers = PeerChannels::new(PeerOptions {
        tls: Some(pki.client_tls()),
        ..PeerOptions::default()
    });
    let client = peers.raft_client(&addr).expect("client");
    let message = RaftMessage {
        payload: vec![0u8; 64],
    };
    // Connect before measuring.
    rt.block_on(client.clone().vote(message.clone()))
        .expect("first call");

    let mut group = c.benchmark_group("grpc_round_trip");
    group.throughput(Throughput::Elements(1));
    group.bench_function("unary_tls/one_at_a_time", |b| {
        b.iter(|| {
            rt.block_on(client.clone().vote(message.clone()))
                .expect("call")
        })
    });
    const CONCURRENT: u64 = 64;
    group.throughput(Throughput::Elements(CONCURRENT));
    group.bench_function(format!("unary_tls/x{CONCURRENT}_concurrent"), |b| {
        b.iter_custom(|iters| {
            concurrent_rounds(&rt, iters, CONCURRENT, || {
                let (mut c, m) = (client.clone(), message.clone());
                async move { c.vote(m).await }
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = bench_round_trip
}
criterion_main!(benches);
