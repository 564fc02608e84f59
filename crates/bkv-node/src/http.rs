//! The node's small HTTP port: `/healthz` (the process is up), `/readyz` (it serves clients;
//! 503 with the reason otherwise), `/metrics` (Prometheus text format) and `PUT /log-level`
//! (body: a tracing filter such as `debug`). Plain HTTP: keep it on a private interface.
//!
//! Reads are open. Writes (`PUT /log-level`, and `PUT`/`DELETE /failpoints` in test builds)
//! are off unless `http.write_token_file` is set, and then need `Authorization: Bearer
//! <token>` ([`WriteToken`]): 403 when writes are off, 401 without the right token.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::metrics::Metrics;
use crate::node::{Node, Readiness};

/// Shortest write token accepted, characters.
pub const MIN_WRITE_TOKEN_LEN: usize = 16;

/// The bearer token that writes on the HTTP port must carry. Never logged.
#[derive(Clone)]
pub struct WriteToken(Arc<Zeroizing<String>>);

impl std::fmt::Debug for WriteToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteToken(..)")
    }
}

impl WriteToken {
    /// The token in `path` (surrounding whitespace trimmed).
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text =
            Zeroizing::new(std::fs::read_to_string(path).with_context(|| {
                format!("http.write_token_file: cannot read {}", path.display())
            })?);
        Self::new(text.trim())
    }

    /// `token`, if it is long enough and has no whitespace or control characters.
    pub fn new(token: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            token.chars().count() >= MIN_WRITE_TOKEN_LEN,
            "http.write_token_file: the token must have at least {MIN_WRITE_TOKEN_LEN} \
             characters (for example 32 random bytes in hex)"
        );
        anyhow::ensure!(
            token.chars().all(|c| c.is_ascii_graphic()),
            "http.write_token_file: the token must be printable ASCII without spaces"
        );
        Ok(Self(Arc::new(Zeroizing::new(token.to_string()))))
    }

    /// Whether `header` (an `Authorization` value) carries this token; constant time in the
    /// token's bytes.
    fn admits(&self, header: Option<&[u8]>) -> bool {
        let Some(presented) = header.and_then(|h| h.strip_prefix(b"Bearer ")) else {
            return false;
        };
        presented.ct_eq(self.0.as_bytes()).into()
    }
}

/// Lets reads through, and writes only with the token.
async fn guard_writes(
    State(token): State<Option<WriteToken>>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let Some(token) = token else {
        return (
            StatusCode::FORBIDDEN,
            "writes on the HTTP port are off: set http.write_token_file\n",
        )
            .into_response();
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if !token.admits(presented) {
        tracing::warn!(method = %request.method(), path = %request.uri().path(), "HTTP write refused: no or wrong bearer token");
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a write needs Authorization: Bearer <http.write_token_file>\n",
        )
            .into_response();
    }
    next.run(request).await
}

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

/// Serves the HTTP port until `shutdown` resolves; writes need `write_token` (none: no
/// writes).
pub async fn serve(
    listener: tokio::net::TcpListener,
    node: Node,
    metrics: Metrics,
    write_token: Option<WriteToken>,
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
    axum::serve(listener, guarded(app, write_token))
        .with_graceful_shutdown(shutdown)
        .await
}

/// `app` behind the write guard.
fn guarded(app: Router, write_token: Option<WriteToken>) -> Router {
    app.layer(middleware::from_fn_with_state(write_token, guard_writes))
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A router with a read and a write route, behind the guard, on a loopback port.
    async fn start(token: Option<WriteToken>) -> std::net::SocketAddr {
        let app = Router::new()
            .route("/metrics", get(|| async { "metrics\n" }))
            .route(
                "/log-level",
                put(|body: String| async move { format!("set {body}\n") }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, guarded(app, token)).await;
        });
        addr
    }

    /// Sends one request; returns the status code and body.
    async fn send(
        addr: std::net::SocketAddr,
        method: &str,
        path: &str,
        auth: Option<&str>,
    ) -> (u16, String) {
        let body = "debug";
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let code = answer[9..12].parse().unwrap();
        let body = answer
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_string();
        (code, body)
    }

    #[tokio::test]
    async fn without_a_token_file_writes_are_off_and_reads_are_open() {
        let addr = start(None).await;
        assert_eq!(
            send(addr, "GET", "/metrics", None).await,
            (200, "metrics\n".into())
        );
        let (code, body) = send(
            addr,
            "PUT",
            "/log-level",
            Some("Bearer anything-at-all-here"),
        )
        .await;
        assert_eq!(code, 403);
        assert!(body.contains("http.write_token_file"), "{body}");
        // Every write method, on any path, unknown ones included.
        assert_eq!(send(addr, "DELETE", "/failpoints", None).await.0, 403);
        assert_eq!(send(addr, "POST", "/nowhere", None).await.0, 403);
    }

    #[tokio::test]
    async fn with_a_token_file_writes_need_the_bearer_token() {
        let token = "0123456789abcdef0123456789abcdef";
        let addr = start(Some(WriteToken::new(token).unwrap())).await;
        assert_eq!(send(addr, "PUT", "/log-level", None).await.0, 401);
        for wrong in [
            "Bearer 0123456789abcdef0123456789abcdee",
            "Bearer 0123456789abcdef",
            "Basic 0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(
                send(addr, "PUT", "/log-level", Some(wrong)).await.0,
                401,
                "{wrong}"
            );
        }
        let right = format!("Bearer {token}");
        assert_eq!(
            send(addr, "PUT", "/log-level", Some(&right)).await,
            (200, "set debug\n".into())
        );
        assert_eq!(send(addr, "GET", "/metrics", None).await.0, 200);
    }

    #[test]
    fn short_or_spaced_tokens_are_refused_and_debug_hides_the_token() {
        assert!(WriteToken::new("short").is_err());
        assert!(WriteToken::new("has a space in the middle of it").is_err());
        let t = WriteToken::new("0123456789abcdef0123").unwrap();
        assert_eq!(format!("{t:?}"), "WriteToken(..)");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  0123456789abcdef0123\n").unwrap();
        assert!(
            WriteToken::from_file(&path)
                .unwrap()
                .admits(Some(b"Bearer 0123456789abcdef0123"))
        );
        let err = WriteToken::from_file(&dir.path().join("missing")).unwrap_err();
        assert!(
            format!("{err:#}").contains("http.write_token_file"),
            "{err:#}"
        );
    }
}
