//! The repair job: a voter of the share map in force that holds no share of some active
//! records (it was added, or took a removed node's place) gets them from `threshold` of
//! each record's holders, in batches, and puts each in the record with `AddShare`.
//!
//! Nothing is kept between passes but what the replicated state says: a pass works
//! through the records that do not name this node, so it goes on after a crash, a restart
//! or a leader change wherever it stopped. It is paced like the install pass (after each
//! batch it rests as long as the batch took), so it takes at most about half of this
//! node's time and a small part of each helper's from the recoveries. A record with fewer
//! than `threshold` holders reachable now is left for a later pass. Once a pass finds
//! nothing missing, the next runs only when the map or the version clock changes, or a
//! minute later: a pass reads every account, which is not free at millions of them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bkv_core::oprf::ShareCiphertext;
use bkv_core::{AccountId, Command, Outcome, RecordVersion};
use bkv_proto::v1::shares_client::SharesClient;
use bkv_proto::v1::{
    RepairAnswer, RepairCombineRequest, RepairDealRequest, RepairRecord, RepairScope,
};
use bkv_vault::holder::RepairTask;
use futures::future::join_all;
use tokio::sync::watch;

use super::NodeShares;
use crate::node::Node;

/// Accounts looked at per read of the state.
const SCAN: usize = 512;

/// Records per repair request (and per batch of `AddShare` proposals).
const BATCH: usize = 64;

/// How often a node with nothing missing looks again while the map and the version clock
/// stay the same (for records staged before it joined and activated since).
const CLEAN_RECHECK: Duration = Duration::from_secs(60);

/// How long a helper may take with one request.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepairPass {
    /// Shares this node got.
    pub repaired: u64,
    /// Active records it still holds no share of.
    pub missing: u64,
}

/// Every `period` until `stop` says so: one repair pass while this node is a voter of the
/// share map in force (see the module comment).
pub async fn repair_loop(
    node: Node,
    shares: Arc<NodeShares>,
    period: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut turn = 0u64;
    // The map epoch and version clock of the last pass that found nothing missing, and
    // when it ran: records lose this node's share only through a new map or a new
    // registration, so while neither changes a pass is needed only to catch a record staged
    // before this node joined and activated since, which `CLEAN_RECHECK` bounds.
    let mut clean: Option<((u64, u64), tokio::time::Instant)> = None;
    loop {
        let map_epoch = node
            .state()
            .cluster()
            .and_then(|c| c.share_map)
            .filter(|m| m.map.holder(node.id()).is_some())
            .map(|m| m.map.epoch);
        let seen = map_epoch.map(|e| (e, node.state().read(|s| s.version_clock())));
        let skip =
            clean.is_some_and(|(at, when)| Some(at) == seen && when.elapsed() < CLEAN_RECHECK);
        if let (Some(seen), false) = (seen, skip) {
            let pass = repair_pass(&node, &shares, turn, &stop).await;
            clean = (pass.missing == 0).then(|| (seen, tokio::time::Instant::now()));
            node.metrics().set_shares_missing(pass.missing);
            if pass.repaired > 0 {
                tracing::info!(
                    repaired = pass.repaired,
                    missing = pass.missing,
                    "repaired this node's shares"
                );
            }
            turn += 1;
        } else if seen.is_none() {
            node.metrics().set_shares_missing(0);
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// One pass over the records this node holds no share of; `turn` rotates the helpers
/// chosen, so that a pass after one whose helpers failed asks others where it can.
pub async fn repair_pass(
    node: &Node,
    shares: &NodeShares,
    turn: u64,
    stop: &watch::Receiver<bool>,
) -> RepairPass {
    let me = node.id();
    let mut pass = RepairPass::default();
    let mut after: Option<AccountId> = None;
    loop {
        if *stop.borrow() {
            return pass;
        }
        let map = node.state().cluster().and_then(|c| c.share_map);
        let (batch, next) = node
            .state()
            .read(|s| s.records_missing_share_of(me, after.as_ref(), SCAN));
        let mut groups: BTreeMap<Vec<u64>, Vec<(AccountId, RecordVersion)>> = BTreeMap::new();
        for (account, version, oprf) in batch {
            let mut candidates: Vec<u64> = oprf
                .holders()
                .filter(|h| *h != me && node.peer_addr(*h).is_some())
                .filter(|h| map.as_ref().is_some_and(|m| m.map.holder(*h).is_some()))
                .collect();
            let threshold = usize::from(oprf.threshold);
            if candidates.len() < threshold || threshold == 0 {
                pass.missing += 1;
                continue;
            }
            let len = candidates.len();
            candidates.rotate_left((turn % len as u64) as usize);
            let mut helpers = candidates[..threshold].to_vec();
            helpers.sort_unstable();
            groups.entry(helpers).or_default().push((account, version));
        }
        for (helpers, records) in groups {
            for chunk in records.chunks(BATCH) {
                let started = tokio::time::Instant::now();
                let done = repair_batch(node, shares, &helpers, chunk).await;
                pass.repaired += done;
                pass.missing += chunk.len() as u64 - done;
                tokio::time::sleep(started.elapsed()).await;
            }
        }
        match next {
            Some(next) => after = Some(next),
            None => return pass,
        }
    }
}

/// Repairs this node's shares of `records` with `helpers`: deal, combine, take, commit,
/// install. Returns how many it got; a record a helper refused, or whose sums do not
/// check, is left for a later pass (and counted, with the reason logged once per batch).
async fn repair_batch(
    node: &Node,
    shares: &NodeShares,
    helpers: &[u64],
    records: &[(AccountId, RecordVersion)],
) -> u64 {
    let scope = RepairScope {
        target: node.id(),
        helpers: helpers.to_vec(),
    };
    let wire = wire_records(records);
    // Step 1 at every helper.
    let dealt = join_all(helpers.iter().map(|h| {
        let request = RepairDealRequest {
            scope: Some(scope.clone()),
            records: wire.clone(),
        };
        async move {
            let answer = ask(node, *h, request, |mut c, r| async move {
                c.repair_deal(r).await
            })
            .await?;
            parse_answers(*h, answer.answers, records.len(), helpers.len())
        }
    }))
    .await;
    let dealt = match dealt.into_iter().collect::<Result<Vec<_>, String>>() {
        Ok(dealt) => dealt,
        Err(e) => return failed(node, "deal", records.len(), &e),
    };
    // Step 2: to helper `b`, the pieces every helper dealt it, for the records all dealt.
    let all_dealt: Vec<usize> = (0..records.len())
        .filter(|r| dealt.iter().all(|d| d[*r].is_some()))
        .collect();
    if all_dealt.is_empty() {
        return failed(node, "deal", records.len(), "every record was refused");
    }
    let combined = all_dealt.len();
    let sums = join_all(helpers.iter().enumerate().map(|(b, h)| {
        let request = RepairCombineRequest {
            scope: Some(scope.clone()),
            records: pieces_for(&wire, &dealt, &all_dealt, b),
        };
        async move {
            let answer = ask(node, *h, request, |mut c, r| async move {
                c.repair_combine(r).await
            })
            .await?;
            parse_answers(*h, answer.answers, combined, 1)
        }
    }))
    .await;
    let sums = match sums.into_iter().collect::<Result<Vec<_>, String>>() {
        Ok(sums) => sums,
        Err(e) => return failed(node, "combine", records.len(), &e),
    };
    // Step 3 here, then the proposals, all at once (the leader batches them).
    let mut proposals = Vec::new();
    let mut proposed = Vec::new();
    let mut refused = Vec::new();
    let taken = join_all(all_dealt.iter().enumerate().map(|(at, r)| {
        let mine = sums
            .iter()
            .map(|s| s[at].as_ref().map(|c| c[0].clone()))
            .collect::<Option<Vec<ShareCiphertext>>>();
        let (account, version) = &records[*r];
        let task = RepairTask {
            account: account.clone(),
            version: *version,
            target: node.id(),
            helpers: helpers.to_vec(),
        };
        async move {
            let mine = mine?;
            Some((shares.repair_take(&task, &mine).await, task))
        }
    }))
    .await;
    for (result, task) in taken.into_iter().flatten() {
        match result {
            Ok(share) => {
                proposed.push((task.account.clone(), task.version));
                proposals.push(Command::AddShare {
                    account: task.account,
                    version: task.version,
                    helpers: task.helpers,
                    share,
                });
            }
            Err(e) => refused.push(e.to_string()),
        }
    }
    node.metrics()
        .repair_step("take", proposals.len() as u64, refused.len() as u64);
    if let Some(why) = refused.first() {
        tracing::warn!(
            refused = refused.len(),
            first = %why,
            "shares from a repair did not check"
        );
    }
    let committed = join_all(proposals.into_iter().map(|c| node.write(c))).await;
    let added: Vec<(AccountId, RecordVersion)> = committed
        .iter()
        .zip(proposed)
        .filter(|(outcome, _)| matches!(outcome, Ok(Outcome::ShareAdded { .. })))
        .map(|(_, record)| record)
        .collect();
    let done = added.len() as u64;
    // Installed now: an old record is not in the install pass's next look.
    let installed = join_all(
        added
            .iter()
            .map(|(account, version)| shares.install(account, *version)),
    )
    .await;
    if let Some(Err(e)) = installed.iter().find(|i| i.is_err()) {
        tracing::warn!(error = %e, "installing a repaired share failed");
    }
    if let Some(Err(e)) = committed.iter().find(|c| c.is_err()) {
        tracing::warn!(error = %e, "proposing repaired shares failed");
    }
    if let Err(e) = shares.flush().await {
        tracing::warn!(error = %e, "flushing repaired shares failed");
    }
    node.metrics().shares_repaired(done);
    done
}

/// Calls peer `node_id`'s `bkv.v1.Shares` with `call`, within [`STEP_TIMEOUT`]; a failure
/// names the peer.
pub(super) async fn ask<T, R, Fut>(
    node: &Node,
    node_id: u64,
    request: R,
    call: impl Fn(SharesClient<tonic::transport::Channel>, R) -> Fut,
) -> Result<T, String>
where
    R: Clone,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let client = SharesClient::new(channel(node, node_id)?);
    let mut tries = 0;
    loop {
        tries += 1;
        let answer = tokio::time::timeout(STEP_TIMEOUT, call(client.clone(), request.clone()))
            .await
            .map_err(|_| format!("node {node_id}: no answer in time"))?;
        match answer {
            Ok(answer) => return Ok(answer.into_inner()),
            // The connection failed under the call (a peer that closed it, a node that
            // restarted): the steps keep nothing between calls, so asking once more on a
            // new connection is safe.
            Err(s)
                if tries == 1
                    && matches!(s.code(), tonic::Code::Unknown | tonic::Code::Unavailable) =>
            {
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(s) => return Err(format!("node {node_id}: {:?}: {}", s.code(), s.message())),
        }
    }
}

/// The pause before a peer call that failed in transport is made once more.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Step 1's records: each account and version, no pieces.
pub(super) fn wire_records(records: &[(AccountId, RecordVersion)]) -> Vec<RepairRecord> {
    records
        .iter()
        .map(|(account, version)| RepairRecord {
            account: account.as_str().to_string(),
            version: version.get(),
            pieces: Vec::new(),
        })
        .collect()
}

/// Step 2's records for the party at position `b`: of the records every party dealt
/// (`chosen`, indices into `wire` and each party's answers in `dealt`), the piece each
/// party dealt to `b`, in the parties' order.
pub(super) fn pieces_for(
    wire: &[RepairRecord],
    dealt: &[Vec<Option<Vec<ShareCiphertext>>>],
    chosen: &[usize],
    b: usize,
) -> Vec<RepairRecord> {
    chosen
        .iter()
        .map(|r| RepairRecord {
            pieces: dealt
                .iter()
                .map(|d| {
                    d[*r]
                        .as_ref()
                        .map(|c| c[b].as_bytes().to_vec())
                        .unwrap_or_default()
                })
                .collect(),
            ..wire[*r].clone()
        })
        .collect()
}

/// A channel to peer `node_id`.
fn channel(node: &Node, node_id: u64) -> Result<tonic::transport::Channel, String> {
    let addr = node
        .peer_addr(node_id)
        .ok_or_else(|| format!("node {node_id} is not a member"))?;
    node.raft()
        .peers()
        .channel(&addr)
        .map_err(|e| format!("node {node_id}: {e}"))
}

/// A helper's answers, one per record: its ciphertexts (`per` of them), or `None` where it
/// refused. An answer of the wrong shape fails the whole batch.
pub fn parse_answers(
    helper: u64,
    answers: Vec<RepairAnswer>,
    records: usize,
    per: usize,
) -> Result<Vec<Option<Vec<ShareCiphertext>>>, String> {
    if answers.len() != records {
        return Err(format!(
            "node {helper} answered {} records of {records}",
            answers.len()
        ));
    }
    let mut refusals = 0;
    let mut first_refusal = None;
    let parsed = answers
        .into_iter()
        .map(|a| {
            if !a.refused.is_empty() {
                refusals += 1;
                first_refusal.get_or_insert(a.refused);
                return Ok(None);
            }
            if a.ciphertexts.len() != per {
                return Err(format!(
                    "node {helper} answered a record of the wrong shape"
                ));
            }
            a.ciphertexts
                .iter()
                .map(|c| ShareCiphertext::parse(c).map_err(|e| format!("node {helper}: {e}")))
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        })
        .collect::<Result<Vec<_>, String>>()?;
    if refusals > 0 {
        tracing::info!(
            helper,
            refusals,
            first = first_refusal.as_deref().unwrap_or(""),
            "a helper refused records of a share repair or refresh"
        );
    }
    Ok(parsed)
}

/// A batch that failed as a whole: logged and counted; nothing was repaired.
fn failed(node: &Node, step: &'static str, records: usize, why: &str) -> u64 {
    tracing::warn!(step, records, error = %why, "a share repair batch failed");
    node.metrics().repair_step(step, 0, records as u64);
    0
}
