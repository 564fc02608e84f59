//! How a [`crate::VaultClient`] reaches the cluster: endpoints, the CA to trust, the token,
//! timeouts and retry pacing.

use std::time::Duration;

use crate::{KsfParams, TokenSource};

/// Settings of a [`crate::VaultClient`].
///
/// ```no_run
/// use std::time::Duration;
/// use bkv_client::{ClientConfig, KsfParams, TokenSource};
/// let ca = std::fs::read("cluster/pki/ca.pem")?;
/// let mut config = ClientConfig::new(
///     vec!["https://127.0.0.1:7101".into(), "https://127.0.0.1:7201".into()],
///     ca,
///     TokenSource::fixed(std::env::var("BKV_TOKEN")?),
/// );
/// config.deadline = Duration::from_secs(20);
/// config.ksf = KsfParams::default();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Client endpoints of the nodes, `https://host:port` (a bare `host:port` means https).
    /// More than one gives failover.
    pub endpoints: Vec<String>,
    /// The cluster CA certificate (PEM) that node certificates chain to.
    pub ca_cert_pem: Vec<u8>,
    /// The cluster identity key (Ed25519 public key, 32 bytes) the client pins, like the CA:
    /// registration splits the account's OPRF key only over a share map this key signed.
    /// Without it the client can recover, status and delete, but not register.
    pub identity_key: Option<[u8; 32]>,
    /// The account token.
    pub token: TokenSource,
    /// Longest wait for one attempt of one RPC (also the connect timeout).
    pub call_timeout: Duration,
    /// Longest time one SDK call may take, all retries included.
    pub deadline: Duration,
    /// Argon2id parameters for new registrations. Recoveries use the parameters stored with
    /// the record.
    pub ksf: KsfParams,
    /// Backoff between retries.
    pub retry: RetryPolicy,
    /// Which endpoint calls go to while every node answers.
    pub routing: Routing,
}

/// Which endpoint a [`crate::VaultClient`] sends its calls to while the cluster answers
/// (failover after a failure works the same either way).
///
/// Every write (a charge, a reset, a registration) is committed by the Raft leader; a
/// follower that receives one forwards it there, one more hop inside the cluster. Each node
/// names the leader in every answer (`bkv-leader` metadata), so a client can go there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Routing {
    /// Start at the first endpoint and stay with whichever answered last. Clients with
    /// their endpoints in different orders spread the OPAQUE work over the nodes, which
    /// suits nodes on machines of their own.
    #[default]
    Stay,
    /// Move to the leader a node names in its answer, if it is one of the endpoints: no
    /// forwarding hop, so lower latency, and less work in total when the nodes share
    /// machines (a local cluster); the leader then does all the OPAQUE work.
    Leader,
}

impl ClientConfig {
    /// Settings with the defaults: 10 s per attempt, 30 s per call, the default Argon2id.
    pub fn new(endpoints: Vec<String>, ca_cert_pem: Vec<u8>, token: TokenSource) -> Self {
        Self {
            endpoints,
            ca_cert_pem,
            identity_key: None,
            token,
            call_timeout: Duration::from_secs(10),
            deadline: Duration::from_secs(30),
            ksf: KsfParams::default(),
            retry: RetryPolicy::default(),
            routing: Routing::default(),
        }
    }
}

/// Exponential backoff with jitter between retries of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait before the first retry (the upper bound; jitter takes up to half off).
    pub initial_backoff: Duration,
    /// Largest wait between two attempts.
    pub max_backoff: Duration,
    /// Most attempts of one call, whatever the deadline.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            max_attempts: 32,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based): `min(max, initial * 2^retry)`, of
    /// which a random part up to half is taken off ("equal jitter").
    pub fn backoff(&self, retry: u32, random: u64) -> Duration {
        let factor = 1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX);
        let cap = self
            .initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff);
        let half = cap / 2;
        let half_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        let jitter = if half_ms == 0 {
            0
        } else {
            random % (half_ms + 1)
        };
        half + Duration::from_millis(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let p = RetryPolicy::default();
        for (retry, cap_ms) in [
            (0u32, 50u64),
            (1, 100),
            (2, 200),
            (5, 1600),
            (6, 2000),
            (40, 2000),
        ] {
            for random in [0u64, 7, 999, u64::MAX] {
                let d = p.backoff(retry, random).as_millis() as u64;
                assert!(d >= cap_ms / 2 && d <= cap_ms, "retry {retry}: {d} ms");
            }
        }
        assert_eq!(p.backoff(0, 0), Duration::from_millis(25));
        let zero = RetryPolicy {
            initial_backoff: Duration::ZERO,
            ..p
        };
        assert_eq!(zero.backoff(3, 12345), Duration::ZERO);
    }
}
