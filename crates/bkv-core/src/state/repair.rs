//! Share repair in the replicated state: applying `AddShare` (every replica checks the new
//! share's commitment against the record's own), and finding the active records a voter
//! holds no share of (what its repair job works through).

use super::{ActiveRecord, Applied, VaultState, event};
use crate::audit::AuditKind;
use crate::ids::{AccountId, RecordVersion};
use crate::oprf::{self, Commitment, ShareCiphertext};
use crate::oprf_record::{OprfRecord, StoredShare};
use crate::outcome::{Outcome, Rejection};

/// How many accounts' active records name a voter as a share-holder, and how many do not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShareCoverage {
    /// Active records the voter holds a share of.
    pub held: u64,
    /// Active records it holds none of.
    pub missing: u64,
}

impl VaultState {
    pub(super) fn add_share(
        &mut self,
        log_index: u64,
        account: &AccountId,
        version: RecordVersion,
        helpers: &[u64],
        share: &StoredShare,
    ) -> Applied {
        let refuse = |why: String| Applied::rejected(Rejection::BadRepair(why));
        let in_map = self
            .cluster
            .as_ref()
            .and_then(|c| c.share_map.as_ref())
            .is_some_and(|m| m.map.holder(share.node_id).is_some());
        if !in_map {
            return refuse(format!(
                "node {} is not in the share map in force",
                share.node_id
            ));
        }
        let Some(oprf) = self.active_oprf_at(account, version) else {
            return Applied::rejected(Rejection::VersionNotActive);
        };
        if let Some(held) = oprf.share_of(share.node_id) {
            return if held == share {
                Applied::quiet(Outcome::ShareAdded {
                    version,
                    node_id: share.node_id,
                })
            } else {
                refuse(format!(
                    "node {} already holds a share of the record",
                    share.node_id
                ))
            };
        }
        let voters: Vec<u64> = self
            .cluster
            .as_ref()
            .and_then(|c| c.share_map.as_ref())
            .map(|m| m.map.holders.iter().map(|h| h.node_id).collect())
            .unwrap_or_default();
        if let Err(why) = check_repaired(oprf, helpers, share, &voters) {
            return refuse(why);
        }
        let Some(active) = self
            .accounts
            .get_mut(account)
            .and_then(|e| e.active.as_mut())
        else {
            return Applied::rejected(Rejection::VersionNotActive);
        };
        // Holders that left the map are dropped as the new one joins: they are no longer
        // asked, and the record's holder list stays at most as long as the map (the
        // helpers, `threshold` voters, stay).
        active.oprf.shares.retain(|s| voters.contains(&s.node_id));
        let at = active
            .oprf
            .shares
            .partition_point(|s| s.node_id < share.node_id);
        active.oprf.shares.insert(at, share.clone());
        self.last_change = log_index;
        Applied {
            outcome: Outcome::ShareAdded {
                version,
                node_id: share.node_id,
            },
            events: vec![event(
                AuditKind::ShareRepaired,
                account,
                Some(version),
                None,
                None,
            )],
        }
    }

    /// How many accounts' active records `node_id` holds a share of and how many it holds
    /// none of (one pass over the accounts).
    pub fn share_coverage(&self, node_id: u64) -> ShareCoverage {
        let mut coverage = ShareCoverage::default();
        for active in self.accounts.values().filter_map(|a| a.active.as_ref()) {
            if active.oprf.share_of(node_id).is_some() {
                coverage.held += 1;
            } else {
                coverage.missing += 1;
            }
        }
        coverage
    }

    /// The active records, among the next `scan` accounts above `after` (every account for
    /// `None`), that do not name `node_id` as a share-holder, with their public OPRF
    /// halves, and the last account looked at if more may follow (`None` at the end): what
    /// a voter's repair job works through, a batch at a time.
    pub fn records_missing_share_of(
        &self,
        node_id: u64,
        after: Option<&AccountId>,
        scan: usize,
    ) -> (
        Vec<(AccountId, RecordVersion, OprfRecord)>,
        Option<AccountId>,
    ) {
        self.active_records_where(after, scan, |active| {
            active.oprf.share_of(node_id).is_none()
        })
    }

    /// The active records, among the next `scan` accounts above `after` (every account for
    /// `None`), that `keep` accepts, with their public OPRF halves, and the last account
    /// looked at if more may follow (`None` at the end).
    pub(super) fn active_records_where(
        &self,
        after: Option<&AccountId>,
        scan: usize,
        keep: impl Fn(&ActiveRecord) -> bool,
    ) -> (
        Vec<(AccountId, RecordVersion, OprfRecord)>,
        Option<AccountId>,
    ) {
        let mut out = Vec::new();
        let mut last = None;
        for (seen, (account, entry)) in self.accounts.iter_after(after).enumerate() {
            if seen == scan {
                return (out, last);
            }
            if let Some(active) = entry.active.as_ref()
                && keep(active)
            {
                out.push((account.clone(), active.version, active.oprf.clone()));
            }
            last = Some(account.clone());
        }
        (out, None)
    }
}

/// The checks every replica makes of a repaired share: helpers increasing, exactly the
/// record's threshold of them, each a holder and a voter of the map in force; the
/// ciphertext well formed; the commitment the helpers' commitments give at the voter's
/// index.
fn check_repaired(
    oprf: &OprfRecord,
    helpers: &[u64],
    share: &StoredShare,
    voters: &[u64],
) -> Result<(), String> {
    if helpers.len() != usize::from(oprf.threshold) {
        return Err(format!(
            "{} helpers, the record's threshold is {}",
            helpers.len(),
            oprf.threshold
        ));
    }
    if helpers.windows(2).any(|w| w[0] >= w[1]) {
        return Err("helpers must be distinct and increasing".into());
    }
    let mut points = Vec::with_capacity(helpers.len());
    for helper in helpers {
        if !voters.contains(helper) {
            return Err(format!("helper {helper} is not in the share map in force"));
        }
        let stored = oprf
            .share_of(*helper)
            .ok_or_else(|| format!("helper {helper} holds no share of the record"))?;
        let commitment = Commitment::parse(&stored.commitment)
            .map_err(|_| format!("helper {helper}'s commitment does not parse"))?;
        points.push((*helper, commitment));
    }
    ShareCiphertext::parse(&share.ciphertext).map_err(|e| format!("ciphertext: {e}"))?;
    let expected = oprf::repaired_commitment(&points, share.node_id)
        .map_err(|e| format!("commitment: {e}"))?;
    if expected.as_bytes() != &share.commitment {
        return Err(format!(
            "the commitment is not the record's polynomial at node {}",
            share.node_id
        ));
    }
    Ok(())
}
