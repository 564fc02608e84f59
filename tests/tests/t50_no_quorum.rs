//! Without a quorum nothing is released: with two of three nodes down (one killed, one
//! frozen), recovery through the survivor fails with UNAVAILABLE and no share evaluation (no
//! password test) leaves the node, registration fails too, and the survivor's `/readyz` says 503. When the
//! nodes come back, the cluster serves again and the key is recoverable.

use std::time::{Duration, Instant};

use bkv_client::VaultError;
use bkv_tests::{Cluster, ClusterOptions, account, password, raw, wait_for};

const RIGHT: &str = "correct horse battery staple";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_of_three_down_no_recovery_no_registration_not_ready() -> anyhow::Result<()> {
    let mut options = ClusterOptions::new(3);
    // A node holds a write up to write_timeout_ms waiting for a leader (to ride out an
    // election), then answers UNAVAILABLE. Short here, and each client call waits longer
    // than that, so that the node's own answer is what the test sees.
    options.write_timeout_ms = 1_000;
    options.client_call_timeout = Duration::from_secs(3);
    options.client_deadline = Duration::from_secs(4);
    let mut cluster = Cluster::start_with(options).await?;
    let all = cluster.ids();
    let alice = cluster.vault(&all, "alice").await?;
    let registered = alice
        .register(&account("alice"), password(RIGHT), None)
        .await?;

    // Phase 1: the survivor is a follower; the leader is killed, the other follower frozen.
    let leader = cluster.leader(Duration::from_secs(10)).await?;
    let followers: Vec<u64> = all.iter().copied().filter(|i| *i != leader).collect();
    let (survivor, frozen) = (followers[0], followers[1]);
    cluster
        .wait_digests_equal(&all, Duration::from_secs(10))
        .await?;
    cluster.kill9(leader)?;
    cluster.sigstop(frozen)?;
    let lost_at = Instant::now();
    // At once, before the survivor notices: the charge cannot commit, nothing comes back.
    let token = cluster.token("alice");
    let answer = raw::recover_start(
        cluster.client_channel(survivor)?,
        Some(&token),
        &account("alice"),
        RIGHT,
    )
    .await?;
    let early = answer.err().ok_or_else(|| {
        anyhow::anyhow!("RecoverStart answered with evaluations right after the loss")
    })?;
    assert_eq!(early.code(), tonic::Code::Unavailable, "{early:?}");

    // Phase 2: the survivor stops serving.
    let node = cluster.node(survivor)?;
    let not_ready = wait_for(
        "the survivor's /readyz to say 503",
        Duration::from_secs(15),
        Duration::from_millis(50),
        || async {
            let answer = node.readyz().await?;
            Ok((answer.status == 503).then_some(answer))
        },
    )
    .await?;
    println!(
        "survivor {survivor} not ready {} ms after losing quorum: {}",
        lost_at.elapsed().as_millis(),
        not_ready.body.trim()
    );
    assert!(
        not_ready.body.starts_with("not serving"),
        "{}",
        not_ready.body
    );

    // Phase 3: recovery fails, through the SDK and below it, with nothing released.
    let pinned = cluster.vault(&[survivor], "alice").await?;
    let started = Instant::now();
    let err = pinned
        .recover(&account("alice"), password(RIGHT))
        .await
        .err();
    assert!(
        matches!(err, Some(VaultError::Unavailable { .. })),
        "recover without quorum: {err:?}"
    );
    println!(
        "SDK recover gave up after {} ms: {err:?}",
        started.elapsed().as_millis()
    );
    for attempt in 0..3 {
        let answer = raw::recover_start(
            cluster.client_channel(survivor)?,
            Some(&token),
            &account("alice"),
            RIGHT,
        )
        .await?;
        match answer {
            Ok(r) => panic!(
                "RecoverStart without quorum answered (attempt {attempt}): {} evaluations",
                r.evaluations.len()
            ),
            Err(status) => assert_eq!(
                status.code(),
                tonic::Code::Unavailable,
                "attempt {attempt}: {status:?}"
            ),
        }
    }

    // Phase 4: registration fails too.
    let bob = cluster.vault(&[survivor], "bob").await?;
    let err = bob
        .register(&account("bob"), password(RIGHT), None)
        .await
        .err();
    assert!(
        matches!(err, Some(VaultError::Unavailable { .. })),
        "register without quorum: {err:?}"
    );

    // Phase 5: healing: the frozen node thaws, the killed one restarts; the key comes back.
    let healing = Instant::now();
    cluster.sigcont(frozen)?;
    cluster.restart(leader).await?;
    for id in &all {
        cluster.wait_serving(*id, Duration::from_secs(30)).await?;
    }
    let healed = cluster.vault(&[survivor], "alice").await?;
    let back = wait_for(
        "recovery after healing",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            Ok(Some(
                healed.recover(&account("alice"), password(RIGHT)).await?,
            ))
        },
    )
    .await?;
    assert_eq!(back.key, registered.key);
    println!(
        "healed: key recovered {} ms after the frozen node thawed and the killed one restarted",
        healing.elapsed().as_millis()
    );
    cluster
        .wait_digests_equal(&all, Duration::from_secs(15))
        .await?;
    Ok(())
}
