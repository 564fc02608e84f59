//! Retries with backoff and failover across endpoints, bounded by a deadline.
//!
//! Only UNAVAILABLE answers and transport failures (no answer: refused, reset, TLS,
//! timed out) are retried, always by re-sending the request the caller built from the same
//! ids and bytes; every vault RPC is idempotent under that rule. Any other status goes back
//! to the caller at once. A leader hint that names one of the endpoints is tried next.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rand::RngCore as _;
use tokio::time::Instant;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, ClientTlsConfig};
use tonic::{Code, Status};

use crate::endpoint::{self, EndpointError};
use crate::vault_error::{LEADER_METADATA, leader_hint};
use crate::{RetryPolicy, Routing};

/// One endpoint and its channel.
#[derive(Debug, Clone)]
struct Target {
    url: String,
    authority: String,
    channel: Channel,
}

/// Why a call through [`Failover::call`] failed.
#[derive(Debug)]
pub enum CallError {
    /// A status that is not retried; the caller maps it.
    Status(Status),
    /// Retries used up (deadline or attempt count) on retryable failures.
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last failure, as text.
        last: String,
    },
}

/// The endpoints of a cluster, with the retry rules.
#[derive(Debug)]
pub struct Failover {
    targets: Vec<Target>,
    /// Where the next call starts: the last endpoint that answered, or a hinted leader.
    /// Shared by every [`Failover::share`] of one set of channels.
    preferred: Arc<AtomicUsize>,
    routing: Routing,
    policy: RetryPolicy,
    call_timeout: Duration,
    deadline: Duration,
}

impl Failover {
    /// Channels (connected lazily) to every endpoint.
    pub fn new(
        endpoints: &[String],
        tls: &ClientTlsConfig,
        routing: Routing,
        policy: RetryPolicy,
        call_timeout: Duration,
        deadline: Duration,
    ) -> Result<Self, EndpointError> {
        if endpoints.is_empty() {
            return Err(EndpointError::Malformed(String::new()));
        }
        let mut targets = Vec::with_capacity(endpoints.len());
        for e in endpoints {
            let url = endpoint::https_url(e)?;
            let authority =
                endpoint::authority(&url).ok_or_else(|| EndpointError::Malformed(e.clone()))?;
            let channel = endpoint::channel(&url, tls.clone(), call_timeout)?;
            targets.push(Target {
                url,
                authority,
                channel,
            });
        }
        Ok(Self {
            targets,
            preferred: Arc::new(AtomicUsize::new(0)),
            routing,
            policy,
            call_timeout,
            deadline,
        })
    }

    /// Another failover over the same channels (and so the same connections), with the
    /// same rules and the same preferred endpoint: what one learns (a failover, a leader),
    /// the other uses.
    pub fn share(&self) -> Self {
        Self {
            targets: self.targets.clone(),
            preferred: Arc::clone(&self.preferred),
            routing: self.routing,
            policy: self.policy,
            call_timeout: self.call_timeout,
            deadline: self.deadline,
        }
    }

    /// The normalized endpoint URLs.
    pub fn urls(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.url.clone()).collect()
    }

    /// The longest one call may take.
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// The URL of the endpoint the next call starts at.
    pub fn preferred_url(&self) -> &str {
        let n = self.targets.len();
        &self.targets[self.preferred.load(Ordering::Relaxed) % n].url
    }

    /// With [`Routing::Leader`], makes the leader named in an answer's metadata the
    /// preferred endpoint, if it is one of ours. Anything else is ignored.
    pub fn follow(&self, metadata: &MetadataMap) {
        if self.routing != Routing::Leader {
            return;
        }
        let hint = metadata.get(LEADER_METADATA).and_then(|v| v.to_str().ok());
        if let Some(i) = hint.and_then(|h| self.target_of(h)) {
            self.preferred.store(i, Ordering::Relaxed);
        }
    }

    /// The index of the endpoint a leader hint (`host:port` or a URL) names.
    fn target_of(&self, hint: &str) -> Option<usize> {
        let authority = endpoint::authority(hint.trim())?;
        self.targets.iter().position(|t| t.authority == authority)
    }

    /// Runs `attempt` on a channel until it succeeds, fails with a status that is not
    /// retried, or the deadline or attempt budget runs out. `attempt` must send the same
    /// request every time.
    pub async fn call<T, F, Fut>(&self, mut attempt: F) -> Result<T, CallError>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let until = Instant::now() + self.deadline;
        let n = self.targets.len();
        let mut index = self.preferred.load(Ordering::Relaxed) % n;
        let mut attempts = 0u32;
        let mut retries = 0u32;
        let mut hopped_without_wait = false;
        let mut last = String::from("deadline reached before the first attempt");
        while attempts < self.policy.max_attempts.max(1) {
            let now = Instant::now();
            let Some(remaining) = until.checked_duration_since(now).filter(|d| !d.is_zero()) else {
                break;
            };
            attempts += 1;
            let target = &self.targets[index];
            let per_call = self.call_timeout.min(remaining);
            let outcome = tokio::time::timeout(per_call, attempt(target.channel.clone())).await;
            let status = match outcome {
                Ok(Ok(value)) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(value);
                }
                Ok(Err(status)) if !timed_out(&status) && is_retryable(&status) => status,
                Ok(Err(status)) if !timed_out(&status) => return Err(CallError::Status(status)),
                // The call timed out, here or in the channel's timeout (the request's
                // `grpc-timeout`). The deadline, not the endpoint, cut this attempt short: an
                // earlier attempt's answer says more about what is wrong than the cut does.
                _ if per_call < self.call_timeout && attempts > 1 => {
                    last = format!(
                        "{last} (the deadline then cut the next attempt after {} ms)",
                        per_call.as_millis()
                    );
                    break;
                }
                _ => Status::unavailable(format!("no answer within {} ms", per_call.as_millis())),
            };
            last = format!("{}: {}", target.url, describe(&status));
            // Next: the hinted leader if it is one of ours and not this one, else the next
            // endpoint in the list.
            let hinted = leader_hint(&status)
                .and_then(|h| self.target_of(&h))
                .filter(|i| *i != index);
            let wait = match hinted {
                // One hop straight to a hinted leader; two hints in a row wait as usual, so
                // endpoints that point at each other cannot spin.
                Some(i) if !hopped_without_wait => {
                    index = i;
                    self.preferred.store(i, Ordering::Relaxed);
                    hopped_without_wait = true;
                    Duration::ZERO
                }
                other => {
                    index = other.unwrap_or((index + 1) % n);
                    hopped_without_wait = false;
                    let wait = self.policy.backoff(retries, rand::rngs::OsRng.next_u64());
                    retries += 1;
                    wait
                }
            };
            if !wait.is_zero() {
                let Some(remaining) = until.checked_duration_since(Instant::now()) else {
                    break;
                };
                if wait >= remaining {
                    break;
                }
                tokio::time::sleep(wait).await;
            }
        }
        Err(CallError::Exhausted { attempts, last })
    }
}

/// UNAVAILABLE (which tonic also reports for connection failures) is retried, and so is a
/// status that tonic made from a local transport error (it carries that error as its
/// source: a reset stream, a broken connection), which is no answer from the vault. Statuses
/// the vault sent come from trailers and never have a source.
/// tonic's own answer when a request's timeout (its `grpc-timeout`, or the channel's)
/// expires before the answer comes: the same as no answer. Locally it carries
/// [`tonic::TimeoutExpired`] as its source; from a server's timeout only its message.
fn timed_out(status: &Status) -> bool {
    if status.code() != Code::Cancelled {
        return false;
    }
    let mut source = std::error::Error::source(status);
    while let Some(s) = source {
        if s.is::<tonic::TimeoutExpired>() {
            return true;
        }
        source = s.source();
    }
    status.message() == tonic::TimeoutExpired(()).to_string()
}

fn is_retryable(status: &Status) -> bool {
    status.code() == Code::Unavailable || std::error::Error::source(status).is_some()
}

fn describe(status: &Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    let mut source = std::error::Error::source(status);
    // A transport error's chain says what failed (refused, TLS, ...); a few links suffice.
    for _ in 0..4 {
        let Some(s) = source else { break };
        let link = s.to_string();
        // tonic's chain repeats itself ("tcp connect error: ...: tcp connect error").
        if !text.contains(&link) {
            text.push_str(": ");
            text.push_str(&link);
        }
        source = s.source();
    }
    text
}
