//! [`InFlightLimit`]: a tower layer on the client port that bounds the vault requests being
//! handled at once, over all connections (`limits.max_client_requests_in_flight`). A request
//! past the bound is answered UNAVAILABLE at once, without being decoded (naming the leader
//! when another node leads, as every UNAVAILABLE answer does), so that an SDK client tries
//! another node; health checks and reflection are never held back.
//!
//! Every request a node handles holds memory (its decoded message, its place in the leader's
//! group-commit queue, a task) until it is answered; connections times streams per
//! connection alone would allow a million of them.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::codegen::http;

use crate::error::VaultError;
use crate::metrics::Metrics;

/// The gRPC path prefix of the requests the limit applies to.
const LIMITED_PREFIX: &str = "/bkv.v1.Vault/";

/// Where an answer sends the client: the leader's client address, when another node leads.
pub type LeaderHint = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// The layer: one shared bound for every connection's service.
#[derive(Clone)]
pub struct InFlightLimit {
    permits: Arc<Semaphore>,
    max: usize,
    metrics: Option<Metrics>,
    leader: LeaderHint,
}

impl std::fmt::Debug for InFlightLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlightLimit")
            .field("max", &self.max)
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

impl InFlightLimit {
    /// At most `max` vault requests at once; `metrics` counts those shed, `leader` names the
    /// node they are sent to.
    pub fn new(max: usize, metrics: Option<Metrics>, leader: LeaderHint) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
            metrics,
            leader,
        }
    }

    /// Requests being handled now.
    pub fn in_flight(&self) -> usize {
        self.max - self.permits.available_permits()
    }
}

impl<S> tower::Layer<S> for InFlightLimit {
    type Service = InFlightService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InFlightService {
            inner,
            limit: self.clone(),
        }
    }
}

/// The service [`InFlightLimit`] wraps around the client port's routes.
#[derive(Debug, Clone)]
pub struct InFlightService<S> {
    inner: S,
    limit: InFlightLimit,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for InFlightService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let permit: Option<OwnedSemaphorePermit> =
            if request.uri().path().starts_with(LIMITED_PREFIX) {
                match self.limit.permits.clone().try_acquire_owned() {
                    Ok(permit) => Some(permit),
                    Err(_) => {
                        if let Some(m) = &self.limit.metrics {
                            m.client_request_shed();
                        }
                        let status = tonic::Status::from(VaultError::Unavailable {
                            reason: format!(
                                "node overloaded: {} requests in flight \
                                 (limits.max_client_requests_in_flight); try another node",
                                self.limit.max
                            ),
                            leader_hint: (self.limit.leader)(),
                        });
                        return Box::pin(std::future::ready(Ok(status.into_http())));
                    }
                }
            } else {
                None
            };
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await;
            drop(permit);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use tower::{Layer as _, Service as _};

    use super::*;

    /// A service that answers after `delay`.
    #[derive(Clone)]
    struct Slow(Duration);

    impl tower::Service<http::Request<()>> for Slow {
        type Response = http::Response<String>;
        type Error = Infallible;
        type Future = BoxFuture<Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _request: http::Request<()>) -> Self::Future {
            let delay = self.0;
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                Ok(http::Response::new("answered".to_string()))
            })
        }
    }

    fn request(path: &str) -> http::Request<()> {
        http::Request::builder()
            .uri(format!("http://node{path}"))
            .body(())
            .unwrap()
    }

    fn grpc_status(response: &http::Response<String>) -> Option<&str> {
        response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
    }

    fn no_leader() -> LeaderHint {
        Arc::new(|| None)
    }

    #[tokio::test]
    async fn past_the_bound_vault_calls_are_unavailable_and_health_checks_pass() {
        let limit = InFlightLimit::new(2, None, Arc::new(|| Some("10.0.0.2:7101".into())));
        let mut service = limit.layer(Slow(Duration::from_millis(300)));
        let held: Vec<_> = (0..2)
            .map(|_| service.call(request("/bkv.v1.Vault/RecoverStart")))
            .collect();
        assert_eq!(limit.in_flight(), 2);

        // The third is answered at once, UNAVAILABLE (gRPC code 14), before the others end.
        let shed = tokio::time::timeout(
            Duration::from_millis(100),
            service.call(request("/bkv.v1.Vault/Status")),
        )
        .await
        .expect("answered at once")
        .unwrap();
        assert_eq!(grpc_status(&shed), Some("14"));
        // It names the leader, as every UNAVAILABLE answer does.
        assert_eq!(
            shed.headers()
                .get(bkv_proto::contract::LEADER)
                .and_then(|v| v.to_str().ok()),
            Some("10.0.0.2:7101")
        );
        // Health is not limited.
        let health = service
            .call(request("/grpc.health.v1.Health/Check"))
            .await
            .unwrap();
        assert_eq!(health.body(), "answered");

        for answer in held {
            assert_eq!(answer.await.unwrap().body(), "answered");
        }
        assert_eq!(limit.in_flight(), 0);
        // Room again.
        let again = service.call(request("/bkv.v1.Vault/Status")).await.unwrap();
        assert_eq!(again.body(), "answered");
    }

    #[tokio::test]
    async fn a_dropped_call_gives_its_place_back() {
        let limit = InFlightLimit::new(1, None, no_leader());
        let mut service = limit.layer(Slow(Duration::from_secs(60)));
        let call = service.call(request("/bkv.v1.Vault/RecoverStart"));
        assert_eq!(limit.in_flight(), 1);
        drop(call);
        assert_eq!(limit.in_flight(), 0);
    }
}
