//! The refresh pass (`bkv admin refresh-shares`): the node that receives it refreshes the
//! shares of every active record with a sharing of zero, in batches. For each record the
//! participants are its holders that are voters of the share map in force; each deals
//! (Shares.RefreshDeal), each adds the pieces dealt to it (Shares.RefreshApply), and this
//! node proposes `RefreshShares` with the new shares, which every replica checks against
//! the record's commitments. The holders install their new shares when next asked, by
//! their sweep, or (this node's) at once; installing takes over the old share's counters
//! and erases it.
//!
//! A record is skipped, and keeps its shares, when a participant is not a member, the
//! record has fewer than its threshold of holders in the map, or a participant refuses or
//! does not answer; the pass says how many for each reason. It is paced like share repair:
//! after each batch it rests as long as the batch took. Nothing is kept between passes: a
//! pass cut short is simply run again.
//!
//! The schedule (`recovery.share_refresh_interval_secs`, [`schedule_loop`]) runs passes on
//! the leader over the records whose sharing is older than the interval. Each record's
//! sharing is dated in the replicated state (its registration, or the entry of its last
//! `RefreshShares`), so the schedule keeps no state of its own: a new leader, or a node
//! restarted, picks up exactly the records that are due.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bkv_core::clock::now_unix_ms;
use bkv_core::{AccountId, Command, Outcome, RecordVersion, StoredShare};
use bkv_proto::v1::{RefreshApplyRequest, RefreshDealRequest, RefreshScope};
use futures::future::join_all;
use tokio::sync::watch;
use tokio::time::Instant;

use super::NodeShares;
use super::repair::{ask, parse_answers, pieces_for, wire_records};
use crate::node::Node;

/// Accounts looked at per read of the state.
const SCAN: usize = 512;

/// Records per refresh request (and per batch of proposals).
const BATCH: usize = 64;

/// What a pass has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshProgress {
    /// Active records looked at.
    pub records_seen: u64,
    /// Records whose shares were refreshed.
    pub refreshed: u64,
    /// Records skipped, by reason.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Since the pass started.
    pub elapsed: Duration,
}

impl RefreshProgress {
    fn skip(&mut self, reason: &'static str, n: u64) {
        if n > 0 {
            *self.skipped.entry(reason).or_default() += n;
        }
    }
}

/// One refresh pass over every active record whose sharing was dealt before
/// `before_unix_ms` (`u64::MAX`: every active record); `report` is told the progress after
/// each batch and stops the pass by returning `false` (the operator went away, or this node
/// no longer leads).
pub async fn refresh_pass(
    node: &Node,
    shares: &NodeShares,
    before_unix_ms: u64,
    mut report: impl FnMut(&RefreshProgress) -> bool,
) -> RefreshProgress {
    let started = Instant::now();
    let me = node.id();
    let mut progress = RefreshProgress::default();
    let mut after: Option<AccountId> = None;
    loop {
        let map = node.state().cluster().and_then(|c| c.share_map);
        let (batch, next) = node
            .state()
            .read(|s| s.records_dealt_before(after.as_ref(), SCAN, before_unix_ms));
        // Per participant set: each record, and the shares it is refreshed from.
        type Group = Vec<((AccountId, RecordVersion), [u8; 32])>;
        let mut groups: BTreeMap<Vec<u64>, Group> = BTreeMap::new();
        for (account, version, oprf) in batch {
            progress.records_seen += 1;
            let participants: Vec<u64> = oprf
                .holders()
                .filter(|h| map.as_ref().is_some_and(|m| m.map.holder(*h).is_some()))
                .collect();
            if participants.len() < usize::from(oprf.threshold) || oprf.threshold == 0 {
                progress.skip("below_threshold", 1);
                continue;
            }
            if participants
                .iter()
                .any(|p| *p != me && node.peer_addr(*p).is_none())
            {
                progress.skip("holder_unreachable", 1);
                continue;
            }
            groups
                .entry(participants)
                .or_default()
                .push(((account, version), oprf.shares_digest()));
        }
        for (participants, records) in groups {
            for chunk in records.chunks(BATCH) {
                let batch_started = Instant::now();
                let (chunk, from): (Vec<_>, Vec<_>) = chunk.iter().cloned().unzip();
                refresh_batch(node, shares, &participants, (&chunk, &from), &mut progress).await;
                progress.elapsed = started.elapsed();
                if !report(&progress) {
                    return progress;
                }
                tokio::time::sleep(batch_started.elapsed()).await;
            }
        }
        match next {
            Some(next) => after = Some(next),
            None => {
                progress.elapsed = started.elapsed();
                return progress;
            }
        }
    }
}

/// How often the schedule looks for records due: a sixteenth of the interval, so that a
/// record is refreshed at most about 6% later than due, within 0.5 s and an hour.
pub fn schedule_check_every(interval: Duration) -> Duration {
    (interval / 16).clamp(Duration::from_millis(500), Duration::from_secs(3600))
}

/// The refresh schedule: every [`schedule_check_every`], while this node leads and a share
/// map is in force, a pass over the records whose sharing is older than `interval`. A pass
/// stops after the batch in which this node stopped leading; the next leader goes on from
/// the replicated state. Ends when `stop` turns true.
pub async fn schedule_loop(
    node: Node,
    shares: Arc<NodeShares>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let every = schedule_check_every(interval);
    let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    let leads = |node: &Node| node.require_leader("").is_ok();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let has_map = node
            .state()
            .cluster()
            .is_some_and(|c| c.share_map.is_some());
        if !leads(&node) || !has_map {
            continue;
        }
        let before = now_unix_ms().saturating_sub(interval_ms);
        let last = refresh_pass(&node, &shares, before, |_| leads(&node) && !*stop.borrow()).await;
        if last.records_seen == 0 {
            continue;
        }
        node.metrics().share_refresh_pass("schedule");
        tracing::info!(
            due = last.records_seen,
            refreshed = last.refreshed,
            skipped = ?last.skipped,
            elapsed_ms = last.elapsed.as_millis() as u64,
            "scheduled share refresh pass done"
        );
    }
}

/// Refreshes `records` over `participants`: deal, apply, commit (each from the shares
/// named in `from`, as read when the batch was formed), and install this node's new shares.
async fn refresh_batch(
    node: &Node,
    shares: &NodeShares,
    participants: &[u64],
    (records, from): (&[(AccountId, RecordVersion)], &[[u8; 32]]),
    progress: &mut RefreshProgress,
) {
    let scope = RefreshScope {
        participants: participants.to_vec(),
    };
    let wire = wire_records(records);
    // Step 1 at every participant.
    let dealt = join_all(participants.iter().map(|p| {
        let request = RefreshDealRequest {
            scope: Some(scope.clone()),
            records: wire.clone(),
        };
        async move {
            let answer = ask(node, *p, request, |mut c, r| async move {
                c.refresh_deal(r).await
            })
            .await?;
            parse_answers(*p, answer.answers, records.len(), participants.len())
        }
    }))
    .await;
    let dealt = match dealt.into_iter().collect::<Result<Vec<_>, String>>() {
        Ok(dealt) => dealt,
        Err(e) => return failed(node, progress, records.len(), &e),
    };
    let all_dealt: Vec<usize> = (0..records.len())
        .filter(|r| dealt.iter().all(|d| d[*r].is_some()))
        .collect();
    progress.skip("deal_refused", (records.len() - all_dealt.len()) as u64);
    if all_dealt.is_empty() {
        return;
    }
    // Step 2: to participant `b`, the pieces every participant dealt it.
    let applied = join_all(participants.iter().enumerate().map(|(b, p)| {
        let request = RefreshApplyRequest {
            scope: Some(scope.clone()),
            records: pieces_for(&wire, &dealt, &all_dealt, b),
        };
        let count = all_dealt.len();
        async move {
            let answer = ask(node, *p, request, |mut c, r| async move {
                c.refresh_apply(r).await
            })
            .await?;
            parse_refreshed(*p, answer.answers, count)
        }
    }))
    .await;
    let applied = match applied.into_iter().collect::<Result<Vec<_>, String>>() {
        Ok(applied) => applied,
        Err(e) => return failed(node, progress, all_dealt.len(), &e),
    };
    // The proposals, all at once (the leader batches them).
    let mut proposals = Vec::new();
    let mut proposed = Vec::new();
    for (at, r) in all_dealt.iter().enumerate() {
        let Some(new) = applied
            .iter()
            .map(|a| a[at].clone())
            .collect::<Option<Vec<StoredShare>>>()
        else {
            progress.skip("apply_refused", 1);
            continue;
        };
        let (account, version) = &records[*r];
        proposals.push(Command::RefreshShares {
            account: account.clone(),
            version: *version,
            from: from[*r],
            shares: new,
        });
        proposed.push((account, *version));
    }
    let committed = join_all(proposals.into_iter().map(|c| node.write(c))).await;
    let mut done = 0u64;
    let mut refusal = None;
    for (outcome, (account, version)) in committed.into_iter().zip(proposed) {
        match outcome {
            Ok(Outcome::SharesRefreshed { .. }) => {
                done += 1;
                // This node's new share installed now (taking over the old one's counters
                // and erasing it); the others' when next asked or swept.
                if participants.contains(&node.id())
                    && let Err(e) = shares.install(account, version).await
                {
                    tracing::warn!(error = %e, "installing a refreshed share failed");
                }
            }
            other => {
                progress.skip("commit_refused", 1);
                refusal.get_or_insert(format!("{other:?}"));
            }
        }
    }
    if let Some(why) = refusal {
        tracing::warn!(first = %why, "refreshed shares were not committed");
    }
    if let Err(e) = shares.flush().await {
        tracing::warn!(error = %e, "flushing refreshed shares failed");
    }
    progress.refreshed += done;
    node.metrics().shares_refreshed(done);
}

/// A participant's new shares, one per record (`None` where it refused). An answer of the
/// wrong shape fails the whole batch.
pub fn parse_refreshed(
    participant: u64,
    answers: Vec<bkv_proto::v1::RepairAnswer>,
    records: usize,
) -> Result<Vec<Option<StoredShare>>, String> {
    if answers.len() != records {
        return Err(format!(
            "node {participant} answered {} records of {records}",
            answers.len()
        ));
    }
    let mut refusals = 0;
    let parsed = answers
        .into_iter()
        .map(|a| {
            if !a.refused.is_empty() {
                refusals += 1;
                return Ok(None);
            }
            let [ciphertext] = <[Vec<u8>; 1]>::try_from(a.ciphertexts)
                .map_err(|_| format!("node {participant} answered a record of the wrong shape"))?;
            bkv_core::oprf::ShareCiphertext::parse(&ciphertext)
                .map_err(|e| format!("node {participant}: {e}"))?;
            let commitment: [u8; 32] = a
                .commitment
                .as_slice()
                .try_into()
                .map_err(|_| format!("node {participant}: commitment: must be 32 bytes"))?;
            Ok(Some(StoredShare {
                node_id: participant,
                commitment,
                ciphertext,
            }))
        })
        .collect::<Result<Vec<_>, String>>()?;
    if refusals > 0 {
        tracing::info!(
            participant,
            refusals,
            "a participant refused records of a share refresh"
        );
    }
    Ok(parsed)
}

/// A batch that failed as a whole: logged and counted; nothing was refreshed.
fn failed(node: &Node, progress: &mut RefreshProgress, records: usize, why: &str) {
    tracing::warn!(records, error = %why, "a share refresh batch failed");
    node.metrics().repair_step("refresh", 0, records as u64);
    progress.skip("batch_failed", records as u64);
}
