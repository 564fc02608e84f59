//! Throughput of the backup format (criterion): encrypting and decrypting 16 MiB with the
//! default 64 KiB chunks, memory to memory, so that the figure is the format's and the
//! cipher's, not a disk's.
//!
//! Run: `cargo bench -p bkv-client --bench backup`.

use std::hint::black_box;

use bkv_client::backup::{BackupKey, decrypt, encrypt};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const LEN: usize = 16 << 20;

fn bench(c: &mut Criterion) {
    let key = BackupKey::generate();
    let data: Vec<u8> = (0..LEN).map(|i| (i * 31 % 251) as u8).collect();
    let mut sealed = Vec::with_capacity(LEN + LEN / 4096 + 128);
    encrypt(&key, data.as_slice(), &mut sealed).expect("encrypts");
    let mut out = Vec::with_capacity(LEN);

    let mut group = c.benchmark_group("backup_16MiB");
    group.throughput(Throughput::Bytes(LEN as u64));
    group.sample_size(20);
    group.bench_function("encrypt", |b| {
        b.iter(|| {
            sealed.clear();
            encrypt(&key, black_box(data.as_slice()), &mut sealed).expect("encrypts")
        })
    });
    group.bench_function("decrypt", |b| {
        b.iter(|| {
            out.clear();
            decrypt(&key, black_box(sealed.as_slice()), &mut out).expect("decrypts")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
