//! The node as a share-holder of the threshold OPRF: its [`ShareHolder`] over its HSM
//! (share-receiving and share-sealing keys), its own ledger store, and its applied state;
//! the peer service other nodes ask for evaluations; and the sweep that erases the shares
//! of records that are gone.

mod keys;
mod ledger_store;
pub mod refresh;
pub mod repair;
pub mod service;

use std::time::Duration;

use bkv_core::VaultState;
use bkv_raft::{RaftNode, StateHandle};
use bkv_vault::holder::{AppliedState, EvalRequest, Evaluated, HolderError, ShareHolder, ShareId};
use tokio::sync::watch;

pub use ledger_store::SledLedgers;
pub use service::SharesService;

use crate::metrics::Metrics;
use crate::sealer::MeteredSealer;

/// A node's share-holder.
pub type NodeShares = ShareHolder<MeteredSealer, SledLedgers, NodeState>;

/// How long a share-holder waits for a charge to reach its applied state.
pub const CHARGE_WAIT: Duration = Duration::from_secs(2);

/// The longest a holder waiting for a charge goes without looking at the state again.
const CHANGE_POLL: Duration = Duration::from_millis(5);

/// Ledgers looked at per sweep step.
const SWEEP_BATCH: usize = 512;

/// Evaluates this node's share for `request` under the share-holder's rules, counting it in
/// the metrics. In a failpoints build with `lie_evaluate_unchecked` on, it lies instead: it
/// evaluates without a charge or a ledger, as a compromised node could (see `crate::lies`).
pub async fn evaluate(
    shares: &NodeShares,
    metrics: &Metrics,
    request: &EvalRequest,
) -> Result<Evaluated, HolderError> {
    #[cfg(feature = "failpoints")]
    let result = if crate::lies::on(crate::lies::EVALUATE_UNCHECKED) {
        shares.evaluate_unchecked(request).await
    } else {
        shares.evaluate(request, CHARGE_WAIT).await
    };
    #[cfg(not(feature = "failpoints"))]
    let result = shares.evaluate(request, CHARGE_WAIT).await;
    metrics.share_evaluated(result.is_ok());
    result
}

/// The node's applied state, with a signal on every applied entry.
#[derive(Debug, Clone)]
pub struct NodeState {
    state: StateHandle,
    metrics: watch::Receiver<bkv_raft::types::RaftMetrics>,
}

impl NodeState {
    /// The applied state of `raft`.
    pub fn of(raft: &RaftNode) -> Self {
        Self {
            state: raft.state().clone(),
            metrics: raft.metrics(),
        }
    }
}

impl AppliedState for NodeState {
    fn read<R>(&self, f: impl FnOnce(&VaultState) -> R) -> R {
        self.state.read(f)
    }

    async fn changed(&self) {
        // Metrics change on every applied entry; a stopped Raft changes nothing more. A
        // clone of the receiver starts from the version the original last saw, which is
        // never marked seen: without marking it here, `changed` returned at once and a
        // holder waiting for a charge spun on the state until it came (a third of a
        // node's CPU under 64 clients, in perf). A change between the caller's read and
        // this mark is noticed within CHANGE_POLL at the latest.
        let mut metrics = self.metrics.clone();
        metrics.borrow_and_update();
        if let Ok(Err(_)) = tokio::time::timeout(CHANGE_POLL, metrics.changed()).await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// How often the sweep looks again while the applied state catches up after a start.
const SWEEP_CATCH_UP_POLL: Duration = Duration::from_millis(100);

/// Every `period` until `stop` says so: erases the shares of records that are gone and
/// reports how many shares the node holds; then, if a record was staged since the last
/// complete pass, installs the shares of active records that have none yet (see
/// [`install_pass`]). Nothing happens before `caught_up` says the applied state is at
/// least where it was when the node stopped last: a state still being replayed would make
/// shares installed before the stop look gone or replaced, and the sweep erase them.
pub async fn sweep_loop(
    shares: std::sync::Arc<NodeShares>,
    period: Duration,
    caught_up: impl Fn() -> bool + Send,
    held: impl Fn(u64) + Send,
    mut stop: watch::Receiver<bool>,
) {
    let mut installed_up_to: Option<u64> = None;
    let mut waited = false;
    loop {
        if !caught_up() {
            if !waited {
                tracing::info!("share sweep waits for the applied state to catch up");
                waited = true;
            }
            tokio::select! {
                _ = tokio::time::sleep(SWEEP_CATCH_UP_POLL) => {}
                _ = stop.changed() => return,
            }
            continue;
        }
        let mut after: Option<ShareId> = None;
        let mut total = 0u64;
        loop {
            match shares.sweep(after, SWEEP_BATCH).await {
                Ok((sweep, next)) => {
                    total += sweep.held;
                    if sweep.erased > 0 {
                        tracing::info!(
                            erased = sweep.erased,
                            "erased the shares of records that are gone"
                        );
                    }
                    match next {
                        Some(next) => after = Some(next),
                        None => break,
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "share sweep failed");
                    break;
                }
            }
        }
        held(total);
        installed_up_to = install_pass(&shares, installed_up_to, &stop).await;
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Installs this node's share of every record (active or staged) that names it and was
/// staged since the last complete pass began (`done_at`, the highest version issued then;
/// `None`: every record), so that a record's first recovery does not pay for opening
/// its share (an ECDH in the token, a check, a seal: about 0.4 ms of a node's CPU). In
/// batches of [`SWEEP_BATCH`] accounts looked at (the state's lock is held for one batch's
/// look only), paced: after each batch it rests as long as the
/// batch took, so it takes at most about half of one core from the recoveries. A share that
/// does not open or check is left for a recovery to refuse (counted in the pass's log line);
/// the HSM or the disk failing ends the pass, to be run again whole. Returns what to pass to
/// the next call.
async fn install_pass(
    shares: &NodeShares,
    done_at: Option<u64>,
    stop: &watch::Receiver<bool>,
) -> Option<u64> {
    let began_at = shares.version_clock();
    if done_at == Some(began_at) {
        return done_at;
    }
    let newer_than = done_at.unwrap_or(0);
    let (mut installed, mut refused) = (0u64, 0u64);
    let mut after = None;
    loop {
        if *stop.borrow() {
            return done_at;
        }
        let started = tokio::time::Instant::now();
        let (batch, next) = shares.records_to_install(after.as_ref(), SWEEP_BATCH, newer_than);
        let mut wrote = 0u64;
        for (account, version) in &batch {
            match shares.install(account, *version).await {
                Ok(true) => wrote += 1,
                Ok(false) => {}
                Err(bkv_vault::holder::HolderError::Refused(_)) => refused += 1,
                Err(e) => {
                    tracing::warn!(error = %e, "installing shares ahead of recoveries stopped");
                    return done_at;
                }
            }
        }
        if wrote > 0
            && let Err(e) = shares.flush().await
        {
            tracing::warn!(error = %e, "installing shares ahead of recoveries stopped");
            return done_at;
        }
        installed += wrote;
        let Some(next) = next else { break };
        after = Some(next);
        tokio::time::sleep(started.elapsed()).await;
    }
    if installed > 0 || refused > 0 {
        tracing::info!(installed, refused, "installed shares ahead of recoveries");
    }
    Some(began_at)
}
