//! A share-holder's part in share repair (`bkv_core::oprf::repair`): as a helper it deals
//! its weighted share in pieces and adds up the pieces dealt to it; as the voter repaired
//! it takes the helpers' sums into its share and encrypts it to its own key, for the
//! `AddShare` command. Each step checks the repair against this node's own applied state
//! (the voter in the share map in force and holding no share of the active record, the
//! helpers `threshold` of its holders) and binds it to the guess limit and reset key this
//! node's share was made under, as its ledger holds them.

use bkv_core::ledger::ShareLedger;
use bkv_core::oprf::{
    self, Commitment, KeyShare, P256PublicKey, RepairContext, ShareCiphertext, ShareContext,
};
use bkv_core::{AccountId, OprfRecord, RecordVersion, StoredShare};
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{AppliedState, EvalRefusal, HolderError, LedgerStore, ShareHolder, ShareId, ShareKeys};

/// One record's repair: whose record, for which voter, by which helpers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairTask {
    /// The account.
    pub account: AccountId,
    /// Its active record's version.
    pub version: RecordVersion,
    /// The voter that gets its share.
    pub target: u64,
    /// The helpers, increasing: `threshold` of the record's holders.
    pub helpers: Vec<u64>,
}

/// What the applied state says of a repair.
struct RepairView {
    cluster_name: String,
    guess_limit: u32,
    oprf: OprfRecord,
    /// The helpers' share-receiving keys, in the helpers' order.
    helper_keys: Vec<P256PublicKey>,
    target_key: P256PublicKey,
}

fn refuse(why: impl Into<String>) -> HolderError {
    HolderError::Refused(EvalRefusal::Repair(why.into()))
}

impl<K: ShareKeys, L: LedgerStore, S: AppliedState> ShareHolder<K, L, S> {
    /// Step 1, as a helper: this node's weighted share in one piece per helper, each
    /// encrypted to that helper (in the helpers' order).
    pub async fn repair_deal(
        &self,
        task: &RepairTask,
    ) -> Result<Vec<ShareCiphertext>, HolderError> {
        self.check_not_erased()?;
        let view = self.repair_view(task)?;
        let (context, share) = self.helper_context(task, &view).await?;
        oprf::deal(&share, &context, &view.helper_keys, &mut OsRng)
            .map_err(|e| refuse(e.to_string()))
    }

    /// Step 2, as a helper: the pieces dealt to this node, one per helper in the helpers'
    /// order, opened in its token and added up; the sum encrypted to the voter.
    pub async fn repair_combine(
        &self,
        task: &RepairTask,
        pieces: &[ShareCiphertext],
    ) -> Result<ShareCiphertext, HolderError> {
        self.check_not_erased()?;
        let view = self.repair_view(task)?;
        if pieces.len() != task.helpers.len() {
            return Err(refuse(format!(
                "{} pieces, one per helper ({}) needed",
                pieces.len(),
                task.helpers.len()
            )));
        }
        let (context, _) = self.helper_context(task, &view).await?;
        let zs = self.ecdh_all(pieces).await?;
        oprf::combine_pieces(
            (self.node_id, &self.receive_key),
            &context,
            pieces,
            &zs,
            &view.target_key,
            &mut OsRng,
        )
        .map_err(|e| refuse(e.to_string()))
    }

    /// Step 3, as the voter: the helpers' sums (in the helpers' order) opened in its token
    /// and added up into its share, checked against the commitment the record's give at
    /// its index, and encrypted to its own share-receiving key: the share `AddShare` puts
    /// in the record (installed like a registered one once applied).
    pub async fn repair_take(
        &self,
        task: &RepairTask,
        sums: &[ShareCiphertext],
    ) -> Result<StoredShare, HolderError> {
        self.check_not_erased()?;
        if task.target != self.node_id {
            return Err(refuse("this node is not the repair's target"));
        }
        let view = self.repair_view(task)?;
        let context = RepairContext {
            cluster_name: view.cluster_name.clone(),
            account: task.account.clone(),
            version: task.version.get(),
            guess_limit: view.guess_limit,
            reset_key: view.oprf.reset_key,
            target: task.target,
            helpers: task.helpers.clone(),
        };
        let mut points = Vec::with_capacity(task.helpers.len());
        for helper in &task.helpers {
            let stored = view
                .oprf
                .share_of(*helper)
                .ok_or_else(|| refuse("a helper holds no share"))?;
            let commitment = Commitment::parse(&stored.commitment)
                .map_err(|_| refuse("a helper's commitment does not parse"))?;
            points.push((*helper, commitment));
        }
        let expected =
            oprf::repaired_commitment(&points, task.target).map_err(|e| refuse(e.to_string()))?;
        let zs = self.ecdh_all(sums).await?;
        let share = oprf::take_repaired(&self.receive_key, &context, sums, &zs, &expected)
            .map_err(|e| refuse(format!("the helpers' sums: {e}")))?;
        let own = ShareContext {
            cluster_name: view.cluster_name,
            account: task.account.clone(),
            node_id: self.node_id,
            guess_limit: view.guess_limit,
            reset_key: view.oprf.reset_key,
            commitment: expected,
        };
        let ciphertext = oprf::encrypt_share(&self.receive_key, &share, &own, &mut OsRng);
        Ok(StoredShare {
            node_id: self.node_id,
            commitment: *expected.as_bytes(),
            ciphertext: ciphertext.as_bytes().to_vec(),
        })
    }

    /// Checks a repair against the applied state: the active record at its version, the
    /// voter in the share map in force and holding no share of it, the helpers increasing,
    /// `threshold` of the record's holders and in the map; this node the target or a helper.
    fn repair_view(&self, task: &RepairTask) -> Result<RepairView, HolderError> {
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
        if task.target != self.node_id && !task.helpers.contains(&self.node_id) {
            return Err(refuse("this node is neither the target nor a helper"));
        }
        if record.oprf.share_of(task.target).is_some() {
            return Err(refuse("the target holds a share of the record already"));
        }
        if task.helpers.len() != usize::from(record.oprf.threshold)
            || task.helpers.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(refuse(
                "the helpers must be the record's threshold of its holders, increasing",
            ));
        }
        let key_of = |node: u64| {
            map.holder(node)
                .and_then(|h| P256PublicKey::parse(&h.receive_key).ok())
                .ok_or_else(|| refuse(format!("node {node} is not in the share map in force")))
        };
        let mut helper_keys = Vec::with_capacity(task.helpers.len());
        for helper in &task.helpers {
            if record.oprf.share_of(*helper).is_none() {
                return Err(refuse(format!(
                    "helper {helper} holds no share of the record"
                )));
            }
            helper_keys.push(key_of(*helper)?);
        }
        let target_key = key_of(task.target)?;
        Ok(RepairView {
            cluster_name,
            guess_limit: record.guess_limit.get(),
            oprf: record.oprf,
            helper_keys,
            target_key,
        })
    }

    /// A helper's context (bound to the limit and reset key its own ledger holds) and its
    /// share, installed first if it was not yet.
    async fn helper_context(
        &self,
        task: &RepairTask,
        view: &RepairView,
    ) -> Result<(RepairContext, KeyShare), HolderError> {
        let (ledger, share) = self
            .installed_share(&task.account, task.version, &view.oprf)
            .await?;
        let context = RepairContext {
            cluster_name: view.cluster_name.clone(),
            account: task.account.clone(),
            version: task.version.get(),
            guess_limit: ledger.guess_limit,
            reset_key: ledger.reset_key,
            target: task.target,
            helpers: task.helpers.clone(),
        };
        Ok((context, share))
    }

    /// This node's ledger and share of `account`'s record `version` (whose public half is
    /// `oprf`), installed first if it was not yet; refused if erased or installed for
    /// another record.
    pub(super) async fn installed_share(
        &self,
        account: &AccountId,
        version: RecordVersion,
        oprf: &OprfRecord,
    ) -> Result<(ShareLedger, KeyShare), HolderError> {
        let stored = oprf.share_of(self.node_id).ok_or(EvalRefusal::NoShare)?;
        let id: ShareId = Sha256::digest(&stored.ciphertext).into();
        let ledger = match self.ledgers.load(&id)? {
            Some(ledger) => ledger,
            None => {
                self.install(account, version).await?;
                self.ledgers
                    .load(&id)?
                    .ok_or(EvalRefusal::BadShare("the share could not be installed"))?
            }
        };
        if ledger.is_erased() {
            return Err(EvalRefusal::Ledger(bkv_core::ledger::LedgerRefusal::Erased).into());
        }
        if &ledger.account != account || ledger.version != version {
            return Err(EvalRefusal::BadShare("installed for another record").into());
        }
        let share = self.unsealed(&id, &ledger).await?;
        Ok((ledger, share))
    }

    /// ECDH in the token with each ciphertext's ephemeral key.
    pub(super) async fn ecdh_all(
        &self,
        ciphertexts: &[ShareCiphertext],
    ) -> Result<Vec<Zeroizing<[u8; 32]>>, HolderError> {
        let mut zs = Vec::with_capacity(ciphertexts.len());
        for ciphertext in ciphertexts {
            zs.push(self.keys.ecdh(ciphertext.ephemeral_public()).await?);
        }
        Ok(zs)
    }
}
