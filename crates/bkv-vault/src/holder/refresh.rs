//! A share-holder's part in share refresh (`bkv_core::oprf::refresh`): it deals a sharing
//! of zero to the refresh's participants, and adds the pieces dealt to it to its share,
//! encrypting the result to its own key for the `RefreshShares` command. Each step checks
//! the refresh against this node's own applied state (the active record at that version,
//! the participants increasing, at least its threshold, each a holder of it and a voter of
//! the share map in force, this node among them) and binds it to the guess limit and reset
//! key this node's share was made under, as its ledger holds them. Nothing is installed or
//! erased here: once `RefreshShares` is applied, the new share is installed like any other
//! and takes over the old one's counters (`ShareHolder::install`).

use bkv_core::oprf::{self, Commitment, P256PublicKey, RefreshContext, ShareCiphertext};
use bkv_core::{AccountId, OprfRecord, RecordVersion, StoredShare};
use rand::rngs::OsRng;

use super::{AppliedState, EvalRefusal, HolderError, LedgerStore, ShareHolder, ShareKeys};

/// One record's refresh: whose record, over which participants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTask {
    /// The account.
    pub account: AccountId,
    /// Its active record's version.
    pub version: RecordVersion,
    /// The participants, increasing: holders of the record that are voters of the map.
    pub participants: Vec<u64>,
}

/// What the applied state says of a refresh.
struct RefreshView {
    cluster_name: String,
    oprf: OprfRecord,
    /// The participants' commitments before the refresh, in their order.
    commitments: Vec<(u64, Commitment)>,
    /// The participants' share-receiving keys, in their order.
    keys: Vec<P256PublicKey>,
}

fn refuse(why: impl Into<String>) -> HolderError {
    HolderError::Refused(EvalRefusal::Refresh(why.into()))
}

impl<K: ShareKeys, L: LedgerStore, S: AppliedState> ShareHolder<K, L, S> {
    /// Step 1: a sharing of zero over the participants, one piece for each, encrypted to
    /// it (in the participants' order).
    pub async fn refresh_deal(
        &self,
        task: &RefreshTask,
    ) -> Result<Vec<ShareCiphertext>, HolderError> {
        self.check_not_erased()?;
        let view = self.refresh_view(task)?;
        let context = self.refresh_context(task, &view).await?.0;
        oprf::deal_refresh(self.node_id, &context, &view.keys, &mut OsRng)
            .map_err(|e| refuse(e.to_string()))
    }

    /// Step 2: the pieces dealt to this node, one per participant in their order, opened
    /// in its token and added to its share; the new share encrypted to this node's own key
    /// under the limit and reset key of its ledger, with its commitment: what this node
    /// puts in `RefreshShares`. Checked against nothing but itself: the replicas check
    /// every participant's new commitment together.
    pub async fn refresh_apply(
        &self,
        task: &RefreshTask,
        pieces: &[ShareCiphertext],
    ) -> Result<StoredShare, HolderError> {
        self.check_not_erased()?;
        let view = self.refresh_view(task)?;
        if pieces.len() != task.participants.len() {
            return Err(refuse(format!(
                "{} pieces, one per participant ({}) needed",
                pieces.len(),
                task.participants.len()
            )));
        }
        let (context, share) = self.refresh_context(task, &view).await?;
        let zs = self.ecdh_all(pieces).await?;
        let new = oprf::apply_refresh(&share, &self.receive_key, &context, pieces, &zs)
            .map_err(|e| refuse(format!("the pieces: {e}")))?;
        let commitment = new.commitment();
        let own = oprf::ShareContext {
            cluster_name: view.cluster_name,
            account: task.account.clone(),
            node_id: self.node_id,
            guess_limit: context.guess_limit,
            reset_key: context.reset_key,
            commitment,
        };
        let ciphertext = oprf::encrypt_share(&self.receive_key, &new, &own, &mut OsRng);
        Ok(StoredShare {
            node_id: self.node_id,
            commitment: *commitment.as_bytes(),
            ciphertext: ciphertext.as_bytes().to_vec(),
        })
    }

    /// Checks a refresh against the applied state: the active record at its version, the
    /// participants increasing, at least its threshold, each a holder of it and in the
    /// share map in force, this node among them.
    fn refresh_view(&self, task: &RefreshTask) -> Result<RefreshView, HolderError> {
        let found = self.state.read(|s| {
            let cluster = s.cluster()?;
            let map = cluster.share_map.as_ref()?.map.clone();
            let record = s.active_record(&task.account)?;
            Some((cluster.cluster_name.clone(), map, record))
        });
        let Some((cluster_name, map, record)) = found else {
            return Err(refuse("no such active record here, or no share map"));
        };
        if record.version != task.version {
            return Err(refuse("another version is active here"));
        }
        if !task.participants.contains(&self.node_id) {
            return Err(refuse("this node is not a participant"));
        }
        if task.participants.len() < usize::from(record.oprf.threshold)
            || task.participants.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(refuse(
                "the participants must be at least the record's threshold of its holders, \
                 increasing",
            ));
        }
        let mut commitments = Vec::with_capacity(task.participants.len());
        let mut keys = Vec::with_capacity(task.participants.len());
        for node in &task.participants {
            let stored = record
                .oprf
                .share_of(*node)
                .ok_or_else(|| refuse(format!("node {node} holds no share of the record")))?;
            let commitment = Commitment::parse(&stored.commitment)
                .map_err(|_| refuse(format!("node {node}'s commitment does not parse")))?;
            let key = map
                .holder(*node)
                .and_then(|h| P256PublicKey::parse(&h.receive_key).ok())
                .ok_or_else(|| refuse(format!("node {node} is not in the share map in force")))?;
            commitments.push((*node, commitment));
            keys.push(key);
        }
        Ok(RefreshView {
            cluster_name,
            oprf: record.oprf,
            commitments,
            keys,
        })
    }

    /// This node's context (bound to the limit and reset key its own ledger holds) and its
    /// share, installed first if it was not yet.
    async fn refresh_context(
        &self,
        task: &RefreshTask,
        view: &RefreshView,
    ) -> Result<(RefreshContext, bkv_core::oprf::KeyShare), HolderError> {
        let (ledger, share) = self
            .installed_share(&task.account, task.version, &view.oprf)
            .await?;
        let context = RefreshContext {
            cluster_name: view.cluster_name.clone(),
            account: task.account.clone(),
            version: task.version.get(),
            guess_limit: ledger.guess_limit,
            reset_key: ledger.reset_key,
            threshold: view.oprf.threshold,
            participants: view.commitments.clone(),
        };
        Ok((context, share))
    }
}
