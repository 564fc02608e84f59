//! Test builds only (feature `failpoints`): the `/failpoints` routes of the HTTP port, to set
//! failpoints in a running node. `GET` lists them with their fire counts, `PUT` applies a
//! spec (`log_append=error;hsm_seal=sleep(300)`, see `bkv_failpoints`), `DELETE` turns them
//! all off. Never compiled into a default or release build.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

async fn list() -> String {
    bkv_failpoints::describe()
}

async fn set(body: String) -> (StatusCode, String) {
    match bkv_failpoints::configure(body.trim()) {
        Ok(()) => (StatusCode::OK, bkv_failpoints::describe()),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")),
    }
}

async fn clear() -> String {
    bkv_failpoints::clear();
    bkv_failpoints::describe()
}

/// Adds the `/failpoints` routes, and reads `BKV_FAILPOINTS` now so that the log shows what
/// it set at start.
pub fn routes<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    tracing::warn!("this bkv-node was built with failpoints: a test build, not for production");
    bkv_failpoints::init();
    router.route("/failpoints", get(list).put(set).delete(clear))
}
