//! The node's small HTTP port: `/healthz` (the process is up), `/readyz` (it serves clients;
//! 503 with the reason otherwise), `/metrics` (Prometheus text format) and `PUT /log-level`
//! (body: a tracing filter such as `debug`). Plain HTTP: keep it on a private interface.

use std::future::Future;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, put};

use crate::metrics::Metrics;
use crate::node::{Node, Readiness};

#[derive(Clone)]
struct AppState {
    node: Node,
    metrics: Metrics,
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    match &*s.node.readiness().borrow() {
        Readiness::Serving => (StatusCode::OK, "serving\n".to_string()),
        Readiness::NotServing(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not serving: {reason}\n"),
        ),
    }
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

async fn log_level(body: String) -> impl IntoResponse {
    match crate::logging::set_level(body.trim()) {
        Ok(()) => (
            StatusCode::OK,
            format!("log level set to {}\n", body.trim()),
        ),
        Err(e) => (StatusCode::BAD_REQUEST, format!("bad filter: {e}\n")),
    }
}

/// Serves the HTTP port until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    node: Node,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(self::metrics))
        .route("/log-level", put(log_level));
    #[cfg(feature = "failpoints")]
    let app = crate::failpoints::routes(app);
    let app = app.with_state(AppState { node, metrics });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
