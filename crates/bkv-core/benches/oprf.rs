//! CPU cost of the threshold OPRF's steps (criterion), per side.
//!
//! Node side, per recovery: `evaluate_share` (Z_i = k_i B and its proof) on each of the `t`
//! holders asked, and `verify_evaluation` on the serving node for each answer of another
//! holder. Per registration: `check_commitments` (2 of 3 and 3 of 5) on the serving node,
//! and `open_share` on each holder (the software part after the token's ECDH, which
//! `p256_ecdh_software` stands in for here). Resets: `reset_verify` on every node at apply
//! (the whole apply of a `ResetGuesses` is in the `apply` bench). Share maps:
//! `share_map/verify` (signature and parse) on every node when it applies `SetShareMap`, and
//! on the client at each registration. Client side: `blind`, `verify_evaluation` (as the
//! node's, once per evaluation), `combine`, `finish`; at registration `split`,
//! `evaluate_directly`, `encrypt_share` (once per voter); `reset_sign`.
//!
//! Run: `cargo bench -p bkv-core --features test-support --bench oprf`.

use std::hint::black_box;

use bkv_core::fixtures;
use bkv_core::ids::{AccountId, ChargeNumber, RecordVersion};
use bkv_core::oprf::{
    Blind, Commitment, EvaluatedElement, OprfKey, ResetKey, ShareContext, SoftwareShareKey,
    check_commitments, combine, encrypt_share, evaluate_directly, evaluate_share, open_share,
    oprf_input, reset_message, split, verify_evaluation, verify_reset,
};
use bkv_core::protocol::ExportKey;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rand::rngs::OsRng;

fn bench(c: &mut Criterion) {
    let rng = &mut OsRng;
    let account = AccountId::parse("bench@example.com").expect("valid account");
    let input = oprf_input(&account, b"benchmark password").expect("short");
    let key = OprfKey::generate(rng);
    let shares = split(&key, &[1, 2, 3, 4, 5], 3, rng).expect("split");
    let (_, blinded) = Blind::start(&input, rng).expect("blind");
    let answers: Vec<_> = shares
        .iter()
        .map(|(share, commitment)| {
            let (z, proof) = evaluate_share(share, &blinded, rng);
            (share.index(), *commitment, z, proof)
        })
        .collect();
    let evaluations: Vec<(u64, EvaluatedElement)> =
        answers.iter().map(|(x, _, z, _)| (*x, *z)).collect();

    let mut g = c.benchmark_group("oprf_node");
    g.bench_function("evaluate_share", |b| {
        b.iter(|| evaluate_share(&shares[0].0, black_box(&blinded), &mut OsRng))
    });
    let points: Vec<(u64, Commitment)> = shares.iter().map(|(s, k)| (s.index(), *k)).collect();
    g.bench_function("check_commitments/3_of_5", |b| {
        b.iter(|| check_commitments(black_box(&points), 3))
    });
    let shares_of_3 = split(&key, &[1, 2, 3], 2, rng).expect("split");
    let points_of_3: Vec<(u64, Commitment)> =
        shares_of_3.iter().map(|(s, k)| (s.index(), *k)).collect();
    g.bench_function("check_commitments/2_of_3", |b| {
        b.iter(|| check_commitments(black_box(&points_of_3), 2))
    });
    // What the serving node does with each answer of another holder (the client again).
    let (_, commitment, z0, proof0) = &answers[0];
    g.bench_function("verify_evaluation", |b| {
        b.iter(|| verify_evaluation(commitment, black_box(&blinded), z0, proof0))
    });
    let node_key = SoftwareShareKey::generate(rng);
    let recipient = node_key.public();
    let reset_key = ResetKey::derive(&ExportKey::take_from(&mut [7u8; 64]).expect("64 bytes"));
    let context = ShareContext {
        cluster_name: "bkv-local".into(),
        account: account.clone(),
        node_id: 1,
        guess_limit: 10,
        reset_key: [7; 32],
        commitment: shares[0].1,
    };
    let ciphertext = encrypt_share(&recipient, &shares[0].0, &context, rng);
    let z = node_key
        .diffie_hellman(ciphertext.ephemeral_public())
        .expect("ecdh");
    g.bench_function("open_share", |b| {
        b.iter(|| open_share(black_box(&z), &ciphertext, &recipient, &context))
    });
    g.bench_function("p256_ecdh_software", |b| {
        b.iter(|| node_key.diffie_hellman(black_box(ciphertext.ephemeral_public())))
    });
    let message = reset_message(
        &context.cluster_name,
        &account,
        RecordVersion(1000),
        ChargeNumber(3),
    );
    let signature = reset_key.sign(&message);
    let public = reset_key.public();
    g.bench_function("reset_verify", |b| {
        b.iter(|| verify_reset(&public, black_box(&message), &signature))
    });
    g.finish();

    let mut g = c.benchmark_group("share_map");
    let identity = fixtures::identity().verifying_key().to_bytes();
    for holders in [3u64, 5] {
        let signed = fixtures::share_map(1, holders);
        g.bench_function(format!("verify/{holders}_holders"), |b| {
            b.iter(|| black_box(&signed).verify(&identity).expect("verifies"))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("oprf_client");
    g.bench_function("blind", |b| {
        b.iter(|| Blind::start(black_box(&input), &mut OsRng))
    });
    g.bench_function("combine/t2", |b| {
        b.iter(|| combine(black_box(&evaluations[..2])))
    });
    g.bench_function("combine/t3", |b| {
        b.iter(|| combine(black_box(&evaluations[..3])))
    });
    let combined = combine(&evaluations[..3]).expect("combine");
    g.bench_function("finish", |b| {
        b.iter_batched(
            || Blind::start(&input, &mut OsRng).expect("blind").0,
            |blind| blind.finish(&input, black_box(&combined)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("evaluate_directly", |b| {
        b.iter(|| evaluate_directly(&key, black_box(&input)))
    });
    g.bench_function("split/3_of_5", |b| {
        b.iter(|| split(&key, black_box(&[1, 2, 3, 4, 5]), 3, &mut OsRng))
    });
    g.bench_function("encrypt_share", |b| {
        b.iter(|| encrypt_share(&recipient, &shares[0].0, black_box(&context), &mut OsRng))
    });
    g.bench_function("reset_sign", |b| {
        b.iter(|| reset_key.sign(black_box(&message)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
