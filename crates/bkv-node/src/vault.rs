//! The client API of a node: the one vault service of `bkv-vault` over this node, which is
//! its [`Backend`]: commits go through Raft (forwarded to the leader from a follower),
//! sealing through the node's HSM partition, tokens are checked against the configured
//! issuers, and calls and events land in the node's metrics.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bkv_core::{
    AccountId, AccountStatus, AttemptId, AttemptView, ClusterConfig, Command, OprfRecord, Outcome,
    RecordStatus,
};
use bkv_proto::v1::shares_client::SharesClient;
use bkv_vault::holder::{AppliedState as _, EvalRequest, Evaluated};
use bkv_vault::{Backend, CallReport, Serving, VaultError, VaultEvent};
use tokio::time::Instant;

use crate::node::{Node, now_unix_ms};
use crate::sealer::MeteredSealer;
use crate::shares::{CHARGE_WAIT, NodeState, service};

/// How long `RecoverLogin` waits for its attempt's charge to be applied on this node.
const ATTEMPT_WAIT: Duration = Duration::from_secs(1);

/// The `bkv.v1.Vault` service of one node.
pub type VaultService = bkv_vault::VaultService<Node>;

impl Backend for Node {
    type Sealer = MeteredSealer;

    fn sealer(&self) -> &MeteredSealer {
        Node::sealer(self)
    }

    fn serving(&self) -> Result<Arc<Serving>, VaultError> {
        Node::serving(self)
    }

    fn verify_token(&self, token: &str) -> Result<AccountId, VaultError> {
        Node::verify_token(self, token)
    }

    async fn commit(&self, command: Command) -> Result<Outcome, VaultError> {
        #[cfg(not(feature = "failpoints"))]
        return self.write(command).await;
        // Failpoints builds only, each off unless set: the chaos suite's planted bug, then the
        // lying-node switches.
        #[cfg(feature = "failpoints")]
        {
            let planted = crate::planted::Planted::before(&command);
            if let Some(outcome) = planted.reused() {
                return Ok(outcome);
            }
            let outcome = crate::lies::commit(self, command).await?;
            planted.remember(&outcome);
            Ok(outcome)
        }
    }

    fn account_status(&self, account: &AccountId) -> AccountStatus {
        self.state().account_status(account)
    }

    fn cluster(&self) -> Result<ClusterConfig, VaultError> {
        self.state()
            .cluster()
            .ok_or_else(|| VaultError::unavailable("the cluster is not initialised"))
    }

    async fn attempt(&self, account: &AccountId, attempt_id: &AttemptId) -> AttemptView {
        let state = NodeState::of(self.raft());
        let deadline = Instant::now() + ATTEMPT_WAIT;
        loop {
            let view = state.read(|s| s.attempt(account, attempt_id));
            let left = deadline.saturating_duration_since(Instant::now());
            if matches!(view, AttemptView::Charged(_)) || left.is_zero() {
                return view;
            }
            let _ = tokio::time::timeout(left, state.changed()).await;
        }
    }

    fn active_oprf(&self, account: &AccountId) -> Option<OprfRecord> {
        self.state()
            .read(|s| match s.account_status(account).record {
                RecordStatus::Active { version, .. } => {
                    s.active_oprf(account, version).map(|a| a.0)
                }
                _ => None,
            })
    }

    fn share_candidates(&self, holders: &[u64], turn: u64) -> Vec<u64> {
        // This node first (its own evaluation costs no round trip), then the others in an
        // order that turns with the charge, so that followers share the work.
        let me = self.id();
        let mut others: Vec<u64> = holders
            .iter()
            .copied()
            .filter(|&h| h != me && self.peer_addr(h).is_some())
            .collect();
        if !others.is_empty() {
            let turn = (turn % others.len() as u64) as usize;
            others.rotate_left(turn);
        }
        let mine = holders.contains(&me) && self.shares().is_some();
        mine.then_some(me).into_iter().chain(others).collect()
    }

    fn is_local(&self, holder: u64) -> bool {
        holder == self.id()
    }

    async fn evaluate_share(
        &self,
        holder: u64,
        request: &EvalRequest,
    ) -> Result<Evaluated, VaultError> {
        if holder == self.id() {
            let shares = self
                .shares()
                .ok_or_else(|| VaultError::unavailable("this node holds no shares yet"))?;
            return crate::shares::evaluate(shares, self.metrics(), request)
                .await
                .map_err(|e| VaultError::Internal(e.to_string()));
        }
        let addr = self
            .peer_addr(holder)
            .ok_or_else(|| VaultError::unavailable("the share-holder is not a member"))?;
        let channel = self
            .raft()
            .peers()
            .channel(&addr)
            .map_err(|e| VaultError::Internal(e.to_string()))?;
        let mut client = SharesClient::new(channel);
        let call = client.evaluate(service::request_message(request));
        let answer = tokio::time::timeout(CHARGE_WAIT + Duration::from_secs(1), call)
            .await
            .map_err(|_| VaultError::unavailable("no answer in time"))?
            .map_err(|status| {
                VaultError::Internal(format!("{:?}: {}", status.code(), status.message()))
            })?;
        service::parse_answer(answer.get_ref())
    }

    fn admit_recovery(&self, account: &AccountId, peer: Option<IpAddr>) -> Result<(), VaultError> {
        self.limits().check_recover(account, peer)
    }

    fn now_unix_ms(&self) -> u64 {
        now_unix_ms()
    }

    fn ticket_ttl_ms(&self) -> u64 {
        Node::ticket_ttl_ms(self)
    }

    fn leader_client_addr(&self) -> Option<String> {
        Node::leader_client_addr(self)
    }

    fn observe_call(&self, report: &CallReport<'_>) {
        self.metrics().call_finished(report);
    }

    fn observe(&self, event: VaultEvent) {
        let metrics = self.metrics();
        match event {
            VaultEvent::GuessCharged => metrics.guess_charged(),
            VaultEvent::Recovered => metrics.recovered(),
            VaultEvent::RecordDestroyed => metrics.record_destroyed(),
            VaultEvent::ShareHolderFailed => metrics.share_holder_failed(),
        }
    }
}
