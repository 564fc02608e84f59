//! Seal and unseal throughput against a real SoftHSM2 token (AES-256-GCM in the token),
//! one call at a time and 64 concurrent calls over the worker pool. Reports ops/s.
//!
//! `cargo bench -p bkv-hsm -- --warm-up-time 1 --measurement-time 3`

use bkv_core::SealPurpose;
use bkv_hsm::testing::TestToken;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn bench_seal(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let token = TestToken::new();
    let p = rt.block_on(token.open());
    rt.block_on(p.generate_cluster_key()).expect("cluster key");
    let aad = b"bkv/bench/v1 account-0001";

    let mut group = c.benchmark_group("hsm");
    group.throughput(Throughput::Elements(1));
    for size in [64usize, 1024] {
        let plain = vec![0x5Au8; size];
        group.bench_function(format!("seal_{size}B"), |b| {
            b.iter(|| {
                rt.block_on(p.seal(SealPurpose::Test, aad, &plain))
                    .expect("seal")
            })
        });
        let blob = rt
            .block_on(p.seal(SealPurpose::Test, aad, &plain))
            .expect("seal");
        group.bench_function(format!("unseal_{size}B"), |b| {
            b.iter(|| {
                rt.block_on(p.unseal(SealPurpose::Test, aad, &blob))
                    .expect("unseal")
            })
        });
    }
    const CONCURRENT: usize = 64;
    group.throughput(Throughput::Elements(CONCURRENT as u64));
    let plain = vec![0x5Au8; 64];
    group.bench_function(format!("seal_64B_x{CONCURRENT}_concurrent"), |b| {
        b.iter(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..CONCURRENT)
                    .map(|_| {
                        let (p, plain) = (p.clone(), plain.clone());
                        tokio::spawn(async move { p.seal(SealPurpose::Test, aad, &plain).await })
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("task").expect("seal");
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench_seal);
criterion_main!(benches);
