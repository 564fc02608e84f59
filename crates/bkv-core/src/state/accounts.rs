//! [`Accounts`]: the state's ordered map from account to entry, cheap to clone.
//!
//! A snapshot encodes the whole state, which takes about a second per million accounts.
//! Encoding under the state lock stopped every apply for that long, on every node at once.
//! Cloning this map instead costs one reference count per chunk of up to [`CHUNK_MAX`]
//! accounts; the snapshot encodes its clone while applies go on. A write to a chunk that a
//! clone still shares copies that chunk's keys and pointers first (and the one account it
//! changes), not the accounts: entries sit behind their own `Arc`.
//!
//! The chunks hold disjoint, ascending key ranges, none empty, so iterating them in order
//! gives every account in key order, exactly as the `BTreeMap` this replaced did; the
//! snapshot bytes are the same.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::account::Account;
use crate::ids::AccountId;

/// Most accounts in one chunk; a fuller chunk splits in two. Measured with
/// `cargo bench -p bkv-core --bench apply` at 1 M accounts: with 1,024 a clone takes 35 us,
/// a charge 3.8 us, and a charge whose chunk a clone shares 119 us (once per chunk per
/// snapshot); with 256, 229 us, 6.7 us (more chunks to search) and 34 us.
pub(crate) const CHUNK_MAX: usize = 1024;

/// Accounts per chunk when built from a decoded snapshot: room to grow before a split.
const CHUNK_FILL: usize = CHUNK_MAX / 2;

type Chunk = BTreeMap<AccountId, Arc<Account>>;

/// An ordered map of accounts in shared, copy-on-write chunks.
#[derive(Clone, Default)]
pub(crate) struct Accounts {
    /// Non-empty chunks in key order: every key of a chunk is below every key of the next.
    chunks: Vec<Arc<Chunk>>,
    /// Accounts in all chunks.
    len: usize,
}

impl Accounts {
    /// The number of accounts.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// No account at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunk that holds `account` if any does: the last one whose first key is not
    /// above it, or the first chunk for a key below all.
    fn chunk_of(&self, account: &AccountId) -> Option<usize> {
        if self.chunks.is_empty() {
            return None;
        }
        let after = self.chunks.partition_point(|c| {
            c.first_key_value()
                .is_some_and(|(first, _)| first <= account)
        });
        Some(after.saturating_sub(1))
    }

    /// The entry of `account`.
    pub(crate) fn get(&self, account: &AccountId) -> Option<&Account> {
        let i = self.chunk_of(account)?;
        self.chunks[i].get(account).map(Arc::as_ref)
    }

    /// The entry of `account`, to change (copied first if a clone shares it).
    pub(crate) fn get_mut(&mut self, account: &AccountId) -> Option<&mut Account> {
        let i = self.chunk_of(account)?;
        if !self.chunks[i].contains_key(account) {
            return None;
        }
        Arc::make_mut(&mut self.chunks[i])
            .get_mut(account)
            .map(Arc::make_mut)
    }

    /// The entry of `account`, inserted empty if there is none.
    pub(crate) fn get_or_insert_default(&mut self, account: &AccountId) -> &mut Account {
        if self.chunks.is_empty() {
            self.chunks.push(Arc::default());
        }
        let mut i = self.chunk_of(account).unwrap_or_default();
        if !self.chunks[i].contains_key(account) {
            Arc::make_mut(&mut self.chunks[i]).insert(account.clone(), Arc::default());
            self.len += 1;
            if self.chunks[i].len() > CHUNK_MAX {
                self.split(i);
                i = self.chunk_of(account).unwrap_or_default();
            }
        }
        let entry = Arc::make_mut(&mut self.chunks[i])
            .get_mut(account)
            .expect("present: found or inserted above, and a split keeps every key");
        Arc::make_mut(entry)
    }

    /// Splits chunk `i` into two halves.
    fn split(&mut self, i: usize) {
        let chunk = Arc::make_mut(&mut self.chunks[i]);
        let Some(middle) = chunk.keys().nth(chunk.len() / 2).cloned() else {
            return;
        };
        let upper = chunk.split_off(&middle);
        self.chunks.insert(i + 1, Arc::new(upper));
    }

    /// Removes the entry of `account` and returns it.
    pub(crate) fn remove(&mut self, account: &AccountId) -> Option<Account> {
        let i = self.chunk_of(account)?;
        if !self.chunks[i].contains_key(account) {
            return None;
        }
        let removed = Arc::make_mut(&mut self.chunks[i]).remove(account)?;
        self.len -= 1;
        if self.chunks[i].is_empty() {
            self.chunks.remove(i);
        }
        Some(Arc::unwrap_or_clone(removed))
    }

    /// Every account and its entry, in key order.
    pub(crate) fn iter(
        &self,
    ) -> impl DoubleEndedIterator<Item = (&AccountId, &Account)> + Clone + '_ {
        self.chunks
            .iter()
            .flat_map(|c| c.iter().map(|(k, v)| (k, v.as_ref())))
    }

    /// The accounts above `after` (every account for `None`) and their entries, in key
    /// order: a cursor for passes over the accounts in batches.
    pub(crate) fn iter_after<'a>(
        &'a self,
        after: Option<&'a AccountId>,
    ) -> impl Iterator<Item = (&'a AccountId, &'a Account)> + 'a {
        use std::ops::Bound;
        let first = after.and_then(|a| self.chunk_of(a)).unwrap_or(0);
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.chunks[first.min(self.chunks.len())..]
            .iter()
            .flat_map(move |c| {
                c.range::<AccountId, _>((lower, Bound::Unbounded))
                    .map(|(k, v)| (k, v.as_ref()))
            })
    }

    /// Every entry, in key order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &Account> + '_ {
        self.iter().map(|(_, v)| v)
    }

    /// How many chunks the accounts sit in (tests and benchmarks).
    #[cfg(test)]
    pub(crate) fn chunk_count(&self) -> usize {
        self.chunks.len()
    }
}

impl From<BTreeMap<AccountId, Account>> for Accounts {
    fn from(map: BTreeMap<AccountId, Account>) -> Self {
        let len = map.len();
        let mut chunks = Vec::with_capacity(len.div_ceil(CHUNK_FILL));
        let mut entries = map.into_iter().peekable();
        while entries.peek().is_some() {
            // Sorted input: `collect` builds each chunk in bulk.
            let chunk: Chunk = entries
                .by_ref()
                .take(CHUNK_FILL)
                .map(|(k, v)| (k, Arc::new(v)))
                .collect();
            chunks.push(Arc::new(chunk));
        }
        Self { chunks, len }
    }
}

impl PartialEq for Accounts {
    fn eq(&self, other: &Self) -> bool {
        // Equal maps may be chunked differently (grown by applies or read from a snapshot).
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl Eq for Accounts {}

impl fmt::Debug for Accounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Accounts {
    /// Exactly what `BTreeMap<AccountId, Account>` writes: the length, then the entries in
    /// key order.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::RecordVersion;
    use proptest::prelude::*;

    fn id(n: u16) -> AccountId {
        AccountId::parse(&format!("acct-{n:05}")).expect("valid id")
    }

    fn entry(tag: u64) -> Account {
        Account {
            destroyed: Some(RecordVersion(tag)),
            ..Account::default()
        }
    }

    /// Every chunk is non-empty, within bounds and above the one before; the length adds up.
    fn check_shape(a: &Accounts) {
        let mut last: Option<&AccountId> = None;
        let mut total = 0;
        for c in &a.chunks {
            assert!(
                !c.is_empty() && c.len() <= CHUNK_MAX,
                "chunk of {}",
                c.len()
            );
            let (first, _) = c.first_key_value().expect("non-empty");
            assert!(last.is_none_or(|l| l < first), "chunks out of order");
            last = c.last_key_value().map(|(k, _)| k);
            total += c.len();
        }
        assert_eq!(total, a.len());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Upsert(u16, u64),
        Remove(u16),
        /// Keep a clone, as a snapshot in progress does.
        Snapshot,
    }

    fn op() -> impl Strategy<Value = Op> {
        // Keys from a range wide enough to split chunks and narrow enough to hit existing ones.
        prop_oneof![
            8 => (0u16..4000, any::<u64>()).prop_map(|(k, t)| Op::Upsert(k, t)),
            3 => (0u16..4000).prop_map(Op::Remove),
            1 => Just(Op::Snapshot),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any sequence of writes gives what a `BTreeMap` gives, in the same order and the same
        /// bytes; every clone taken on the way keeps what it saw.
        #[test]
        fn behaves_like_a_btreemap(ops in proptest::collection::vec(op(), 1..3000)) {
            let mut a = Accounts::default();
            let mut m: BTreeMap<AccountId, Account> = BTreeMap::new();
            let mut kept: Vec<(Accounts, BTreeMap<AccountId, Account>)> = Vec::new();
            for op in ops {
                match op {
                    Op::Upsert(k, t) => {
                        let k = id(k);
                        *a.get_or_insert_default(&k) = entry(t);
                        m.insert(k, entry(t));
                    }
                    Op::Remove(k) => {
                        let k = id(k);
                        prop_assert_eq!(a.remove(&k), m.remove(&k));
                        prop_assert_eq!(a.get_mut(&k), None);
                    }
                    Op::Snapshot => kept.push((a.clone(), m.clone())),
                }
            }
            check_shape(&a);
            prop_assert_eq!(a.len(), m.len());
            prop_assert!(a.iter().eq(m.iter()));
            prop_assert!(a.iter().rev().eq(m.iter().rev()));
            prop_assert_eq!(
                postcard::to_stdvec(&a).expect("encodes"),
                postcard::to_stdvec(&m).expect("encodes")
            );
            for k in m.keys() {
                prop_assert_eq!(a.get(k), m.get(k));
            }
            // A cursor anywhere (present, absent, below and above every key) goes on from
            // just above it, as the map's range does.
            for k in [0u16, 1, 999, 1000, 2500, 3999, 4000] {
                let k = id(k);
                let from = m.range::<AccountId, _>((
                    std::ops::Bound::Excluded(&k),
                    std::ops::Bound::Unbounded,
                ));
                prop_assert!(a.iter_after(Some(&k)).eq(from));
            }
            prop_assert!(a.iter_after(None).eq(m.iter()));
            for (clone, then) in &kept {
                check_shape(clone);
                prop_assert!(clone.iter().eq(then.iter()));
            }
            let rebuilt = Accounts::from(m.clone());
            check_shape(&rebuilt);
            prop_assert_eq!(&rebuilt, &a);
        }
    }

    #[test]
    fn a_clone_shares_chunks_until_a_write_copies_one() {
        let map: BTreeMap<_, _> = (0..5000).map(|n| (id(n), entry(u64::from(n)))).collect();
        let mut a = Accounts::from(map);
        assert_eq!(a.chunk_count(), 5000usize.div_ceil(CHUNK_FILL));
        let snapshot = a.clone();
        let shared = |a: &Accounts, b: &Accounts| {
            a.chunks
                .iter()
                .zip(&b.chunks)
                .filter(|(x, y)| Arc::ptr_eq(x, y))
                .count()
        };
        assert_eq!(shared(&a, &snapshot), a.chunk_count());
        *a.get_mut(&id(7)).expect("present") = entry(99);
        assert_eq!(shared(&a, &snapshot), a.chunk_count() - 1);
        assert_eq!(snapshot.get(&id(7)), Some(&entry(7)));
        assert_eq!(a.get(&id(7)), Some(&entry(99)));
        // The copied chunk still shares every account it did not change.
        let (old, new) = (&snapshot.chunks[0], &a.chunks[0]);
        let same = old
            .iter()
            .zip(new.iter())
            .filter(|((_, x), (_, y))| Arc::ptr_eq(x, y))
            .count();
        assert_eq!(same, old.len() - 1);
    }

    #[test]
    fn inserting_in_order_splits_chunks_and_removing_all_leaves_none() {
        let mut a = Accounts::default();
        for n in 0..3000 {
            a.get_or_insert_default(&id(n));
        }
        check_shape(&a);
        assert!(a.chunk_count() >= 3000 / CHUNK_MAX);
        for n in (0..3000).rev() {
            assert!(a.remove(&id(n)).is_some());
        }
        assert!(a.is_empty());
        assert_eq!(a.chunk_count(), 0);
        assert_eq!(a.get(&id(1)), None);
        assert_eq!(a.remove(&id(1)), None);
    }
}
