//! The client API of a node: the one vault service of `bkv-vault` over this node, which is
//! its [`Backend`]: commits go through Raft (forwarded to the leader from a follower),
//! sealing through the node's HSM partition, tokens are checked against the configured
//! issuers, and calls and events land in the node's metrics.

use std::net::IpAddr;
use std::sync::Arc;

use bkv_core::{AccountId, AccountStatus, Command, Outcome};
use bkv_vault::{Backend, CallReport, Serving, VaultError, VaultEvent};

use crate::node::{Node, now_unix_ms};
use crate::sealer::MeteredSealer;

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
        // The chaos suite's planted bug (failpoints builds only, off unless set).
        #[cfg(feature = "failpoints")]
        let planted = crate::planted::Planted::before(&command);
        #[cfg(feature = "failpoints")]
        if let Some(outcome) = planted.reused() {
            return Ok(outcome);
        }
        let outcome = self.write(command).await?;
        #[cfg(feature = "failpoints")]
        planted.remember(&outcome);
        Ok(outcome)
    }

    fn account_status(&self, account: &AccountId) -> AccountStatus {
        self.state().account_status(account)
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
        }
    }
}
