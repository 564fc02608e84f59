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
