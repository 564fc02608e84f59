//! [`StateHandle`]: the node's read access to the applied vault state.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};
use std::time::Duration;

use bkv_core::{AccountId, AccountStatus, ClusterConfig, VaultState};

use crate::types::{LogId, StoredMembership};

/// The state machine in memory: the vault state and where it stands in the log.
#[derive(Debug, Default)]
pub(crate) struct Machine {
    pub(crate) state: VaultState,
    pub(crate) last_applied: Option<LogId>,
    pub(crate) membership: StoredMembership,
}

/// A cheap, cloneable handle on the applied state of a node's state machine.
///
/// Each read sees the state as of one applied log index (a batch of entries is applied
/// under one write lock). These are local, possibly stale reads: anything that decides an
/// outcome goes through the log instead (see [`crate::Writer`]).
#[derive(Clone, Default)]
pub struct StateHandle {
    inner: Arc<RwLock<Machine>>,
}

impl fmt::Debug for StateHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateHandle")
            .field("applied", &self.applied())
            .finish_non_exhaustive()
    }
}

impl StateHandle {
    pub(crate) fn new(machine: Machine) -> Self {
        Self {
            inner: Arc::new(RwLock::new(machine)),
        }
    }

    pub(crate) fn read_machine(&self) -> RwLockReadGuard<'_, Machine> {
        // A poisoned lock means `VaultState::apply` panicked: openraft's state machine task
        // died with it, Raft reports a fatal error and the node stops serving. Reading the
        // last state in the meantime is harmless.
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The write lock, or `None` if an earlier apply panicked while holding it.
    ///
    /// Waits by polling, never parked on the lock: a snapshot used to hold the read lock for
    /// as long as it took to encode the state (about a second at a million accounts; now it
    /// holds it to clone the state), and a writer parked on a std `RwLock` makes every later
    /// reader wait too. The node's request handlers read the state on tokio's threads (every
    /// call checks its token against the cluster's name), so a parked apply froze the whole
    /// node, heartbeats included, and cost elections. Polling keeps readers flowing; only
    /// applies wait.
    pub(crate) async fn write_machine(&self) -> Option<RwLockWriteGuard<'_, Machine>> {
        let mut pause = Duration::from_micros(100);
        loop {
            // The attempt ends with this statement: no guard type lives across the sleep.
            match self.inner.try_write() {
                Ok(guard) => return Some(guard),
                Err(TryLockError::Poisoned(_)) => return None,
                Err(TryLockError::WouldBlock) => {}
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(2));
        }
    }

    /// Runs `f` on the applied vault state.
    pub fn read<R>(&self, f: impl FnOnce(&VaultState) -> R) -> R {
        f(&self.read_machine().state)
    }

    /// The last applied log id.
    pub fn applied(&self) -> Option<LogId> {
        self.read_machine().last_applied
    }

    /// The index of the last applied entry (0 before any).
    pub fn applied_index(&self) -> u64 {
        self.applied().map_or(0, |l| l.index)
    }

    /// SHA-256 of the vault state's encoding.
    pub fn state_digest(&self) -> [u8; 32] {
        self.digest_at().1
    }

    /// The applied index and the state digest at that index, read together. The state is
    /// cloned under the lock (its accounts are shared, not copied) and encoded after.
    pub fn digest_at(&self) -> (u64, [u8; 32]) {
        let (index, state) = {
            let m = self.read_machine();
            (m.last_applied.map_or(0, |l| l.index), m.state.clone())
        };
        (index, state.digest())
    }

    /// The cluster configuration, once bootstrapped.
    pub fn cluster(&self) -> Option<ClusterConfig> {
        self.read_machine().state.cluster().cloned()
    }

    /// What the state holds for an account.
    pub fn account_status(&self, account: &AccountId) -> AccountStatus {
        self.read_machine().state.account_status(account)
    }

    /// The last applied membership.
    pub fn membership(&self) -> StoredMembership {
        self.read_machine().membership.clone()
    }
}
