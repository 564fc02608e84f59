//! Rate limits on the recovery path: a token bucket per account and one per client address,
//! distinct from the guess limit (which bounds guesses for ever; these bound their pace).
//!
//! Tables are bounded: a bucket that has refilled completely carries no information and is
//! dropped, and past the size bound the least recently used bucket goes.
//!
//! A client address is an IPv4 address, or the /64 prefix of an IPv6 one ([`ClientAddress`]):
//! one IPv6 subscriber is usually handed a whole /64, so counting single IPv6 addresses
//! would give each of them 2^64 buckets.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Instant;

use bkv_core::AccountId;

use crate::config::Limits;
use crate::error::VaultError;

/// Largest number of buckets a table keeps.
const MAX_BUCKETS: usize = 100_000;

/// The unit that per-address limits count: an IPv4 address (IPv4-mapped IPv6 addresses
/// included), or the /64 network of an IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddress(IpAddr);

impl ClientAddress {
    /// The unit `ip` counts under.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

impl std::fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

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

    /// Gives back the token just taken for `key` (the other limit refused the start).
    fn refund(&self, key: &K) {
        if let Ok(mut table) = self.table.lock()
            && let Some(bucket) = table.get_mut(key)
        {
            bucket.tokens = (bucket.tokens + 1.0).min(self.burst);
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
    address: Option<Buckets<ClientAddress>>,
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
        let address = match (&self.address, peer) {
            (Some(buckets), Some(ip)) => {
                let key = ClientAddress::of(ip);
                buckets
                    .take(&key, now)
                    .map_err(|ms| VaultError::RateLimited { retry_after_ms: ms })?;
                Some((buckets, key))
            }
            _ => None,
        };
        if let Some(buckets) = &self.account
            && let Err(ms) = buckets.take(account, now)
        {
            // A refused start costs neither limit.
            if let Some((buckets, key)) = address {
                buckets.refund(&key);
            }
            return Err(VaultError::RateLimited { retry_after_ms: ms });
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
    fn an_ipv6_slash_64_counts_as_one_address_and_mapped_ipv4_as_its_ipv4() {
        let l = limits((0, 0), (60, 2));
        let t0 = Instant::now();
        let a = AccountId::parse("alice").unwrap();
        // Two addresses of one /64 share a bucket; a third is refused.
        for (ip, expect_ok) in [
            ("2001:db8:1:2::1", true),
            ("2001:db8:1:2:ffff:ffff:ffff:ffff", true),
            ("2001:db8:1:2::99", false),
            // Another /64 has its own bucket.
            ("2001:db8:1:3::1", true),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(
                l.check_recover_at(&a, Some(ip), t0).is_ok(),
                expect_ok,
                "{ip}"
            );
        }
        // ::ffff:10.0.0.1 is 10.0.0.1.
        for (ip, expect_ok) in [
            ("10.0.0.1", true),
            ("::ffff:10.0.0.1", true),
            ("10.0.0.1", false),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(
                l.check_recover_at(&a, Some(ip), t0).is_ok(),
                expect_ok,
                "{ip}"
            );
        }
        assert_eq!(
            ClientAddress::of("2001:db8:1:2:3:4:5:6".parse().unwrap()).to_string(),
            "2001:db8:1:2::/64"
        );
    }

    #[test]
    fn the_defaults_limit_both_and_an_honest_burst_passes() {
        let l = RateLimits::new(&Limits::default());
        let t0 = Instant::now();
        let a = AccountId::parse("alice").unwrap();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let burst = Limits::default().recover_per_account_burst;
        for i in 0..burst {
            assert!(l.check_recover_at(&a, Some(ip), t0).is_ok(), "start {i}");
        }
        assert!(l.check_recover_at(&a, Some(ip), t0).is_err());
        // Many people behind one NAT address, each recovering once, pass up to the
        // address burst.
        let address_burst = Limits::default().recover_per_address_burst;
        let mut passed = burst;
        for i in 0..2 * address_burst {
            let other = AccountId::parse(&format!("user{i}")).unwrap();
            if l.check_recover_at(&other, Some(ip), t0).is_ok() {
                passed += 1;
            }
        }
        assert_eq!(passed, address_burst);
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
