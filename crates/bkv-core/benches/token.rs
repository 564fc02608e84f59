//! Account-token checks on every client call: a full verification (parse, Ed25519
//! `verify_strict`, claims) against the same token found in the cache of verified tokens
//! (hash, lookup, time rules), which is what the second call of a login (or any later call
//! with the same token) costs.
//!
//! `cargo bench -p bkv-core --bench token`

use std::hint::black_box;

use bkv_core::token::{Claims, MAX_LIFETIME_SECS, TrustedIssuers, issue};
use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;

const NOW: u64 = 1_800_000_000;

fn bench_token(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let mut issuers = TrustedIssuers::new(MAX_LIFETIME_SECS, 60);
    issuers.insert("bench", key.verifying_key());
    let claims = Claims {
        iss: "bench".into(),
        sub: "bench-account-0001".into(),
        aud: "bkv-bench".into(),
        iat: NOW,
        exp: NOW + 300,
        nbf: None,
    };
    let token = issue(&key, &claims);

    let mut group = c.benchmark_group("token");
    group.bench_function("verify", |b| {
        b.iter(|| {
            issuers
                .verify(black_box(&token), "bkv-bench", NOW)
                .expect("valid")
        })
    });
    issuers
        .verify_cached(&token, "bkv-bench", NOW)
        .expect("valid");
    group.bench_function("verify_cached_hit", |b| {
        b.iter(|| {
            issuers
                .verify_cached(black_box(&token), "bkv-bench", NOW)
                .expect("valid")
        })
    });
    group.finish();
}

criterion_group!(benches, bench_token);
criterion_main!(benches);
