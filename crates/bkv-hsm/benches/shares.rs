//! The share keys' operations against a real SoftHSM2 token: ECDH in the token (derive Z
//! into a session object, read it, destroy it), and sealing and unsealing a 32-byte share
//! under the share-sealing key, one call at a time and 64 concurrent ECDHs over the worker
//! pool. Reports ops/s.
//!
//! `cargo bench -p bkv-hsm --bench shares -- --warm-up-time 1 --measurement-time 3`

use bkv_hsm::testing::TestToken;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use p256::elliptic_curve::sec1::ToEncodedPoint;

/// A fixed client ephemeral point (the token does the same work for any valid point).
fn ephemeral_point() -> [u8; 65] {
    let secret = p256::SecretKey::from_slice(&[0x42; 32]).expect("valid scalar");
    secret
        .public_key()
        .to_encoded_point(false)
        .as_bytes()
        .try_into()
        .expect("65 bytes")
}

fn bench_shares(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let token = TestToken::new();
    let p = rt.block_on(token.open());
    rt.block_on(p.share_receive_key()).expect("share key");
    let peer = ephemeral_point();
    let aad = b"bkv/bench/v1 account-0001 share";
    let share = [0x5Au8; 32];

    let mut group = c.benchmark_group("hsm_shares");
    group.throughput(Throughput::Elements(1));
    group.bench_function("share_ecdh", |b| {
        b.iter(|| rt.block_on(p.share_ecdh(&peer)).expect("ecdh"))
    });
    group.bench_function("seal_share_32B", |b| {
        b.iter(|| rt.block_on(p.seal_share(aad, &share)).expect("seal"))
    });
    let blob = rt.block_on(p.seal_share(aad, &share)).expect("seal");
    group.bench_function("unseal_share_32B", |b| {
        b.iter(|| rt.block_on(p.unseal_share(aad, &blob)).expect("unseal"))
    });
    const CONCURRENT: usize = 64;
    group.throughput(Throughput::Elements(CONCURRENT as u64));
    group.bench_function(format!("share_ecdh_x{CONCURRENT}_concurrent"), |b| {
        b.iter(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..CONCURRENT)
                    .map(|_| {
                        let p = p.clone();
                        tokio::spawn(async move { p.share_ecdh(&peer).await })
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("task").expect("ecdh");
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench_shares);
criterion_main!(benches);
