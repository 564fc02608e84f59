//! Rate limits on the recovery path: a token bucket per account and one per client address,
//! distinct from the guess limit (which bounds guesses for ever; these bound their pace).
//!
//! Tables are bounded: a bucket that has refilled completely carries no information and is
//! dropped, and past the size bound the least recently used bucket goes.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use bkv_core::AccountId;

use crate::config::Limits;
use crate::error::VaultError;

/// Largest number of buckets a table keeps.
const MAX_BUCKETS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

#[derive(Debug)]
struct Buckets<K> {
    per_ms: f64,
    burst: f64,
    table: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    fn new(per_min: u32, burst: u32) -> Option<Self> {
        (per_min > 0).then(|| Self {
            per_ms: f64::from(per_min) / 60_000.0,
            burst: f64::from(burst.max(1)),
            table: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one token for `key`, or says in how many ms one will be there.
    fn take(&self, key: &K, now: Instant) -> Result<(), u64> {
        let Ok(mut table) = self.table.lock() else {
            return Ok(());
        };
        if table.len() >= MAX_BUCKETS && !table.contains_key(key) {
            self.prune(&mut table, now);
        }
        let bucket = table.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64() * 1000.0;
        bucket.tokens = (bucket.tokens + elapsed * self.per_ms).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - bucket.tokens) / self.per_ms).ceil();
            // `wait` is positive and finite: per_ms > 0.
            Err(wait as u64)
        }
    }

    fn prune(&self, table: &mut HashMap<K, Bucket>, now: Instant) {
        let full_after_ms = self.burst / self.per_ms;
        table.retain(|_, b| {
            (now.saturating_duration_since(b.updated).as_secs_f64() * 1000.0) < full_after_ms
        });
        if table.len() >= MAX_BUCKETS {
            // Still full of active buckets: drop the least recently used tenth.
            let mut ages: Vec<(Instant, K)> =
                table.iter().map(|(k, b)| (b.updated, k.clone())).collect();
            ages.sort_by_key(|(t, _)| *t);
            for (_, k) in ages.into_iter().take(MAX_BUCKETS / 10) {
                table.remove(&k);
            }
        }
    }

    fn len(&self) -> usize {
        self.table.lock().map(|t| t.len()).unwrap_or(0)
    }
}

/// The recovery-path rate limits of a node.
#[derive(Debug)]
pub struct RateLimits {
    account: Option<Buckets<AccountId>>,
    address: Option<Buckets<IpAddr>>,
}

impl RateLimits {
    /// Limits from the configuration (a rate of 0 disables that limit).
    pub fn new(config: &Limits) -> Self {
        Self {
            account: Buckets::new(
                config.recover_per_account_per_min,
                config.recover_per_account_burst,
            ),
            address: Buckets::new(
                config.recover_per_address_per_min,
                config.recover_per_address_burst,
            ),
        }
    }

    /// Admits one recovery start, or answers RESOURCE_EXHAUSTED with a retry delay.
    pub fn check_recover(
        &self,
        account: &AccountId,
        peer: Option<IpAddr>,
    ) -> Result<(), VaultError> {
        self.check_recover_at(account, peer, Instant::now())
    }

    fn check_recover_at(
        &self,
        account: &AccountId,
        peer: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), VaultError> {
        if let (Some(buckets), Some(ip)) = (&self.address, peer) {
            buckets
                .take(&ip, now)
                .map_err(|ms| VaultError::RateLimited { retry_after_ms: ms })?;
        }
        if let Some(buckets) = &self.account {
            buckets
                .take(account, now)
                .map_err(|ms| VaultError::RateLimited { retry_after_ms: ms })?;
        }
        Ok(())
    }

    /// Buckets held (accounts, addresses): bounded by [`MAX_BUCKETS`] each.
    pub fn sizes(&self) -> (usize, usize) {
        (
            self.account.as_ref().map(Buckets::len).unwrap_or(0),
            self.address.as_ref().map(Buckets::len).unwrap_or(0),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits(account: (u32, u32), address: (u32, u32)) -> RateLimits {
        RateLimits::new(&Limits {
            recover_per_account_per_min: account.0,
            recover_per_account_burst: account.1,
            recover_per_address_per_min: address.0,
            recover_per_address_burst: address.1,
            ..Limits::default()
        })
    }

    #[test]
    fn a_burst_passes_then_the_bucket_says_when_to_come_back() {
        let l = limits((60, 3), (0, 0));
        let a = AccountId::parse("alice").unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check_recover_at(&a, None, t0).is_ok());
        }
        match l.check_recover_at(&a, None, t0) {
            Err(VaultError::RateLimited { retry_after_ms }) => assert_eq!(retry_after_ms, 1000),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        // One token per second comes back.
        assert!(
            l.check_recover_at(&a, None, t0 + Duration::from_millis(1000))
                .is_ok()
        );
        // Another account is not affected.
        let b = AccountId::parse("bob").unwrap();
        assert!(l.check_recover_at(&b, None, t0).is_ok());
    }

    #[test]
    fn addresses_are_limited_across_accounts() {
        let l = limits((0, 0), (60, 2));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        for (i, expect_ok) in [(0, true), (1, true), (2, false)] {
            let account = AccountId::parse(&format!("user{i}")).unwrap();
            assert_eq!(
                l.check_recover_at(&account, Some(ip), t0).is_ok(),
                expect_ok,
                "{i}"
            );
        }
    }

    #[test]
    fn zero_disables_a_limit() {
        let l = limits((0, 0), (0, 0));
        let a = AccountId::parse("alice").unwrap();
        for _ in 0..1000 {
            assert!(
                l.check_recover(&a, Some("10.0.0.1".parse().unwrap()))
                    .is_ok()
            );
        }
        assert_eq!(l.sizes(), (0, 0));
    }

    #[test]
    fn tables_stay_bounded_under_a_flood_of_distinct_keys() {
        let l = limits((6, 1), (0, 0));
        let t0 = Instant::now();
        for i in 0..(MAX_BUCKETS + 5_000) {
            let a = AccountId::parse(&format!("flood{i}")).unwrap();
            let _ = l.check_recover_at(&a, None, t0);
        }
        assert!(l.sizes().0 <= MAX_BUCKETS, "{:?}", l.sizes());
    }
}
