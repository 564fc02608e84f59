//! Shared helpers of the bkv-raft integration tests: vault commands and bounded waits.

#![allow(dead_code)]

use std::time::Duration;

use bkv_core::{AccountId, ClusterId, Command, GuessLimit, Request, RequestId};

/// The `Bootstrap` command of a test cluster.
pub fn bootstrap() -> Request {
    Request {
        at_unix_ms: 1_700_000_000_000,
        command: Command::Bootstrap {
            cluster_id: ClusterId::new([7; 16]),
            cluster_name: "test".into(),
            sealed_server_setup: vec![0xAB; 64],
            key_check_value: [1, 2, 3],
            key_id: [9; 8],
            default_guess_limit: GuessLimit::DEFAULT,
            max_guess_limit: GuessLimit::DEFAULT,
        },
    }
}

/// A `Stage` of account `acct-{n}` with request id derived from `n`.
pub fn stage(n: u32) -> Request {
    let mut rid = [0u8; 16];
    rid[..4].copy_from_slice(&n.to_be_bytes());
    Request {
        at_unix_ms: 1_700_000_000_000 + u64::from(n),
        command: Command::Stage {
            account: account(n),
            request_id: RequestId::new(rid),
            guess_limit: GuessLimit::DEFAULT,
            sealed_record: vec![n as u8; 48],
        },
    }
}

/// The account of [`stage`]`(n)`.
pub fn account(n: u32) -> AccountId {
    AccountId::parse(&format!("acct-{n}")).expect("valid account id")
}

/// Polls `f` every 20 ms until it returns `Some`, for at most `limit`.
pub async fn eventually<T>(
    limit: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
