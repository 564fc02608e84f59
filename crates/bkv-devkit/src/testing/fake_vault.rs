//! [`FakeVault`]: one fake node of a [`FakeCluster`]. The cluster state is shared by all
//! its nodes and runs bkv-core's real OPAQUE server over a software sealer, with the
//! protocol's idempotency rules (request ids, attempt ids bound to the credential request)
//! and guess counting; each node logs every call it gets and can be told to answer the
//! next calls with a fault instead.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bkv_core::ids::{AccountId, ChargeNumber, ClusterId, GuessLimit, RecordVersion, RequestId};
use bkv_core::opaque::testing::FakeSealer;
use bkv_core::opaque::{self, ChargedRecord, ServerSecrets};
use bkv_core::protocol::credential_request_hash;
use bkv_core::record::seal_record;
use bkv_core::token::TrustedIssuers;
use bkv_core::{Outcome, ProtocolError};
use bkv_proto::v1::vault_server::{Vault, VaultServer};
use bkv_proto::v1::{
    ActivateRequest, ActivateResponse, DeleteRequest, DeleteResponse, ErrorDetail, RecordState,
    RecoverFinishRequest, RecoverFinishResponse, RecoverStartRequest, RecoverStartResponse,
    RegisterFinishRequest, RegisterFinishResponse, RegisterStartRequest, RegisterStartResponse,
    StatusRequest, StatusResponse,
};
use prost::Message;
use rand::rngs::OsRng;
use tonic::{Code, Request, Response, Status};

/// The audience (cluster name) fake clusters accept.
pub const TEST_AUDIENCE: &str = "bkv-test";
/// The issuer name fake clusters trust.
pub const TEST_ISSUER: &str = "bkv-dev";
const TICKET_TTL_MS: u64 = 300_000;

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
        /// Encoded in the status details.
        detail: Option<ErrorDetail>,
        /// The `bkv-leader` metadata.
        leader: Option<String>,
    },
    /// Answer nothing for this long (then UNAVAILABLE).
    Hang(Duration),
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
    pub fn detail(code: Code, detail: ErrorDetail) -> Self {
        Self::Status {
            code,
            detail: Some(detail),
            leader: None,
        }
    }
}

#[derive(Debug, Clone)]
struct Staged {
    account: AccountId,
    version: RecordVersion,
    request_id: RequestId,
    guess_limit: GuessLimit,
    sealed_record: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Record {
    version: RecordVersion,
    request_id: RequestId,
    guess_limit: GuessLimit,
    sealed_record: Vec<u8>,
    used: u32,
    destroyed: bool,
    last_charge: u64,
}

struct State {
    sealer: FakeSealer,
    secrets: ServerSecrets,
    cluster: ClusterId,
    issuers: TrustedIssuers,
    next_index: u64,
    staged: HashMap<[u8; 16], Staged>,
    records: HashMap<AccountId, Record>,
    charges: HashMap<[u8; 16], ([u8; 32], RecoverStartResponse)>,
}

/// The state shared by the fake nodes of one cluster.
#[derive(Clone)]
pub struct FakeCluster {
    state: Arc<tokio::sync::Mutex<State>>,
    /// The leader that successful answers name (`bkv-leader`), as real nodes do.
    leader: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for FakeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeCluster")
    }
}

impl FakeCluster {
    /// A cluster trusting `issuer` (named [`TEST_ISSUER`]) for audience [`TEST_AUDIENCE`].
    pub fn new(issuer: ed25519_dalek::VerifyingKey) -> Self {
        let mut issuers = TrustedIssuers::new(3600, 60);
        issuers.insert(TEST_ISSUER, issuer);
        Self {
            state: Arc::new(tokio::sync::Mutex::new(State {
                sealer: FakeSealer::new(),
                secrets: ServerSecrets::generate(&mut OsRng),
                cluster: ClusterId::new([7; 16]),
                issuers,
                next_index: 100,
                staged: HashMap::new(),
                records: HashMap::new(),
                charges: HashMap::new(),
            })),
            leader: Arc::new(Mutex::new(None)),
        }
    }

    /// Makes every node name `leader` (a client address) in its successful answers from
    /// now on, or nothing.
    pub fn set_leader(&self, leader: Option<String>) {
        *lock(&self.leader) = leader;
    }

    /// A node of this cluster.
    pub fn node(&self, name: &'static str) -> FakeVault {
        FakeVault {
            name,
            cluster: self.clone(),
            faults: Arc::new(Mutex::new(VecDeque::new())),
            calls: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Guesses charged on `account`'s record, and how many distinct charges were made.
    pub async fn guesses_used(&self, account: &str) -> Option<u32> {
        let state = self.state.lock().await;
        let account = AccountId::parse(account).ok()?;
        state.records.get(&account).map(|r| r.used)
    }

    /// How many distinct recovery attempts were charged in all.
    pub async fn charges(&self) -> usize {
        self.state.lock().await.charges.len()
    }
}

/// A fault waiting for a call of one method (any method if `None`).
type Injected = (Option<&'static str>, Fault);

/// One fake node: the shared cluster, its own faults and call log.
#[derive(Clone)]
pub struct FakeVault {
    name: &'static str,
    cluster: FakeCluster,
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

    /// A successful answer, naming the cluster's leader if one is set.
    fn answer<T>(&self, message: T) -> Response<T> {
        let mut response = Response::new(message);
        if let Some(leader) = lock(&self.cluster.leader).as_deref()
            && let Ok(value) = leader.parse()
        {
            response.metadata_mut().insert("bkv-leader", value);
        }
        response
    }

    /// Logs the call, then applies the first matching fault, if any.
    async fn enter<T: Message>(
        &self,
        method: &'static str,
        request: &Request<T>,
    ) -> Result<(), Status> {
        let bearer = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Bearer "));
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
            None => Ok(()),
            Some(Fault::Hang(d)) => {
                tokio::time::sleep(d).await;
                Err(Status::unavailable(format!("{} hung", self.name)))
            }
            Some(Fault::Status {
                code,
                detail,
                leader,
            }) => {
                let details = detail.map(|d| d.encode_to_vec()).unwrap_or_default();
                let mut status = Status::with_details(
                    code,
                    format!("injected by {}", self.name),
                    details.into(),
                );
                if let Some(leader) = leader
                    && let Ok(value) = leader.parse()
                {
                    status.metadata_mut().insert("bkv-leader", value);
                }
                Err(status)
            }
        }
    }

    async fn account<T>(&self, request: &Request<T>) -> Result<AccountId, Status> {
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("no bearer token"))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let state = self.cluster.state.lock().await;
        state
            .issuers
            .verify(token, TEST_AUDIENCE, now)
            .map(|v| v.account)
            .map_err(|e| Status::unauthenticated(e.to_string()))
    }
}

fn invalid(e: &ProtocolError, field: &str) -> Status {
    let detail = ErrorDetail {
        field: field.to_string(),
        reason: e.to_string(),
        ..Default::default()
    };
    Status::with_details(
        Code::InvalidArgument,
        e.to_string(),
        detail.encode_to_vec().into(),
    )
}

fn id16(bytes: &[u8], field: &str) -> Result<[u8; 16], Status> {
    bytes.try_into().map_err(|_| {
        let detail = ErrorDetail {
            field: field.to_string(),
            reason: "wrong_length".into(),
            ..Default::default()
        };
        Status::with_details(
            Code::InvalidArgument,
            format!("{field} must be 16 bytes"),
            detail.encode_to_vec().into(),
        )
    })
}

fn destroyed() -> Status {
    let detail = ErrorDetail {
        reason: "destroyed".into(),
        ..Default::default()
    };
    Status::with_details(
        Code::FailedPrecondition,
        "record destroyed",
        detail.encode_to_vec().into(),
    )
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[tonic::async_trait]
impl Vault for FakeVault {
    async fn register_start(
        &self,
        request: Request<RegisterStartRequest>,
    ) -> Result<Response<RegisterStartResponse>, Status> {
        self.enter("RegisterStart", &request).await?;
        let account = self.account(&request).await?;
        let parsed = opaque::parse_registration_request(&request.get_ref().registration_request)
            .map_err(|e| invalid(&e, "registration_request"))?;
        let state = self.cluster.state.lock().await;
        let registration_response = opaque::registration_start(&state.secrets, &account, parsed)
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(self.answer(RegisterStartResponse {
            registration_response,
        }))
    }

    async fn register_finish(
        &self,
        request: Request<RegisterFinishRequest>,
    ) -> Result<Response<RegisterFinishResponse>, Status> {
        self.enter("RegisterFinish", &request).await?;
        let account = self.account(&request).await?;
        let r = request.into_inner();
        let request_id = id16(&r.request_id, "request_id")?;
        let mut state = self.cluster.state.lock().await;
        if let Some(staged) = state.staged.get(&request_id) {
            return Ok(self.answer(RegisterFinishResponse {
                version: staged.version.0,
            }));
        }
        let upload = opaque::parse_registration_upload(&r.registration_upload)
            .map_err(|e| invalid(&e, "registration_upload"))?;
        let sealed_key =
            opaque::parse_sealed_key(r.sealed_key).map_err(|e| invalid(&e, "sealed_key"))?;
        let guess_limit = if r.guess_limit == 0 {
            GuessLimit::DEFAULT
        } else {
            GuessLimit::parse_max(r.guess_limit).map_err(|e| {
                let detail = ErrorDetail {
                    field: "guess_limit".into(),
                    reason: e.to_string(),
                    ..Default::default()
                };
                Status::with_details(
                    Code::InvalidArgument,
                    "guess_limit",
                    detail.encode_to_vec().into(),
                )
            })?
        };
        let record = opaque::record_from_upload(upload, sealed_key, guess_limit);
        let rid = RequestId::new(request_id);
        let sealed_record = seal_record(&state.sealer, &state.cluster, &account, &rid, &record)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        state.next_index += 1;
        let version = RecordVersion(state.next_index);
        state.staged.insert(
            request_id,
            Staged {
                account,
                version,
                request_id: rid,
                guess_limit,
                sealed_record,
            },
        );
        Ok(self.answer(RegisterFinishResponse { version: version.0 }))
    }

    async fn activate(
        &self,
        request: Request<ActivateRequest>,
    ) -> Result<Response<ActivateResponse>, Status> {
        self.enter("Activate", &request).await?;
        let account = self.account(&request).await?;
        let version = request.get_ref().version;
        let mut state = self.cluster.state.lock().await;
        if state
            .records
            .get(&account)
            .is_some_and(|r| r.version.0 == version && !r.destroyed)
        {
            return Ok(self.answer(ActivateResponse { version }));
        }
        let staged = state
            .staged
            .values()
            .find(|s| s.account == account && s.version.0 == version)
            .cloned()
            .ok_or_else(|| Status::not_found("no such staged version"))?;
        state.records.insert(
            account,
            Record {
                version: staged.version,
                request_id: staged.request_id,
                guess_limit: staged.guess_limit,
                sealed_record: staged.sealed_record,
                used: 0,
                destroyed: false,
                last_charge: 0,
            },
        );
        Ok(self.answer(ActivateResponse { version }))
    }

    async fn recover_start(
        &self,
        request: Request<RecoverStartRequest>,
    ) -> Result<Response<RecoverStartResponse>, Status> {
        self.enter("RecoverStart", &request).await?;
        let account = self.account(&request).await?;
        let r = request.into_inner();
        let attempt_id = id16(&r.attempt_id, "attempt_id")?;
        let parsed = opaque::parse_credential_request(&r.credential_request)
            .map_err(|e| invalid(&e, "credential_request"))?;
        let hash = credential_request_hash(&r.credential_request);
        let mut state = self.cluster.state.lock().await;
        if let Some((seen, response)) = state.charges.get(&attempt_id) {
            if *seen != hash {
                return Err(Status::invalid_argument(
                    "attempt_id reused with another credential_request",
                ));
            }
            return Ok(self.answer(response.clone()));
        }
        let record = state
            .records
            .get_mut(&account)
            .ok_or_else(|| Status::not_found("no active record"))?;
        if record.destroyed {
            return Err(destroyed());
        }
        if record.used >= record.guess_limit.get() {
            record.destroyed = true;
            return Err(destroyed());
        }
        record.used += 1;
        record.last_charge += 1;
        let charged = ChargedRecord::from_outcome(Outcome::Charged {
            version: record.version,
            charge: ChargeNumber(record.last_charge),
            guesses_remaining: record.guess_limit.get() - record.used,
            guess_limit: record.guess_limit,
            request_id: record.request_id,
            sealed_record: record.sealed_record.clone(),
        })
        .ok_or_else(|| Status::internal("charge"))?;
        let (version, guesses_remaining, guess_limit) = (
            charged.version,
            charged.guesses_remaining,
            charged.guess_limit,
        );
        let started = opaque::login_start(
            &state.sealer,
            &state.secrets,
            &state.cluster,
            &account,
            charged,
            parsed,
            now_ms(),
            TICKET_TTL_MS,
        )
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        let response = RecoverStartResponse {
            credential_response: started.credential_response,
            ticket: started.ticket,
            guesses_remaining,
            version: version.0,
            guess_limit: guess_limit.get(),
        };
        state.charges.insert(attempt_id, (hash, response.clone()));
        Ok(self.answer(response))
    }

    async fn recover_finish(
        &self,
        request: Request<RecoverFinishRequest>,
    ) -> Result<Response<RecoverFinishResponse>, Status> {
        self.enter("RecoverFinish", &request).await?;
        let account = self.account(&request).await?;
        let r = request.into_inner();
        let finalization = opaque::parse_credential_finalization(&r.credential_finalization)
            .map_err(|e| invalid(&e, "credential_finalization"))?;
        let mut state = self.cluster.state.lock().await;
        let finished = opaque::login_finish(
            &state.sealer,
            &state.cluster,
            &account,
            &r.ticket,
            finalization,
            now_ms(),
        )
        .await;
        match finished {
            Ok(done) => {
                if let Some(record) = state.records.get_mut(&account)
                    && record.version == done.version
                    && record.last_charge == done.charge.0
                {
                    record.used = 0;
                }
                Ok(self.answer(RecoverFinishResponse {
                    transported_key: done.transported_key,
                    version: done.version.0,
                }))
            }
            Err(ProtocolError::WrongPassword {
                guesses_remaining, ..
            }) => {
                let detail = ErrorDetail {
                    reason: "wrong_password".into(),
                    guesses_remaining: Some(guesses_remaining),
                    ..Default::default()
                };
                Err(Status::with_details(
                    Code::PermissionDenied,
                    "wrong password",
                    detail.encode_to_vec().into(),
                ))
            }
            Err(ProtocolError::TicketExpired) => Err(Status::failed_precondition("expired")),
            Err(e) => Err(Status::invalid_argument(e.to_string())),
        }
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        self.enter("Status", &request).await?;
        let account = self.account(&request).await?;
        let state = self.cluster.state.lock().await;
        let staged_version = state
            .staged
            .values()
            .filter(|s| s.account == account)
            .map(|s| s.version.0)
            .filter(|v| state.records.get(&account).is_none_or(|r| r.version.0 < *v))
            .max()
            .unwrap_or(0);
        let response = match state.records.get(&account) {
            None => StatusResponse {
                state: RecordState::Absent as i32,
                staged_version,
                ..Default::default()
            },
            Some(r) => StatusResponse {
                state: if r.destroyed {
                    RecordState::Destroyed as i32
                } else {
                    RecordState::Active as i32
                },
                version: r.version.0,
                guesses_used: r.used,
                guess_limit: r.guess_limit.get(),
                staged_version,
            },
        };
        Ok(self.answer(response))
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        self.enter("Delete", &request).await?;
        let account = self.account(&request).await?;
        let mut state = self.cluster.state.lock().await;
        let had_record = state.records.remove(&account).is_some();
        let before = state.staged.len();
        state.staged.retain(|_, s| s.account != account);
        let existed = had_record || state.staged.len() != before;
        Ok(self.answer(DeleteResponse { existed }))
    }
}
