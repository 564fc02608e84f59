//! [`FakeVault`]: one fake node of a [`FakeCluster`]. The nodes of a cluster share one
//! in-memory replica and serve through the vault's own service (`bkv-vault`) over a
//! software sealer; what each fake node adds is a log of every call it gets and faults it
//! can be told to answer the next calls with instead.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bkv_core::opaque::testing::FakeSealer;
use bkv_core::token::TrustedIssuers;
use bkv_core::{AccountId, Command, Outcome, RecordStatus};
use bkv_proto::contract;
use bkv_proto::status::ErrorDetails;
use bkv_proto::v1::vault_server::{Vault, VaultServer};
use bkv_proto::v1::{
    ActivateRequest, ActivateResponse, DeleteRequest, DeleteResponse, RecoverFinishRequest,
    RecoverFinishResponse, RecoverLoginRequest, RecoverLoginResponse, RecoverStartRequest,
    RecoverStartResponse, RegisterFinishRequest, RegisterFinishResponse, RegisterStartRequest,
    RegisterStartResponse, StatusRequest, StatusResponse,
};
use bkv_vault::{Backend as _, VaultError, VaultService};
use prost::Message;
use tonic::{Code, Request, Response, Status};

use crate::replica::{MemoryReplica, ReplicaOptions};

/// The audience (cluster name) fake clusters accept.
pub const TEST_AUDIENCE: &str = "bkv-test";
/// The issuer name fake clusters trust.
pub const TEST_ISSUER: &str = "bkv-dev";

/// One call a fake node received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The RPC name, e.g. `"RecoverStart"`.
    pub method: &'static str,
    /// The request message, encoded.
    pub request: Vec<u8>,
    /// Whether it carried `authorization: Bearer ...`.
    pub bearer: bool,
}

/// An injected answer.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this code, optional details and optional `bkv-leader` metadata.
    Status {
        /// The code.
        code: Code,
        /// Sent as the status details (a `google.rpc.Status`).
        detail: Option<ErrorDetails>,
        /// The `bkv-leader` metadata.
        leader: Option<String>,
    },
    /// Answer nothing for this long (then UNAVAILABLE).
    Hang(Duration),
    /// Serve the call, then answer UNAVAILABLE instead of its answer: an answer lost on
    /// the way back after the vault acted.
    LoseAnswer,
}

impl Fault {
    /// UNAVAILABLE, optionally naming a leader in metadata.
    pub fn unavailable(leader: Option<String>) -> Self {
        Self::Status {
            code: Code::Unavailable,
            detail: None,
            leader,
        }
    }

    /// `code` with `detail`.
    pub fn detail(code: Code, detail: ErrorDetails) -> Self {
        Self::Status {
            code,
            detail: Some(detail),
            leader: None,
        }
    }
}

/// The state shared by the fake nodes of one cluster: one [`MemoryReplica`] that every
/// node serves through the vault's own service.
#[derive(Clone)]
pub struct FakeCluster {
    replica: MemoryReplica<FakeSealer>,
}

impl std::fmt::Debug for FakeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeCluster")
    }
}

impl FakeCluster {
    /// A cluster trusting `issuer` (named [`TEST_ISSUER`]) for audience [`TEST_AUDIENCE`].
    pub async fn new(issuer: ed25519_dalek::VerifyingKey) -> Self {
        let mut issuers = TrustedIssuers::new(3600, 60);
        issuers.insert(TEST_ISSUER, issuer);
        let options = ReplicaOptions {
            cluster_name: TEST_AUDIENCE.into(),
            keep_log: true,
            ..ReplicaOptions::default()
        };
        let replica = MemoryReplica::bootstrap(FakeSealer::new(), issuers, options)
            .await
            // The software sealer cannot fail to seal.
            .expect("bootstrapping an in-memory replica");
        Self { replica }
    }

    /// Commits again the latest command that `pick` selects, as Raft commits a copy of a
    /// write that arrives late (a forward delivered after its client gave up, a retry on
    /// another node); its outcome, or `None` if no such command was committed.
    pub fn commit_again(&self, pick: impl Fn(&Command) -> bool) -> Option<Outcome> {
        let command = self
            .replica
            .log()
            .into_iter()
            .rev()
            .find(|r| pick(&r.command))?
            .command;
        Some(self.replica.apply(command))
    }

    /// Makes every node name `leader` (a client address) in its successful answers from
    /// now on, or nothing.
    pub fn set_leader(&self, leader: Option<String>) {
        self.replica.set_leader(leader);
    }

    /// A node of this cluster.
    pub fn node(&self, name: &'static str) -> FakeVault {
        FakeVault {
            name,
            service: self.replica.service(),
            faults: Arc::new(Mutex::new(VecDeque::new())),
            calls: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Guesses charged on `account`'s active record since its last reset.
    pub fn guesses_used(&self, account: &str) -> Option<u32> {
        let account = AccountId::parse(account).ok()?;
        match self.replica.account_status(&account).record {
            RecordStatus::Active { guesses_used, .. } => Some(guesses_used),
            _ => None,
        }
    }

    /// Makes share-holder `node_id` of the cluster's three never answer (`true`), as a
    /// stopped node, or answer again.
    pub fn hang_holder(&self, node_id: u64, hung: bool) {
        self.replica.hang_holder(node_id, hung);
    }

    /// How many distinct recovery attempts were charged in all.
    pub fn charges(&self) -> u64 {
        self.replica.charges()
    }

    /// The cluster identity key that signed the share map: what clients pin.
    pub fn identity_key(&self) -> [u8; 32] {
        self.replica.identity_key()
    }

    /// Refreshes the shares of `account`'s active record over the cluster's holders (see
    /// `MemoryReplica::refresh_shares`).
    pub async fn refresh_shares(&self, account: &AccountId) -> Result<Outcome, VaultError> {
        self.replica.refresh_shares(account).await
    }

    /// Erases the shares of records that are gone or replaced, on every holder, as a
    /// node's sweep does; returns how many were erased.
    pub async fn sweep_shares(&self) -> Result<u64, VaultError> {
        self.replica.sweep_shares().await
    }

    /// A copy of the applied state.
    pub fn state(&self) -> bkv_core::VaultState {
        self.replica.read(Clone::clone)
    }

    /// Puts `state` in place of the applied state and returns the one it replaces (see
    /// `MemoryReplica::swap_state`).
    pub fn swap_state(&self, state: bkv_core::VaultState) -> bkv_core::VaultState {
        self.replica.swap_state(state)
    }

    /// Share-holder `node_id` (1 to 3), for tests that drive it directly.
    pub fn share_holder(&self, node_id: u64) -> Option<&crate::soft_holder::SoftHolder> {
        self.replica
            .share_holders()
            .iter()
            .find(|h| h.node_id() == node_id)
    }
}

/// A fault waiting for a call of one method (any method if `None`).
type Injected = (Option<&'static str>, Fault);

/// One fake node: the shared cluster, its own faults and call log.
#[derive(Clone)]
pub struct FakeVault {
    name: &'static str,
    service: VaultService<MemoryReplica<FakeSealer>>,
    faults: Arc<Mutex<VecDeque<Injected>>>,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl std::fmt::Debug for FakeVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeVault")
            .field("name", &self.name)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeVault {
    /// The tonic service.
    pub fn service(&self) -> VaultServer<Self> {
        VaultServer::new(self.clone())
    }

    /// Answers the next call of `method` (any method if `None`) with `fault`. Faults are
    /// used in the order they were added.
    pub fn inject(&self, method: Option<&'static str>, fault: Fault) {
        lock(&self.faults).push_back((method, fault));
    }

    /// Every call received so far.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.calls).clone()
    }

    /// The calls of one method.
    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// Logs the call, then applies the first matching fault, if any; `true` if the answer
    /// is to be lost after the call is served.
    async fn enter<T: Message>(
        &self,
        method: &'static str,
        request: &Request<T>,
    ) -> Result<bool, Status> {
        let bearer = request
            .metadata()
            .get(contract::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(contract::BEARER_PREFIX));
        lock(&self.calls).push(Call {
            method,
            request: request.get_ref().encode_to_vec(),
            bearer,
        });
        let fault = {
            let mut faults = lock(&self.faults);
            let at = faults
                .iter()
                .position(|(m, _)| m.is_none_or(|m| m == method));
            at.and_then(|i| faults.remove(i)).map(|(_, f)| f)
        };
        match fault {
            None => Ok(false),
            Some(Fault::LoseAnswer) => Ok(true),
            Some(Fault::Hang(d)) => {
                tokio::time::sleep(d).await;
                Err(Status::unavailable(format!("{} hung", self.name)))
            }
            Some(Fault::Status {
                code,
                detail,
                leader,
            }) => {
                let message = format!("injected by {}", self.name);
                let mut status = match detail {
                    Some(d) => d.into_status(code, message),
                    None => Status::new(code, message),
                };
                if let Some(leader) = leader
                    && let Ok(value) = leader.parse()
                {
                    status.metadata_mut().insert(contract::LEADER, value);
                }
                Err(status)
            }
        }
    }
}

/// Every RPC: log the call, answer an injected fault if one matches, else serve it with the
/// vault's own service.
macro_rules! serve_through_the_vault {
    ($($method:ident, $name:literal, $req:ty, $resp:ty;)*) => {
        #[tonic::async_trait]
        impl Vault for FakeVault {
            $(
                async fn $method(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    let lose = self.enter($name, &request).await?;
                    let answer = self.service.$method(request).await;
                    if lose {
                        return Err(Status::unavailable(format!("{}: answer lost", self.name)));
                    }
                    answer
                }
            )*
        }
    };
}

serve_through_the_vault! {
    register_start, "RegisterStart", RegisterStartRequest, RegisterStartResponse;
    register_finish, "RegisterFinish", RegisterFinishRequest, RegisterFinishResponse;
    activate, "Activate", ActivateRequest, ActivateResponse;
    recover_start, "RecoverStart", RecoverStartRequest, RecoverStartResponse;
    recover_login, "RecoverLogin", RecoverLoginRequest, RecoverLoginResponse;
    recover_finish, "RecoverFinish", RecoverFinishRequest, RecoverFinishResponse;
    status, "Status", StatusRequest, StatusResponse;
    delete, "Delete", DeleteRequest, DeleteResponse;
}
