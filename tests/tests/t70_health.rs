//! gRPC health checking and server reflection on the client port (TLS), across a node's life:
//! a node started outside any cluster says NOT_SERVING; once joined it says SERVING for
//! `bkv.v1.Vault` and for the server as a whole (""); on SIGTERM a `Watch` stream sees
//! NOT_SERVING before the port closes and the node exits 0; a survivor of a lost quorum says
//! NOT_SERVING and SERVING again after healing. Reflection lists the three bkv services.

use std::time::{Duration, Instant};

use bkv_tests::{Cluster, wait_for};
use tokio_stream::StreamExt as _;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

const VAULT: &str = "bkv.v1.Vault";
/// Both names the node reports: the vault service and the server as a whole.
const NAMES: [&str; 2] = [VAULT, ""];

/// `Check` for `service`: the status, or the gRPC error.
async fn check(channel: Channel, service: &str) -> Result<ServingStatus, tonic::Status> {
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await?
        .into_inner();
    ServingStatus::try_from(answer.status)
        .map_err(|_| tonic::Status::internal(format!("unknown status {}", answer.status)))
}

/// Waits until `Check` gives `want` for both names on `channel`.
async fn wait_status(
    channel: &Channel,
    want: ServingStatus,
    what: &str,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    wait_for(what, timeout, Duration::from_millis(50), || async {
        for name in NAMES {
            let got = check(channel.clone(), name).await?;
            if got != want {
                anyhow::bail!("{name:?}: {got:?}");
            }
        }
        Ok(Some(()))
    })
    .await?;
    Ok(started.elapsed())
}

/// One reflection request, its first answer.
async fn reflect(channel: Channel, request: MessageRequest) -> anyhow::Result<MessageResponse> {
    let requests = tokio_stream::iter([ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    }]);
    let mut answers = ServerReflectionClient::new(channel)
        .server_reflection_info(requests)
        .await?
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), answers.next())
        .await
        .map_err(|_| anyhow::anyhow!("no reflection answer within 5 s"))?
        .ok_or_else(|| anyhow::anyhow!("the reflection stream ended without an answer"))??;
    first
        .message_response
        .ok_or_else(|| anyhow::anyhow!("a reflection answer without a response"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_follows_init_quorum_and_shutdown_and_reflection_lists_the_services()
-> anyhow::Result<()> {
    let mut cluster = Cluster::start(3).await?;
    wait_status(
        &cluster.client_channel(1)?,
        ServingStatus::Serving,
        "node 1 SERVING",
        Duration::from_secs(5),
    )
    .await?;

    // Phase 1: reflection on the client port lists the three bkv services.
    let listed = reflect(
        cluster.client_channel(2)?,
        MessageRequest::ListServices(String::new()),
    )
    .await?;
    let MessageResponse::ListServicesResponse(list) = listed else {
        anyhow::bail!("ListServices answered {listed:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    println!("reflection lists {names:?}");
    for want in [
        "bkv.v1.Vault",
        "bkv.v1.Admin",
        "bkv.v1.Raft",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    let file = reflect(
        cluster.client_channel(2)?,
        MessageRequest::FileContainingSymbol("bkv.v1.Vault.RecoverStart".into()),
    )
    .await?;
    let MessageResponse::FileDescriptorResponse(file) = file else {
        anyhow::bail!("FileContainingSymbol answered {file:?}");
    };
    let has_vault_proto = file
        .file_descriptor_proto
        .iter()
        .any(|d| d.windows(18).any(|w| w == b"bkv/v1/vault.proto"));
    assert!(has_vault_proto, "no descriptor of bkv/v1/vault.proto");
    let unknown = reflect(
        cluster.client_channel(2)?,
        MessageRequest::FileContainingSymbol("no.such.Service".into()),
    )
    .await;
    let refused = match &unknown {
        Ok(MessageResponse::ErrorResponse(_)) => true,
        Ok(_) => false,
        Err(e) => e
            .downcast_ref::<tonic::Status>()
            .is_some_and(|s| s.code() == tonic::Code::NotFound),
    };
    assert!(refused, "an unknown symbol: {unknown:?}");

    // Phase 2: a node started outside any cluster (before init or join) is NOT_SERVING,
    // and says so on every check.
    let started = Instant::now();
    let fresh = cluster.spawn_node().await?;
    let fresh_channel = cluster.client_channel(fresh)?;
    wait_status(
        &fresh_channel,
        ServingStatus::NotServing,
        "a fresh node NOT_SERVING",
        Duration::from_secs(5),
    )
    .await?;
    for _ in 0..5 {
        for name in NAMES {
            assert_eq!(
                check(fresh_channel.clone(), name).await?,
                ServingStatus::NotServing
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let unknown = check(fresh_channel.clone(), "no.such.Service").await;
    assert_eq!(
        unknown.err().map(|s| s.code()),
        Some(tonic::Code::NotFound),
        "a service the node does not report"
    );
    println!(
        "node {fresh} NOT_SERVING before joining ({} ms after its start)",
        started.elapsed().as_millis()
    );

    // Phase 3: joined through the ceremony, it says SERVING.
    cluster.join(fresh).await?;
    let took = wait_status(
        &fresh_channel,
        ServingStatus::Serving,
        "the joined node SERVING",
        Duration::from_secs(15),
    )
    .await?;
    println!(
        "node {fresh} SERVING {} ms after add-node ended",
        took.as_millis()
    );

    // Phase 4: SIGTERM. A Watch stream opened before sees SERVING, then NOT_SERVING, then
    // the end of the connection; the node exits 0.
    let mut watch = HealthClient::new(fresh_channel.clone())
        .watch(HealthCheckRequest {
            service: VAULT.into(),
        })
        .await?
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), watch.next()).await;
    let first = first
        .map_err(|_| anyhow::anyhow!("no first Watch answer"))?
        .ok_or_else(|| anyhow::anyhow!("Watch ended at once"))??;
    assert_eq!(first.status, ServingStatus::Serving as i32);
    let watcher = tokio::spawn(async move {
        let started = Instant::now();
        let mut seen = Vec::new();
        // Bounded: the stream ends with the node, and in any case after 30 s.
        while started.elapsed() < Duration::from_secs(30) {
            match tokio::time::timeout(Duration::from_secs(30), watch.next()).await {
                Ok(Some(Ok(answer))) => seen.push((started.elapsed(), Ok(answer.status))),
                Ok(Some(Err(status))) => {
                    seen.push((started.elapsed(), Err(status.code())));
                    break;
                }
                Ok(None) | Err(_) => break,
            }
        }
        (seen, started.elapsed())
    });
    let term_at = Instant::now();
    cluster.sigterm(fresh).await?;
    let exited = term_at.elapsed();
    let (seen, stream_end) = tokio::time::timeout(Duration::from_secs(35), watcher).await??;
    println!(
        "SIGTERM: exit 0 after {} ms; Watch saw {seen:?}, stream over after {} ms",
        exited.as_millis(),
        stream_end.as_millis()
    );
    let not_serving_at = seen
        .iter()
        .find(|(_, s)| *s == Ok(ServingStatus::NotServing as i32))
        .map(|(at, _)| *at)
        .ok_or_else(|| anyhow::anyhow!("Watch never saw NOT_SERVING: {seen:?}"))?;
    assert!(
        not_serving_at <= stream_end && not_serving_at < exited,
        "NOT_SERVING seen at {not_serving_at:?}, after the stream ended or the node exited"
    );
    assert!(
        !seen
            .iter()
            .any(|(_, s)| *s == Ok(ServingStatus::Serving as i32)),
        "SERVING again during shutdown: {seen:?}"
    );
    assert!(
        exited < Duration::from_secs(5),
        "a health Watch stream held the shutdown for {} ms",
        exited.as_millis()
    );
    let gone = check(fresh_channel.clone(), VAULT).await;
    assert!(gone.is_err(), "the stopped node still answers: {gone:?}");
    cluster.remove_node(fresh).await?;
    cluster
        .wait_voters(&[1, 2, 3], Duration::from_secs(10))
        .await?;

    // Phase 5: no quorum. Two of three stop: the survivor says NOT_SERVING; back together,
    // everyone says SERVING.
    let leader = cluster.leader(Duration::from_secs(10)).await?;
    let others: Vec<u64> = cluster.ids().into_iter().filter(|i| *i != leader).collect();
    let survivor = others[0];
    let survivor_channel = cluster.client_channel(survivor)?;
    cluster.kill9(leader)?;
    cluster.kill9(others[1])?;
    let took = wait_status(
        &survivor_channel,
        ServingStatus::NotServing,
        "the survivor NOT_SERVING",
        Duration::from_secs(15),
    )
    .await?;
    println!(
        "survivor {survivor} NOT_SERVING {} ms after two of three were killed",
        took.as_millis()
    );
    cluster.restart(leader).await?;
    cluster.restart(others[1]).await?;
    for id in cluster.ids() {
        let took = wait_status(
            &cluster.client_channel(id)?,
            ServingStatus::Serving,
            "SERVING after healing",
            Duration::from_secs(30),
        )
        .await?;
        println!("node {id} SERVING again after {} ms", took.as_millis());
    }
    Ok(())
}
