//! Many tokio tasks sealing and unsealing at once through one partition.

use std::time::Duration;

use bkv_core::SealPurpose;
use bkv_hsm::testing::TestToken;

const TASKS: usize = 64;
const OPS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_seal_unseal_are_all_correct() {
    let token = TestToken::new();
    let p = token.open().await;
    p.generate_cluster_key().await.expect("generate");
    let mut tasks = Vec::with_capacity(TASKS);
    for t in 0..TASKS {
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0usize;
            for i in 0..OPS {
                let aad = format!("task {t} op {i}");
                let plain = format!("plaintext {t}/{i}").repeat(1 + i % 5);
                let purpose = if i % 2 == 0 {
                    SealPurpose::Record
                } else {
                    SealPurpose::Ticket
                };
                let blob = p.seal(purpose, aad.as_bytes(), plain.as_bytes()).await?;
                let opened = p.unseal(purpose, aad.as_bytes(), &blob).await?;
                assert_eq!(opened.as_slice(), plain.as_bytes(), "task {t} op {i}");
                ok += 1;
            }
            Ok::<usize, bkv_core::SealError>(ok)
        }));
    }
    let all = tokio::time::timeout(Duration::from_secs(120), futures_join(tasks))
        .await
        .expect("finished in time");
    assert_eq!(all, TASKS * OPS);
}

async fn futures_join(
    tasks: Vec<tokio::task::JoinHandle<Result<usize, bkv_core::SealError>>>,
) -> usize {
    let mut total = 0;
    for task in tasks {
        total += task
            .await
            .expect("task panicked")
            .expect("seal/unseal failed");
    }
    total
}

/// The security-officer step logs the user out of the whole token: the gate must hold the
/// workers back meanwhile, so that sealing under load never sees a logged-out session.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn so_step_under_load_disturbs_no_one() {
    let (ta, tb) = TestToken::pair();
    let (pa, pb) = (ta.open().await, tb.open().await);
    pa.generate_cluster_key().await.expect("generate");
    let eb = pb.enrollment_key().await.expect("enrollment key");
    let mut tasks = Vec::new();
    for t in 0..16 {
        let p = pa.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0usize;
            for i in 0..OPS {
                let aad = format!("load {t}/{i}");
                let blob = p
                    .seal(SealPurpose::Record, aad.as_bytes(), b"under load")
                    .await?;
                let opened = p.unseal(SealPurpose::Record, aad.as_bytes(), &blob).await?;
                assert_eq!(opened.as_slice(), b"under load");
                ok += 1;
            }
            Ok::<usize, bkv_core::SealError>(ok)
        }));
    }
    let fp = tokio::time::timeout(
        Duration::from_secs(60),
        pa.trust_enrollment_key(&eb.spki_der),
    )
    .await
    .expect("in time")
    .expect("trust");
    let total = tokio::time::timeout(Duration::from_secs(120), futures_join(tasks))
        .await
        .expect("finished in time");
    assert_eq!(total, 16 * OPS);
    pa.wrap_cluster_key_for(&fp)
        .await
        .expect("wrap after trust");
}
