//! Shared helpers of the bkv-raft integration tests: vault commands and bounded waits.

#![allow(dead_code)]

use std::time::Duration;

use bkv_core::{AccountId, GuessLimit, Outcome, Request, RequestId, fixtures};
use bkv_raft::Writer;

/// The `Bootstrap` command of a test cluster (the fixtures' cluster and identity key).
pub fn bootstrap() -> Request {
    Request {
        at_unix_ms: 1_700_000_000_000,
        command: fixtures::bootstrap(GuessLimit::DEFAULT, GuessLimit::DEFAULT),
    }
}

/// The `SetShareMap` of the test cluster: epoch 1, holders 1, 2 and 3, signed by the
/// identity key of [`bootstrap`]. Registrations stage only once a map is in force.
pub fn share_map() -> Request {
    Request {
        at_unix_ms: 1_700_000_000_000,
        command: fixtures::set_share_map(1, 3),
    }
}

/// Writes [`bootstrap`] and [`share_map`] through `w` and checks that both applied;
/// answers the log index of the share map.
pub async fn bootstrap_vault(w: &Writer) -> anyhow::Result<u64> {
    let boot = w.write(bootstrap()).await?;
    anyhow::ensure!(boot.outcome == Outcome::Bootstrapped, "bootstrap: {boot:?}");
    let map = w.write(share_map()).await?;
    anyhow::ensure!(
        map.outcome == Outcome::ShareMapSet { epoch: 1 },
        "share map: {map:?}"
    );
    Ok(map.log_index)
}

/// A `Stage` of account `acct-{n}` with request id derived from `n`, following the share
/// map of [`share_map`].
pub fn stage(n: u32) -> Request {
    let mut rid = [0u8; 16];
    rid[..4].copy_from_slice(&n.to_be_bytes());
    Request {
        at_unix_ms: 1_700_000_000_000 + u64::from(n),
        command: bkv_core::Command::Stage {
            account: account(n),
            request_id: RequestId::new(rid),
            guess_limit: GuessLimit::DEFAULT,
            sealed_record: vec![n as u8; 48],
            oprf: fixtures::oprf_record(1, 3),
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
