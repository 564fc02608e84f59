//! A Raft commit on an in-process three-node cluster: real sled stores flushed before every
//! acknowledgement, real gRPC over mutual TLS on loopback. Reports the latency of one write
//! at a time and the throughput of 64 concurrent writes (what 64 clients' charges do), both
//! through [`bkv_raft::Writer`] on the leader and forwarded from a follower.
//!
//! `cargo bench -p bkv-raft --bench commit`

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use support::{Pki, Trio, concurrent_rounds, delete, runtime};

fn bench_commit(c: &mut Criterion) {
    let rt = runtime();
    let pki = Pki::new();
    let trio = rt.block_on(Trio::start(&pki));
    let leader = trio.nodes[0].writer();
    let follower = trio.nodes[1].writer();
    let n = AtomicU64::new(0);

    let mut group = c.benchmark_group("raft_commit");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_at_a_time/leader", |b| {
        b.iter(|| {
            rt.block_on(leader.write(delete(n.fetch_add(1, Ordering::Relaxed))))
                .expect("write")
        })
    });
    group.bench_function("one_at_a_time/forwarded", |b| {
        b.iter(|| {
            rt.block_on(follower.write(delete(n.fetch_add(1, Ordering::Relaxed))))
                .expect("write")
        })
    });
    const CONCURRENT: u64 = 64;
    group.throughput(Throughput::Elements(CONCURRENT));
    for (name, writer) in [("leader", &leader), ("forwarded", &follower)] {
        group.bench_function(format!("x{CONCURRENT}_concurrent/{name}"), |b| {
            b.iter_custom(|iters| {
                concurrent_rounds(&rt, iters, CONCURRENT, || {
                    let (w, k) = (writer.clone(), n.fetch_add(1, Ordering::Relaxed));
                    async move { w.write(delete(k)).await }
                })
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = bench_commit
}
criterion_main!(benches);
