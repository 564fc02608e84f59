//! Prometheus metrics of a node, served on `/metrics` of the HTTP port: requests by method
//! and status, latency, guesses charged, records destroyed, recoveries, Raft progress and
//! serving state.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tonic::{Code, Response, Status};

use bkv_vault::{CallReport, VaultError};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    method: &'static str,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FollowerLabels {
    follower: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HsmLabels {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HsmErrorLabels {
    op: &'static str,
    error: &'static str,
}

struct Inner {
    registry: Registry,
    requests: Family<CallLabels, Counter>,
    latency: Family<MethodLabels, Histogram>,
    guesses_charged: Counter,
    records_destroyed: Counter,
    recoveries: Counter,
    serving: Gauge,
    raft_term: Gauge,
    raft_leader: Gauge,
    raft_is_leader: Gauge,
    raft_last_log_index: Gauge,
    raft_applied_index: Gauge,
    raft_apply_lag: Gauge,
    raft_follower_lag: Family<FollowerLabels, Gauge>,
    raft_snapshot_index: Gauge,
    snapshot_bytes: Gauge<u64, AtomicU64>,
    hsm_latency: Family<HsmLabels, Histogram>,
    hsm_errors: Family<HsmErrorLabels, Counter>,
    share_evaluations: Family<ResultLabels, Counter>,
    share_holder_failures: Counter,
    shares_held: Gauge<u64, AtomicU64>,
    share_repair_steps: Family<RepairLabels, Counter>,
    shares_repaired: Counter,
    shares_refreshed: Counter,
    share_refresh_passes: Family<TriggerLabels, Counter>,
    shares_missing: Gauge<u64, AtomicU64>,
    client_connections: Gauge,
    client_connections_refused: Family<ReasonLabels, Counter>,
    client_requests_shed: Counter,
    audit_records_dropped: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabels {
    trigger: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RepairLabels {
    step: &'static str,
    result: &'static str,
}

/// The node's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every bkv metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("bkv");
        let requests = Family::<CallLabels, Counter>::default();
        registry.register(
            "requests",
            "gRPC requests by method and status code",
            requests.clone(),
        );
        let latency = Family::<MethodLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
        });
        registry.register(
            "request_duration_seconds",
            "gRPC request latency",
            latency.clone(),
        );
        let guesses_charged = Counter::default();
        registry.register(
            "guesses_charged",
            "Guesses charged and answered with a credential response",
            guesses_charged.clone(),
        );
        let records_destroyed = Counter::default();
        registry.register(
            "records_destroyed",
            "Records destroyed after their last guess (seen by this node's calls)",
            records_destroyed.clone(),
        );
        let recoveries = Counter::default();
        registry.register(
            "recoveries",
            "Successful recoveries served",
            recoveries.clone(),
        );
        let serving = Gauge::default();
        registry.register("serving", "1 when the node serves clients", serving.clone());
        let raft_term = Gauge::default();
        registry.register("raft_term", "Current Raft term", raft_term.clone());
        let raft_leader = Gauge::default();
        registry.register(
            "raft_leader",
            "Node id of the known leader (0: none)",
            raft_leader.clone(),
        );
        let raft_is_leader = Gauge::default();
        registry.register(
            "raft_is_leader",
            "1 when this node leads",
            raft_is_leader.clone(),
        );
        let raft_last_log_index = Gauge::default();
        registry.register(
            "raft_last_log_index",
            "Last log index",
            raft_last_log_index.clone(),
        );
        let raft_applied_index = Gauge::default();
        registry.register(
            "raft_applied_index",
            "Last applied index",
            raft_applied_index.clone(),
        );
        let raft_apply_lag = Gauge::default();
        registry.register(
            "raft_apply_lag",
            "Log entries not yet applied (last log index - applied index)",
            raft_apply_lag.clone(),
        );
        let raft_follower_lag = Family::<FollowerLabels, Gauge>::default();
        registry.register(
            "raft_follower_lag",
            "On the leader, per follower: log entries the follower has not acknowledged (last log \
             index - the follower's matched index; the whole log if it matched nothing). A lag \
             that keeps growing names a follower whose appends fail or time out",
            raft_follower_lag.clone(),
        );
        let raft_snapshot_index = Gauge::default();
        registry.register(
            "raft_snapshot_index",
            "Last log index in the newest snapshot",
            raft_snapshot_index.clone(),
        );
        let snapshot_bytes = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "snapshot_bytes",
            "Size of the newest snapshot on disk (the encoded state), in bytes",
            snapshot_bytes.clone(),
        );
        let hsm_latency = Family::<HsmLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_02, 2.0, 16))
        });
        registry.register(
            "hsm_op_duration_seconds",
            "Latency of HSM sealing operations",
            hsm_latency.clone(),
        );
        let hsm_errors = Family::<HsmErrorLabels, Counter>::default();
        registry.register(
            "hsm_errors",
            "HSM sealing operations that failed, by kind",
            hsm_errors.clone(),
        );
        let share_evaluations = Family::<ResultLabels, Counter>::default();
        registry.register(
            "share_evaluations",
            "OPRF share evaluations this node made (ok) or refused, for itself and its peers",
            share_evaluations.clone(),
        );
        let share_holder_failures = Counter::default();
        registry.register(
            "share_holder_failures",
            "Share-holders that failed or answered a proof that did not verify, in recoveries this node served",
            share_holder_failures.clone(),
        );
        let shares_held = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "shares_held",
            "Record versions this node holds an OPRF key share for (as of the last sweep)",
            shares_held.clone(),
        );
        let share_repair_steps = Family::<RepairLabels, Counter>::default();
        registry.register(
            "share_repair_steps",
            "Records of share repairs and refreshes this node took part in, by step (deal and \
             combine as a helper, take as the node repaired; refresh_deal and refresh_apply as \
             a participant of a refresh) and result (ok or refused)",
            share_repair_steps.clone(),
        );
        let shares_repaired = Counter::default();
        registry.register(
            "shares_repaired",
            "Shares this node got by share repair (AddShare applied)",
            shares_repaired.clone(),
        );
        let shares_refreshed = Counter::default();
        registry.register(
            "shares_refreshed",
            "Records whose shares a refresh pass run on this node refreshed (RefreshShares \
             applied)",
            shares_refreshed.clone(),
        );
        let share_refresh_passes = Family::<TriggerLabels, Counter>::default();
        registry.register(
            "share_refresh_passes",
            "Share refresh passes this node finished, by trigger (operator: Admin.RefreshShares; \
             schedule: recovery.share_refresh_interval_secs, while it leads)",
            share_refresh_passes.clone(),
        );
        let shares_missing = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "shares_missing",
            "Active records this node, a voter of the share map, holds no share of (as of the \
             last repair pass; 0 when repaired)",
            shares_missing.clone(),
        );
        let client_connections = Gauge::default();
        registry.register(
            "client_connections",
            "Client connections open (TLS handshakes included)",
            client_connections.clone(),
        );
        let client_connections_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "client_connections_refused",
            "Client connections closed at once: limit (max_client_connections) or \
             address_limit (max_client_connections_per_address)",
            client_connections_refused.clone(),
        );
        let client_requests_shed = Counter::default();
        registry.register(
            "client_requests_shed",
            "Vault requests answered UNAVAILABLE at once: max_client_requests_in_flight reached",
            client_requests_shed.clone(),
        );
        let audit_records_dropped = Counter::default();
        registry.register(
            "audit_records_dropped",
            "Audit records dropped because the audit queue was full (see records_dropped lines)",
            audit_records_dropped.clone(),
        );
        Self(Arc::new(Inner {
            share_evaluations,
            share_holder_failures,
            shares_held,
            share_repair_steps,
            shares_repaired,
            shares_refreshed,
            share_refresh_passes,
            shares_missing,
            registry,
            requests,
            latency,
            guesses_charged,
            records_destroyed,
            recoveries,
            serving,
            raft_term,
            raft_leader,
            raft_is_leader,
            raft_last_log_index,
            raft_applied_index,
            raft_apply_lag,
            raft_follower_lag,
            raft_snapshot_index,
            snapshot_bytes,
            hsm_latency,
            hsm_errors,
            client_connections,
            client_connections_refused,
            client_requests_shed,
            audit_records_dropped,
        }))
    }

    /// The registry in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.0.registry);
        out
    }

    /// Starts timing a call.
    pub fn begin_call(&self, method: &'static str) -> CallTimer {
        CallTimer {
            metrics: self.clone(),
            method,
            started: Instant::now(),
        }
    }

    /// Counts a finished call by method and code, records its latency, and logs a refusal
    /// (debug) or a failure of the node's own (error).
    pub fn call_finished(&self, call: &CallReport<'_>) {
        if let Some(e) = call.error {
            match e {
                VaultError::Internal(_) => {
                    tracing::error!(method = call.method, error = %e, "call failed")
                }
                _ => tracing::debug!(method = call.method, error = %e, "call refused"),
            }
        }
        let inner = &self.0;
        inner
            .requests
            .get_or_create(&CallLabels {
                method: call.method,
                code: format!("{:?}", call.code),
            })
            .inc();
        inner
            .latency
            .get_or_create(&MethodLabels {
                method: call.method,
            })
            .observe(call.elapsed.as_secs_f64());
    }

    /// One guess charged and answered.
    pub fn guess_charged(&self) {
        self.0.guesses_charged.inc();
    }

    /// One record destroyed by a call on this node.
    pub fn record_destroyed(&self) {
        self.0.records_destroyed.inc();
    }

    /// One share evaluation made (`ok`) or refused.
    pub fn share_evaluated(&self, ok: bool) {
        let result = if ok { "ok" } else { "refused" };
        self.0
            .share_evaluations
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// A share-holder failed in a recovery this node served.
    pub fn share_holder_failed(&self) {
        self.0.share_holder_failures.inc();
    }

    /// How many record versions this node holds shares for.
    pub fn set_shares_held(&self, n: u64) {
        self.0.shares_held.set(n);
    }

    /// Records of one repair step this node answered: how many ok, how many refused.
    pub fn repair_helped(&self, step: &'static str, answers: &[bkv_proto::v1::RepairAnswer]) {
        let refused = answers.iter().filter(|a| !a.refused.is_empty()).count() as u64;
        self.repair_step(step, answers.len() as u64 - refused, refused);
    }

    /// Records of one repair step: `ok` done, `refused` not.
    pub fn repair_step(&self, step: &'static str, ok: u64, refused: u64) {
        for (result, n) in [("ok", ok), ("refused", refused)] {
            if n > 0 {
                self.0
                    .share_repair_steps
                    .get_or_create(&RepairLabels { step, result })
                    .inc_by(n);
            }
        }
    }

    /// Records whose shares a refresh pass on this node refreshed.
    pub fn shares_refreshed(&self, n: u64) {
        self.0.shares_refreshed.inc_by(n);
    }

    /// A refresh pass finished; `trigger` is `operator` or `schedule`.
    pub fn share_refresh_pass(&self, trigger: &'static str) {
        self.0
            .share_refresh_passes
            .get_or_create(&TriggerLabels { trigger })
            .inc();
    }

    /// Shares this node got by repair.
    pub fn shares_repaired(&self, n: u64) {
        self.0.shares_repaired.inc_by(n);
    }

    /// Active records this node holds no share of, as of the last repair pass.
    pub fn set_shares_missing(&self, n: u64) {
        self.0.shares_missing.set(n);
    }

    /// Active records this node held no share of at the last repair pass.
    pub fn shares_missing(&self) -> u64 {
        self.0.shares_missing.get()
    }

    /// How many record versions this node held shares for at the last sweep.
    pub fn shares_held(&self) -> u64 {
        self.0.shares_held.get()
    }

    /// One successful recovery.
    pub fn recovered(&self) {
        self.0.recoveries.inc();
    }

    /// Whether the node serves.
    pub fn set_serving(&self, serving: bool) {
        self.0.serving.set(i64::from(serving));
    }

    /// The size of the newest snapshot on disk.
    pub fn snapshot_on_disk(&self, bytes: u64) {
        self.0.snapshot_bytes.set(bytes);
    }

    /// One HSM operation and its result.
    pub fn hsm_op(
        &self,
        op: &'static str,
        took: std::time::Duration,
        error: Option<&bkv_core::SealError>,
    ) {
        self.0
            .hsm_latency
            .get_or_create(&HsmLabels { op })
            .observe(took.as_secs_f64());
        if let Some(e) = error {
            let error = match e {
                bkv_core::SealError::Malformed(_) => "malformed",
                bkv_core::SealError::WrongPurpose => "wrong_purpose",
                bkv_core::SealError::WrongAad => "wrong_aad",
                bkv_core::SealError::UnknownKey => "unknown_key",
                bkv_core::SealError::Rejected => "rejected",
                bkv_core::SealError::NoClusterKey => "no_cluster_key",
                bkv_core::SealError::Hsm(_) => "hsm",
            };
            self.0
                .hsm_errors
                .get_or_create(&HsmErrorLabels { op, error })
                .inc();
        }
    }

    /// One HSM operation of the share-holder (ECDH, share sealing), and whether it failed.
    pub fn hsm_call(&self, op: &'static str, took: std::time::Duration, failed: bool) {
        self.0
            .hsm_latency
            .get_or_create(&HsmLabels { op })
            .observe(took.as_secs_f64());
        if failed {
            self.0
                .hsm_errors
                .get_or_create(&HsmErrorLabels { op, error: "hsm" })
                .inc();
        }
    }

    /// A client connection was accepted within the limits.
    pub fn client_connection_opened(&self) {
        self.0.client_connections.inc();
    }

    /// An accepted client connection closed.
    pub fn client_connection_closed(&self) {
        self.0.client_connections.dec();
    }

    /// A client connection was closed at once, past a limit (`reason`).
    pub fn client_connection_refused(&self, reason: &'static str) {
        self.0
            .client_connections_refused
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// A vault request was shed (too many in flight).
    pub fn client_request_shed(&self) {
        self.0.client_requests_shed.inc();
    }

    /// `n` audit records were dropped (the audit queue was full).
    pub fn audit_records_dropped(&self, n: u64) {
        self.0.audit_records_dropped.inc_by(n);
    }

    /// Copies Raft's own metrics.
    pub fn observe_raft(&self, m: &bkv_raft::types::RaftMetrics) {
        let g = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.0.raft_term.set(g(m.current_term));
        self.0.raft_leader.set(g(m.current_leader.unwrap_or(0)));
        self.0
            .raft_is_leader
            .set(i64::from(m.current_leader == Some(m.id)));
        let last = m.last_log_index.unwrap_or(0);
        let applied = m.last_applied.map(|l| l.index).unwrap_or(0);
        self.0.raft_last_log_index.set(g(last));
        self.0.raft_applied_index.set(g(applied));
        self.0.raft_apply_lag.set(g(last.saturating_sub(applied)));
        // Only a leader has followers: elsewhere the family is empty.
        self.0.raft_follower_lag.clear();
        if let Some(replication) = &m.replication {
            for (follower, matched) in replication {
                if *follower == m.id {
                    continue;
                }
                let matched = matched.as_ref().map_or(0, |l| l.index);
                self.0
                    .raft_follower_lag
                    .get_or_create(&FollowerLabels {
                        follower: *follower,
                    })
                    .set(g(last.saturating_sub(matched)));
            }
        }
        self.0
            .raft_snapshot_index
            .set(g(m.snapshot.map(|l| l.index).unwrap_or(0)));
    }
}

/// Times one gRPC call and counts it by status code when it finishes.
#[derive(Debug)]
pub struct CallTimer {
    metrics: Metrics,
    method: &'static str,
    started: Instant,
}

impl CallTimer {
    /// Records the call's result and turns it into the gRPC answer.
    pub fn finish<T>(self, result: Result<T, VaultError>) -> Result<Response<T>, Status> {
        self.metrics.call_finished(&CallReport {
            method: self.method,
            code: result.as_ref().map_or_else(VaultError::code, |_| Code::Ok),
            elapsed: self.started.elapsed(),
            error: result.as_ref().err(),
        });
        result.map(Response::new).map_err(Status::from)
    }
}
