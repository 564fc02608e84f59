//! Share refresh in the replicated state: applying `RefreshShares` (every replica checks
//! the new shares' commitments against the record's own before they replace its shares),
//! and listing the active records a refresh pass works through.

use super::{Applied, VaultState, event};
use crate::audit::AuditKind;
use crate::ids::{AccountId, RecordVersion};
use crate::oprf::{self, Commitment, ShareCiphertext};
use crate::oprf_record::{OprfRecord, StoredShare};
use crate::outcome::{Outcome, Rejection};
use crate::share_map::ShareMap;

impl VaultState {
    pub(super) fn refresh_shares(
        &mut self,
        log_index: u64,
        at_unix_ms: u64,
        account: &AccountId,
        version: RecordVersion,
        from: &[u8; 32],
        shares: &[StoredShare],
    ) -> Applied {
        let Some(oprf) = self.active_oprf_at(account, version) else {
            return Applied::rejected(Rejection::VersionNotActive);
        };
        if oprf.shares == shares {
            // A retried proposal of a refresh already applied.
            return Applied::quiet(Outcome::SharesRefreshed { version });
        }
        if &oprf.shares_digest() != from {
            return Applied::rejected(Rejection::BadRefresh(
                "the record's shares are no longer those the refresh was made from".into(),
            ));
        }
        let map = self
            .cluster
            .as_ref()
            .and_then(|c| c.share_map.as_ref())
            .map(|m| &m.map);
        if let Err(why) = check_refreshed(oprf, map, shares) {
            return Applied::rejected(Rejection::BadRefresh(why));
        }
        let Some(active) = self
            .accounts
            .get_mut(account)
            .and_then(|e| e.active.as_mut())
        else {
            return Applied::rejected(Rejection::VersionNotActive);
        };
        active.oprf.shares = shares.to_vec();
        active.shares_refreshed_at_ms = at_unix_ms;
        self.last_change = log_index;
        Applied {
            outcome: Outcome::SharesRefreshed { version },
            events: vec![event(
                AuditKind::SharesRefreshed,
                account,
                Some(version),
                None,
                None,
            )],
        }
    }

    /// The active records among the next `scan` accounts above `after` (every account for
    /// `None`) whose shares were dealt before `before_unix_ms` (at registration or at their
    /// last refresh; `u64::MAX` for every record), with their public OPRF halves, and the
    /// last account looked at if more may follow (`None` at the end): what a refresh pass
    /// works through, a batch at a time.
    pub fn records_dealt_before(
        &self,
        after: Option<&AccountId>,
        scan: usize,
        before_unix_ms: u64,
    ) -> (
        Vec<(AccountId, RecordVersion, OprfRecord)>,
        Option<AccountId>,
    ) {
        self.active_records_where(after, scan, |active| {
            active.shares_dealt_at_ms() < before_unix_ms
        })
    }
}

/// The checks every replica makes of refreshed shares: node ids strictly increasing, at
/// least the record's threshold of them, each a holder of the record and a voter of the
/// share map in force; every ciphertext and commitment well formed; the commitments on one
/// polynomial of the record's degree that shares the record's key (`oprf::check_refresh`).
fn check_refreshed(
    oprf: &OprfRecord,
    map: Option<&ShareMap>,
    shares: &[StoredShare],
) -> Result<(), String> {
    let threshold = usize::from(oprf.threshold);
    if shares.len() < threshold {
        return Err(format!(
            "{} shares, the record's threshold is {threshold}",
            shares.len()
        ));
    }
    if shares.windows(2).any(|w| w[0].node_id >= w[1].node_id) {
        return Err("node ids must be distinct and increasing".into());
    }
    let map = map.ok_or("no share map is in force")?;
    let mut new = Vec::with_capacity(shares.len());
    for share in shares {
        let node = share.node_id;
        if oprf.share_of(node).is_none() {
            return Err(format!("node {node} holds no share of the record"));
        }
        if map.holder(node).is_none() {
            return Err(format!("node {node} is not in the share map in force"));
        }
        ShareCiphertext::parse(&share.ciphertext)
            .map_err(|e| format!("node {node}'s ciphertext: {e}"))?;
        let commitment = Commitment::parse(&share.commitment)
            .map_err(|e| format!("node {node}'s commitment: {e}"))?;
        new.push((node, commitment));
    }
    let mut old = Vec::with_capacity(oprf.shares.len());
    for stored in &oprf.shares {
        let commitment = Commitment::parse(&stored.commitment)
            .map_err(|_| format!("node {}'s commitment does not parse", stored.node_id))?;
        old.push((stored.node_id, commitment));
    }
    oprf::check_refresh(&old, &new, threshold).map_err(|e| format!("commitments: {e}"))
}
