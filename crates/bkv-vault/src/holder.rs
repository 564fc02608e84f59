//! [`ShareHolder`]: one node's side of the threshold OPRF. It installs the node's share of
//! an account's OPRF key from the record (opened with the node's own share-receiving key,
//! checked against its commitment, sealed under the node's own share key), keeps the
//! node's ledger of evaluations, and evaluates only a charge its own applied state holds,
//! within its own ledger's limit. A `bkv-node` runs it over its HSM and its disk, the
//! in-memory replica over software keys and a map: the rules are these, once.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bkv_core::ledger::{LedgerRefusal, ShareLedger};
use bkv_core::oprf::{
    self, BlindedElement, Commitment, DleqProof, EvaluatedElement, KeyShare, P256PublicKey,
    ShareCiphertext, ShareContext,
};
use bkv_core::{AccountId, AttemptId, AttemptView, ChargeNumber, RecordVersion, VaultState};
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::error::VaultError;

mod refresh;
mod repair;

pub use refresh::RefreshTask;
pub use repair::RepairTask;

/// A share's id in a node's ledger: SHA-256 of its ciphertext, so that the same share
/// delivered again (a replayed registration) finds the same ledger.
pub type ShareId = [u8; 32];

/// Most unsealed shares a holder keeps in memory.
pub const SHARE_CACHE: usize = 4096;

/// What to evaluate: a charged attempt's blinded element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalRequest {
    /// The account.
    pub account: AccountId,
    /// The record version charged.
    pub version: RecordVersion,
    /// The attempt charged.
    pub attempt_id: AttemptId,
    /// The charge's number.
    pub charge: ChargeNumber,
    /// The client's blinded element.
    pub blinded: BlindedElement,
}

/// One evaluation with its proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluated {
    /// `Z_i = k_i·B`.
    pub element: EvaluatedElement,
    /// DLEQ proof against the share's commitment.
    pub proof: DleqProof,
}

/// Why a holder does not evaluate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalRefusal {
    /// The charge has not reached this node's applied state in time.
    #[error("the charge has not been applied here yet")]
    NotYetApplied,
    /// This node's applied state holds no such charge on the active record (never charged,
    /// reset since, another blinded element, another version, destroyed or deleted).
    #[error("no such charge on the active record here: {0}")]
    NotCharged(&'static str),
    /// This node holds no share of the record.
    #[error("this node holds no share of the record")]
    NoShare,
    /// The share in the record does not open with this node's key or does not match its
    /// commitment.
    #[error("the record's share for this node is unusable: {0}")]
    BadShare(&'static str),
    /// The node's own ledger refuses.
    #[error(transparent)]
    Ledger(#[from] LedgerRefusal),
    /// This node's shares were erased (it left the cluster).
    #[error("this node's shares were erased: it is no longer a share-holder")]
    Erased,
    /// A share repair that does not fit this node's applied state or its own share.
    #[error("share repair refused: {0}")]
    Repair(String),
    /// A share refresh that does not fit this node's applied state or its own share.
    #[error("share refresh refused: {0}")]
    Refresh(String),
}

/// The token side of a share-holder: its share-receiving key and its share-sealing key.
pub trait ShareKeys: Send + Sync + 'static {
    /// The x-coordinate of ECDH between the node's share-receiving key and `ephemeral`.
    fn ecdh(
        &self,
        ephemeral: &[u8; 65],
    ) -> impl Future<Output = Result<Zeroizing<[u8; 32]>, VaultError>> + Send;

    /// Seals a share under the node's own share key.
    fn seal_share(
        &self,
        aad: &[u8],
        plaintext: &[u8],
    ) -> impl Future<Output = Result<Vec<u8>, VaultError>> + Send;

    /// Opens a share sealed by [`ShareKeys::seal_share`].
    fn unseal_share(
        &self,
        aad: &[u8],
        blob: &[u8],
    ) -> impl Future<Output = Result<Zeroizing<Vec<u8>>, VaultError>> + Send;
}

/// Where a share-holder keeps its ledgers: on the node's own disk, outside the replicated
/// state.
pub trait LedgerStore: Send + Sync + 'static {
    /// The ledger of a share, if installed.
    fn load(&self, id: &ShareId) -> Result<Option<ShareLedger>, VaultError>;

    /// Writes a ledger (durable once [`LedgerStore::flush`] returns). A ledger that is not
    /// erased becomes its record's latest ([`LedgerStore::latest`]); erasing one leaves the
    /// record's latest as it was.
    fn save(&self, id: &ShareId, ledger: &ShareLedger) -> Result<(), VaultError>;

    /// The id of the ledger installed last for `account`'s record `version` (erased since,
    /// or not), if any: where a share that replaces another (a refresh) takes its
    /// counters from.
    fn latest(
        &self,
        account: &AccountId,
        version: RecordVersion,
    ) -> Result<Option<ShareId>, VaultError>;

    /// Makes every save so far durable.
    fn flush(&self) -> impl Future<Output = Result<(), VaultError>> + Send;

    /// Up to `limit` ledgers with ids above `after`, in id order (for sweeps).
    fn scan(
        &self,
        after: Option<ShareId>,
        limit: usize,
    ) -> Result<Vec<(ShareId, ShareLedger)>, VaultError>;
}

/// The node's applied state, as the holder reads it.
pub trait AppliedState: Send + Sync + 'static {
    /// Reads the applied state.
    fn read<R>(&self, f: impl FnOnce(&VaultState) -> R) -> R;

    /// Resolves when the applied state may have changed.
    fn changed(&self) -> impl Future<Output = ()> + Send;
}

/// One node's share-holding.
pub struct ShareHolder<K, L, S> {
    node_id: u64,
    receive_key: P256PublicKey,
    keys: K,
    ledgers: L,
    state: S,
    /// One lock per stripe of share ids: ledger updates of one share are serialized.
    stripes: Vec<tokio::sync::Mutex<()>>,
    cache: Mutex<HashMap<ShareId, KeyShare>>,
    /// Set for good by [`ShareHolder::erased`]: nothing is evaluated or installed after.
    erased: AtomicBool,
}

impl<K, L, S> std::fmt::Debug for ShareHolder<K, L, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareHolder")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// What sweeping the ledgers did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Shares whose records are still live.
    pub held: u64,
    /// Shares erased in this sweep.
    pub erased: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<K: ShareKeys, L: LedgerStore, S: AppliedState> ShareHolder<K, L, S> {
    /// The holder of node `node_id`, whose share-receiving public key is `receive_key`.
    pub fn new(node_id: u64, receive_key: P256PublicKey, keys: K, ledgers: L, state: S) -> Self {
        Self {
            node_id,
            receive_key,
            keys,
            ledgers,
            state,
            stripes: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
            cache: Mutex::new(HashMap::new()),
            erased: AtomicBool::new(false),
        }
    }

    /// This holder's ledger store.
    pub fn ledgers(&self) -> &L {
        &self.ledgers
    }

    /// Marks this holder's shares as erased, for good (the node left the cluster and its
    /// keys were destroyed): forgets every share opened in memory, and refuses every
    /// evaluation and installation from now on with [`EvalRefusal::Erased`].
    pub fn erased(&self) {
        self.erased.store(true, Ordering::SeqCst);
        lock(&self.cache).clear();
    }

    fn check_not_erased(&self) -> Result<(), EvalRefusal> {
        if self.erased.load(Ordering::SeqCst) {
            return Err(EvalRefusal::Erased);
        }
        Ok(())
    }

    /// This node's id (its share index).
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Evaluates this node's share on `request`'s blinded element, if this node's applied
    /// state holds exactly that charge (waiting up to `wait` for it to be applied) and its
    /// own ledger admits it.
    pub async fn evaluate(
        &self,
        request: &EvalRequest,
        wait: Duration,
    ) -> Result<Evaluated, HolderError> {
        self.check_not_erased()?;
        let charged = self.charged(request, wait).await?;
        let (cluster_name, last_reset) = self.state.read(|s| {
            let name = s
                .cluster()
                .map(|c| c.cluster_name.clone())
                .unwrap_or_default();
            let reset = s
                .active_oprf(&request.account, request.version)
                .and_then(|(_, reset)| reset);
            (name, reset)
        });
        let stored = charged
            .oprf
            .share_of(self.node_id)
            .ok_or(EvalRefusal::NoShare)?;
        let id: ShareId = Sha256::digest(&stored.ciphertext).into();
        let (_guards, replaced) = self
            .lock_record_share(&request.account, request.version, &id)
            .await?;
        let (mut ledger, mut dirty, installed) = match self.ledgers.load(&id)? {
            Some(ledger) => (ledger, false, None),
            None => {
                let (ledger, share) = self
                    .new_ledger(
                        &cluster_name,
                        &request.account,
                        request.version,
                        charged.guess_limit.get(),
                        &charged.oprf,
                        (&id, replaced),
                    )
                    .await?;
                (ledger, true, Some(share))
            }
        };
        if ledger.account != request.account || ledger.version != request.version {
            return Err(EvalRefusal::BadShare("installed for another record").into());
        }
        if let Some(reset) = last_reset {
            dirty |= ledger.catch_up_reset(&cluster_name, &reset);
        }
        let blinded_hash: [u8; 32] = Sha256::digest(request.blinded.as_bytes()).into();
        let admitted = ledger.admit(request.charge, request.attempt_id, blinded_hash);
        if dirty || matches!(admitted, Ok(true)) {
            self.ledgers.save(&id, &ledger)?;
            self.ledgers.flush().await?;
        }
        admitted.map_err(EvalRefusal::from)?;
        let share = match installed {
            Some(share) => share,
            None => self.unsealed(&id, &ledger).await?,
        };
        let (element, proof) = oprf::evaluate_share(&share, &request.blinded, &mut OsRng);
        self.remember(id, share);
        Ok(Evaluated { element, proof })
    }

    /// Installs this node's share of `account`'s record at `version` (active or staged)
    /// ahead of its first recovery, so that the recovery does not pay for it: opens it with
    /// the node's share-receiving key, checks it against its commitment, seals it and writes
    /// a fresh ledger. Returns whether it installed one (`false`: installed already, or the
    /// record is gone). The ledger is durable after the next [`ShareHolder::flush`]; one
    /// lost in a crash is installed again, the same way.
    pub async fn install(
        &self,
        account: &AccountId,
        version: RecordVersion,
    ) -> Result<bool, HolderError> {
        self.check_not_erased()?;
        let found = self.state.read(|s| {
            let name = s.cluster().map(|c| c.cluster_name.clone());
            let record = s
                .live_records(account)
                .into_iter()
                .find(|(v, _, _)| *v == version)
                .map(|(_, limit, oprf)| (limit, oprf.clone()));
            record.map(|r| (name.unwrap_or_default(), r))
        });
        let Some((cluster_name, (guess_limit, oprf))) = found else {
            return Ok(false);
        };
        let stored = oprf.share_of(self.node_id).ok_or(EvalRefusal::NoShare)?;
        let id: ShareId = Sha256::digest(&stored.ciphertext).into();
        let (_guards, replaced) = self.lock_record_share(account, version, &id).await?;
        if self.ledgers.load(&id)?.is_some() {
            return Ok(false);
        }
        let (ledger, _share) = self
            .new_ledger(
                &cluster_name,
                account,
                version,
                guess_limit.get(),
                &oprf,
                (&id, replaced),
            )
            .await?;
        self.ledgers.save(&id, &ledger)?;
        Ok(true)
    }

    /// The records among the next `scan` accounts above `after` that name this node as a
    /// share-holder and were staged after position `newer_than`, and where to go on from
    /// (`None`: the end) (`VaultState::records_with_share_of`): what [`ShareHolder::install`]
    /// is given.
    pub fn records_to_install(
        &self,
        after: Option<&AccountId>,
        scan: usize,
        newer_than: u64,
    ) -> (Vec<(AccountId, RecordVersion)>, Option<AccountId>) {
        self.state
            .read(|s| s.records_with_share_of(self.node_id, after, scan, newer_than))
    }

    /// The highest record version the applied state has issued: a pass that installs the
    /// records `newer_than` it later finds exactly those staged since.
    pub fn version_clock(&self) -> u64 {
        self.state.read(|s| s.version_clock())
    }

    /// Makes every ledger written so far durable.
    pub async fn flush(&self) -> Result<(), VaultError> {
        self.ledgers.flush().await
    }

    /// A new ledger for this node's share of a record: the share opened, checked and sealed
    /// under the node's own share key (returned as well, to evaluate at once). If another
    /// share of the same record was installed here before (`replaced`: a refresh replaced
    /// it), the new ledger takes over its counters (evaluations since the last signed
    /// reset, and that reset), is saved, and the old one is erased: a refresh never gives a
    /// node a fresh budget, and never leaves the old share usable. The caller holds the
    /// locks of both ([`Self::lock_record_share`]).
    async fn new_ledger(
        &self,
        cluster_name: &str,
        account: &AccountId,
        version: RecordVersion,
        guess_limit: u32,
        oprf: &bkv_core::OprfRecord,
        (id, replaced): (&ShareId, Option<ShareId>),
    ) -> Result<(ShareLedger, KeyShare), HolderError> {
        let stored = oprf.share_of(self.node_id).ok_or(EvalRefusal::NoShare)?;
        let context = self.context(cluster_name, account, guess_limit, oprf, &stored.commitment)?;
        let share = self.open_share(&stored.ciphertext, &context).await?;
        let sealed = self
            .keys
            .seal_share(id, share.to_bytes().as_slice())
            .await?;
        let mut ledger = ShareLedger::new(
            account.clone(),
            version,
            guess_limit,
            oprf.reset_key,
            sealed,
        );
        if let Some(old_id) = replaced
            && let Some(mut old) = self.ledgers.load(&old_id)?
        {
            if old.guess_limit != ledger.guess_limit || old.reset_key != ledger.reset_key {
                return Err(EvalRefusal::BadShare(
                    "bound to another guess limit or reset key than the share it replaces",
                )
                .into());
            }
            ledger.take_counters_of(&old);
            self.ledgers.save(id, &ledger)?;
            if !old.is_erased() {
                old.erase();
                self.ledgers.save(&old_id, &old)?;
            }
            lock(&self.cache).remove(&old_id);
        }
        Ok((ledger, share))
    }

    /// Waits until the applied state shows `request`'s charge (or shows it never will).
    async fn charged(
        &self,
        request: &EvalRequest,
        wait: Duration,
    ) -> Result<Box<bkv_core::ChargedAttemptView>, EvalRefusal> {
        let deadline = Instant::now() + wait;
        loop {
            let view = self
                .state
                .read(|s| s.attempt(&request.account, &request.attempt_id));
            match view {
                AttemptView::Charged(c) if c.version == request.version => {
                    if c.charge != request.charge {
                        return Err(EvalRefusal::NotCharged("another charge number"));
                    }
                    let hash: [u8; 32] = Sha256::digest(request.blinded.as_bytes()).into();
                    if c.request_hash != hash {
                        return Err(EvalRefusal::NotCharged("another blinded element"));
                    }
                    return Ok(c);
                }
                AttemptView::Charged(_) => return Err(EvalRefusal::NotCharged("another version")),
                AttemptView::NotCharged {
                    version,
                    last_charge,
                    ..
                } if version == request.version && last_charge < request.charge => {}
                AttemptView::NotCharged { .. } => {
                    return Err(EvalRefusal::NotCharged("not among the charges"));
                }
                AttemptView::Destroyed { .. } => {
                    return Err(EvalRefusal::NotCharged("destroyed"));
                }
                AttemptView::NoRecord => return Err(EvalRefusal::NotCharged("no record")),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(EvalRefusal::NotYetApplied);
            }
            let _ = tokio::time::timeout(left, self.state.changed()).await;
        }
    }

    /// Serializes the ledger updates of share `id` (one lock per stripe of ids).
    async fn lock_share(&self, id: &ShareId) -> tokio::sync::MutexGuard<'_, ()> {
        self.stripes[self.stripe(id)].lock().await
    }

    fn stripe(&self, id: &ShareId) -> usize {
        usize::from(id[0]) % self.stripes.len()
    }

    /// Locks share `id` of `account`'s record `version` and, if another share of that
    /// record was installed here last (one a refresh replaced), that one too, in stripe
    /// order (so that two callers never wait for each other); returns the guards and the
    /// other share's id. Looks the other share up again once locked, and starts over if it
    /// changed meanwhile.
    async fn lock_record_share(
        &self,
        account: &AccountId,
        version: RecordVersion,
        id: &ShareId,
    ) -> Result<(ShareGuards<'_>, Option<ShareId>), VaultError> {
        for _ in 0..4 {
            let replaced = self.ledgers.latest(account, version)?.filter(|p| p != id);
            let (first, second) = match replaced.map(|p| self.stripe(&p)) {
                Some(other) if other != self.stripe(id) => {
                    let (a, b) = (self.stripe(id).min(other), self.stripe(id).max(other));
                    let first = self.stripes[a].lock().await;
                    (first, Some(self.stripes[b].lock().await))
                }
                _ => (self.lock_share(id).await, None),
            };
            if self.ledgers.latest(account, version)?.filter(|p| p != id) == replaced {
                return Ok((ShareGuards(first, second), replaced));
            }
        }
        Err(VaultError::unavailable(
            "another share of the record kept being installed: retry",
        ))
    }

    /// What this node's share ciphertext of a record is bound to.
    fn context(
        &self,
        cluster_name: &str,
        account: &AccountId,
        guess_limit: u32,
        oprf: &bkv_core::OprfRecord,
        commitment: &[u8; 32],
    ) -> Result<ShareContext, EvalRefusal> {
        Ok(ShareContext {
            cluster_name: cluster_name.to_string(),
            account: account.clone(),
            node_id: self.node_id,
            guess_limit,
            reset_key: oprf.reset_key,
            commitment: Commitment::parse(commitment)
                .map_err(|_| EvalRefusal::BadShare("commitment"))?,
        })
    }

    /// What a compromised node can do with its own share, and the lying node of the tests
    /// does: evaluate any blinded element on the active record, with no charge and no
    /// ledger. Built only for failpoints builds; an honest node runs [`Self::evaluate`].
    #[cfg(feature = "failpoints")]
    pub async fn evaluate_unchecked(
        &self,
        request: &EvalRequest,
    ) -> Result<Evaluated, HolderError> {
        let (cluster_name, record) = self.state.read(|s| {
            let name = s.cluster().map(|c| c.cluster_name.clone());
            (name.unwrap_or_default(), s.active_record(&request.account))
        });
        let record = record
            .filter(|r| r.version == request.version)
            .ok_or(EvalRefusal::NotCharged("no such active record"))?;
        let stored = record
            .oprf
            .share_of(self.node_id)
            .ok_or(EvalRefusal::NoShare)?;
        let context = self.context(
            &cluster_name,
            &request.account,
            record.guess_limit.get(),
            &record.oprf,
            &stored.commitment,
        )?;
        let share = self.open_share(&stored.ciphertext, &context).await?;
        let (element, proof) = oprf::evaluate_share(&share, &request.blinded, &mut OsRng);
        Ok(Evaluated { element, proof })
    }

    /// Opens this node's share from the record and checks it against its commitment.
    async fn open_share(
        &self,
        ciphertext: &[u8],
        context: &ShareContext,
    ) -> Result<KeyShare, HolderError> {
        let ciphertext = ShareCiphertext::parse(ciphertext)
            .map_err(|_| EvalRefusal::BadShare("ciphertext encoding"))?;
        let z = self.keys.ecdh(ciphertext.ephemeral_public()).await?;
        let share = oprf::open_share(&z, &ciphertext, &self.receive_key, context)
            .map_err(|_| EvalRefusal::BadShare("does not open with this node's key"))?;
        if !oprf::share_matches(&share, &context.commitment) {
            return Err(EvalRefusal::BadShare("does not match its commitment").into());
        }
        Ok(share)
    }

    async fn unsealed(&self, id: &ShareId, ledger: &ShareLedger) -> Result<KeyShare, HolderError> {
        if let Some(share) = lock(&self.cache).get(id) {
            return Ok(share.clone());
        }
        let plain = self.keys.unseal_share(id, &ledger.sealed_share).await?;
        KeyShare::from_bytes(self.node_id, &plain).map_err(|_| {
            HolderError::Vault(VaultError::Internal("sealed share does not decode".into()))
        })
    }

    fn remember(&self, id: ShareId, share: KeyShare) {
        let mut cache = lock(&self.cache);
        if cache.len() >= SHARE_CACHE && !cache.contains_key(&id) {
            cache.clear();
        }
        cache.insert(id, share);
    }

    /// Erases the shares whose records are no longer live (destroyed, deleted, superseded),
    /// `limit` ledgers at most per call, from `after`; returns what it saw and where to go
    /// on from (`None` at the end).
    pub async fn sweep(
        &self,
        after: Option<ShareId>,
        limit: usize,
    ) -> Result<(Sweep, Option<ShareId>), VaultError> {
        let batch = self.ledgers.scan(after, limit)?;
        let next = (batch.len() == limit)
            .then(|| batch.last().map(|(id, _)| *id))
            .flatten();
        let mut sweep = Sweep::default();
        for (id, ledger) in batch {
            if ledger.is_erased() {
                continue;
            }
            // This node's share of the ledger's record, if the record is live: `None` if
            // it is gone, `Some(None)` if it names no share of this node any more. A
            // record the state has not issued yet (a state behind this node's ledgers)
            // counts as live, never as gone.
            let current: Option<Option<ShareId>> = self.state.read(|s| {
                if ledger.version.get() > s.version_clock() {
                    return Some(Some(id));
                }
                s.live_records(&ledger.account)
                    .into_iter()
                    .find(|(version, _, _)| *version == ledger.version)
                    .map(|(_, _, oprf)| {
                        oprf.share_of(self.node_id)
                            .map(|stored| Sha256::digest(&stored.ciphertext).into())
                    })
            });
            match current {
                Some(Some(current)) if current == id => {
                    sweep.held += 1;
                    continue;
                }
                Some(Some(current)) => {
                    // A refresh replaced the share: installing the new one takes this
                    // one's counters and erases it. This one is erased only once the share
                    // the state names has a live ledger here: one that does not install,
                    // or that is already erased (a state older than this ledger), leaves
                    // this one for the next sweep.
                    match self.install(&ledger.account, ledger.version).await {
                        Ok(_) => {}
                        Err(HolderError::Vault(e)) => return Err(e),
                        Err(HolderError::Refused(_)) => {
                            sweep.held += 1;
                            continue;
                        }
                    }
                    if self.ledgers.load(&current)?.is_none_or(|l| l.is_erased()) {
                        sweep.held += 1;
                        continue;
                    }
                }
                // The record is gone, or it names no share of this node any more.
                _ => {}
            }
            let _guard = self.lock_share(&id).await;
            let Some(mut ledger) = self.ledgers.load(&id)? else {
                continue;
            };
            if !ledger.is_erased() {
                ledger.erase();
                self.ledgers.save(&id, &ledger)?;
            }
            lock(&self.cache).remove(&id);
            sweep.erased += 1;
        }
        if sweep.erased > 0 {
            self.ledgers.flush().await?;
        }
        Ok((sweep, next))
    }
}

/// The locks of one share, and of the share of the same record it replaces.
struct ShareGuards<'a>(
    #[allow(dead_code, reason = "held, not read")] tokio::sync::MutexGuard<'a, ()>,
    #[allow(dead_code, reason = "held, not read")] Option<tokio::sync::MutexGuard<'a, ()>>,
);

/// A holder's failure: a refusal (the caller's or the cluster's state), or the node's own
/// trouble (HSM, disk).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HolderError {
    /// The holder refuses.
    #[error(transparent)]
    Refused(#[from] EvalRefusal),
    /// The node could not do its part.
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl From<LedgerRefusal> for HolderError {
    fn from(e: LedgerRefusal) -> Self {
        Self::Refused(EvalRefusal::Ledger(e))
    }
}
