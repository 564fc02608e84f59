//! [`VaultService`]: the client API, `bkv.v1.Vault`, over any [`Backend`]: registration,
//! activation, guess-limited recovery, status and delete.
//!
//! Every call is authenticated by an account token; every state change is committed through
//! the backend. In `RecoverStart` the guess is committed and applied before anything derived
//! from the password file is computed, let alone sent.

use std::future::Future;
use std::net::IpAddr;
use std::time::Instant;

use bkv_core::opaque::{self, ChargedRecord};
use bkv_core::record::seal_record;
use bkv_core::{
    AccountId, AttemptId, Command, GuessLimit, Outcome, RecordStatus, RecordVersion, RequestId,
    protocol,
};
use bkv_proto::contract;
use bkv_proto::v1::vault_server::{Vault, VaultServer};
use bkv_proto::v1::{
    ActivateRequest, ActivateResponse, DeleteRequest, DeleteResponse, RecordState,
    RecoverFinishRequest, RecoverFinishResponse, RecoverStartRequest, RecoverStartResponse,
    RegisterFinishRequest, RegisterFinishResponse, RegisterStartRequest, RegisterStartResponse,
    StatusRequest, StatusResponse,
};
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status};

use crate::backend::{Backend, CallReport, VaultEvent};
use crate::error::VaultError;

/// The `bkv.v1.Vault` service over a backend.
#[derive(Debug, Clone)]
pub struct VaultService<B> {
    backend: B,
}

/// Who is calling: the token's account and the peer's address.
struct Caller {
    account: AccountId,
    peer: Option<IpAddr>,
}

impl<B: Backend + Clone> VaultService<B> {
    /// The service over `backend`.
    pub fn new(backend: B) -> Self {
        Self { backend }
    }

    /// The tonic server of this service.
    pub fn into_server(self) -> VaultServer<Self> {
        VaultServer::new(self)
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The account of a call's `authorization: Bearer <JWT>` metadata.
    fn authenticate(&self, metadata: &MetadataMap) -> Result<AccountId, VaultError> {
        let header = metadata
            .get(contract::AUTHORIZATION)
            .ok_or_else(|| VaultError::Unauthenticated("no authorization metadata".into()))?;
        let value = header
            .to_str()
            .map_err(|_| VaultError::Unauthenticated("authorization is not text".into()))?;
        let token = value.strip_prefix(contract::BEARER_PREFIX).ok_or_else(|| {
            VaultError::Unauthenticated("authorization is not a Bearer token".into())
        })?;
        self.backend.verify_token(token.trim())
    }

    /// Every handler's frame: authenticate, run `handle`, report the call, and answer. A
    /// successful answer names the leader's client address (`bkv-leader` metadata, as
    /// UNAVAILABLE does), so that clients that route to the leader find it without asking.
    async fn call<M, T, F, Fut>(
        &self,
        method: &'static str,
        request: Request<M>,
        handle: F,
    ) -> Result<Response<T>, Status>
    where
        F: FnOnce(Caller, M) -> Fut,
        Fut: Future<Output = Result<T, VaultError>>,
    {
        let started = Instant::now();
        let result = match self.authenticate(request.metadata()) {
            Ok(account) => {
                let peer = request.remote_addr().map(|a| a.ip());
                handle(Caller { account, peer }, request.into_inner()).await
            }
            Err(e) => Err(e),
        };
        self.backend.observe_call(&CallReport {
            method,
            code: result.as_ref().map_or_else(VaultError::code, |_| Code::Ok),
            elapsed: started.elapsed(),
            error: result.as_ref().err(),
        });
        let mut response = Response::new(result?);
        if let Some(leader) = self.backend.leader_client_addr()
            && let Ok(value) = leader.parse()
        {
            response.metadata_mut().insert(contract::LEADER, value);
        }
        Ok(response)
    }

    async fn register_start(
        &self,
        caller: Caller,
        msg: RegisterStartRequest,
    ) -> Result<RegisterStartResponse, VaultError> {
        let parsed = opaque::parse_registration_request(&msg.registration_request)
            .map_err(VaultError::from_protocol)?;
        let serving = self.backend.serving()?;
        let registration_response =
            opaque::registration_start(&serving.secrets, &caller.account, parsed)
                .map_err(VaultError::from_protocol)?;
        Ok(RegisterStartResponse {
            registration_response,
        })
    }

    async fn register_finish(
        &self,
        caller: Caller,
        msg: RegisterFinishRequest,
    ) -> Result<RegisterFinishResponse, VaultError> {
        let account = caller.account;
        let request_id =
            RequestId::parse(&msg.request_id).map_err(|e| VaultError::bad_id("request_id", e))?;
        let upload = opaque::parse_registration_upload(&msg.registration_upload)
            .map_err(VaultError::from_protocol)?;
        let sealed_key =
            opaque::parse_sealed_key(msg.sealed_key).map_err(VaultError::from_protocol)?;
        let serving = self.backend.serving()?;
        let cluster = &serving.cluster;
        let guess_limit = match msg.guess_limit {
            0 => cluster.default_guess_limit,
            n => GuessLimit::parse(n, cluster.max_guess_limit)
                .map_err(|e| VaultError::invalid("guess_limit", format!("out_of_range: {e}")))?,
        };
        let record = opaque::record_from_upload(upload, sealed_key, guess_limit);
        let sealed_record = seal_record(
            self.backend.sealer(),
            &cluster.cluster_id,
            &account,
            &request_id,
            &record,
        )
        .await
        .map_err(|e| VaultError::Internal(format!("sealing the record: {e}")))?;
        let outcome = self
            .backend
            .commit(Command::Stage {
                account,
                request_id,
                guess_limit,
                sealed_record,
            })
            .await?;
        match outcome {
            Outcome::Staged { version } => Ok(RegisterFinishResponse {
                version: version.get(),
            }),
            other => Err(unexpected(other)),
        }
    }

    async fn activate(
        &self,
        caller: Caller,
        msg: ActivateRequest,
    ) -> Result<ActivateResponse, VaultError> {
        if msg.version == 0 {
            return Err(VaultError::invalid(
                "version",
                "zero: use the version RegisterFinish returned",
            ));
        }
        self.backend.serving()?;
        let outcome = self
            .backend
            .commit(Command::Activate {
                account: caller.account,
                version: RecordVersion(msg.version),
            })
            .await?;
        match outcome {
            Outcome::Activated { version } => Ok(ActivateResponse {
                version: version.get(),
            }),
            other => Err(unexpected(other)),
        }
    }

    async fn recover_start(
        &self,
        caller: Caller,
        msg: RecoverStartRequest,
    ) -> Result<RecoverStartResponse, VaultError> {
        let account = caller.account;
        let attempt_id =
            AttemptId::parse(&msg.attempt_id).map_err(|e| VaultError::bad_id("attempt_id", e))?;
        // Parsed before anything is committed: a malformed request never burns a guess.
        let credential_request = opaque::parse_credential_request(&msg.credential_request)
            .map_err(VaultError::from_protocol)?;
        let serving = self.backend.serving()?;
        self.backend.admit_recovery(&account, caller.peer)?;
        let request_hash = protocol::credential_request_hash(&msg.credential_request);
        let outcome = self
            .backend
            .commit(Command::ChargeGuess {
                account: account.clone(),
                attempt_id,
                request_hash,
            })
            .await?;
        let charged = match outcome {
            Outcome::Charged { .. } => ChargedRecord::from_outcome(outcome)
                .ok_or_else(|| VaultError::Internal("charged outcome".into()))?,
            Outcome::Destroyed { .. } => {
                // This charge found no guess left and destroyed the record.
                self.backend.observe(VaultEvent::RecordDestroyed);
                return Err(VaultError::Destroyed);
            }
            other => return Err(unexpected(other)),
        };
        let (version, guesses_remaining, guess_limit) = (
            charged.version,
            charged.guesses_remaining,
            charged.guess_limit,
        );
        let started = opaque::login_start(
            self.backend.sealer(),
            &serving.secrets,
            &serving.cluster.cluster_id,
            &account,
            charged,
            credential_request,
            self.backend.now_unix_ms(),
            self.backend.ticket_ttl_ms(),
        )
        .await
        .map_err(|e| VaultError::Internal(format!("login start: {e}")))?;
        self.backend.observe(VaultEvent::GuessCharged);
        Ok(RecoverStartResponse {
            credential_response: started.credential_response,
            ticket: started.ticket,
            guesses_remaining,
            version: version.get(),
            guess_limit: guess_limit.get(),
        })
    }

    async fn recover_finish(
        &self,
        caller: Caller,
        msg: RecoverFinishRequest,
    ) -> Result<RecoverFinishResponse, VaultError> {
        let account = caller.account;
        if msg.ticket.is_empty() {
            return Err(VaultError::invalid("ticket", "empty"));
        }
        if msg.ticket.len() > protocol::MAX_TICKET_LEN {
            return Err(VaultError::invalid(
                "ticket",
                format!("too_large: at most {} bytes", protocol::MAX_TICKET_LEN),
            ));
        }
        let finalization = opaque::parse_credential_finalization(&msg.credential_finalization)
            .map_err(VaultError::from_protocol)?;
        let serving = self.backend.serving()?;
        let finished = opaque::login_finish(
            self.backend.sealer(),
            &serving.cluster.cluster_id,
            &account,
            &msg.ticket,
            finalization,
            self.backend.now_unix_ms(),
        )
        .await;
        let finished = match finished {
            Ok(f) => f,
            Err(opaque::ProtocolError::WrongPassword {
                version,
                charge,
                guesses_remaining,
            }) => {
                if guesses_remaining == 0 {
                    // The last allowed guess was charged and failed: destroy now rather than
                    // at the next start. A later charge or reset makes this a no-op.
                    let outcome = self
                        .backend
                        .commit(Command::Destroy {
                            account,
                            version,
                            charge,
                        })
                        .await?;
                    if let Outcome::Destroyed { .. } = outcome {
                        self.backend.observe(VaultEvent::RecordDestroyed);
                    }
                }
                return Err(VaultError::WrongPassword { guesses_remaining });
            }
            Err(e) => return Err(VaultError::from_protocol(e)),
        };
        let outcome = self
            .backend
            .commit(Command::ResetGuesses {
                account,
                version: finished.version,
                charge: finished.charge,
            })
            .await?;
        match outcome {
            // Live at that version: the login proved the password, release the key.
            Outcome::Reset { version, .. } if version == finished.version => {
                self.backend.observe(VaultEvent::Recovered);
                Ok(RecoverFinishResponse {
                    transported_key: finished.transported_key,
                    version: version.get(),
                })
            }
            other => Err(unexpected(other)),
        }
    }

    async fn status(&self, caller: Caller, _: StatusRequest) -> Result<StatusResponse, VaultError> {
        self.backend.serving()?;
        let status = self.backend.account_status(&caller.account);
        let staged_version = status.staged.map(RecordVersion::get).unwrap_or(0);
        Ok(match status.record {
            RecordStatus::Absent => StatusResponse {
                state: RecordState::Absent.into(),
                staged_version,
                ..Default::default()
            },
            RecordStatus::Active {
                version,
                guesses_used,
                guess_limit,
                ..
            } => StatusResponse {
                state: RecordState::Active.into(),
                version: version.get(),
                guesses_used,
                guess_limit: guess_limit.get(),
                staged_version,
            },
            RecordStatus::Destroyed { version } => StatusResponse {
                state: RecordState::Destroyed.into(),
                version: version.get(),
                staged_version,
                ..Default::default()
            },
        })
    }

    async fn delete(&self, caller: Caller, _: DeleteRequest) -> Result<DeleteResponse, VaultError> {
        self.backend.serving()?;
        let command = Command::Delete {
            account: caller.account,
        };
        match self.backend.commit(command).await? {
            Outcome::Deleted { existed } => Ok(DeleteResponse { existed }),
            other => Err(unexpected(other)),
        }
    }
}

/// Any outcome a call did not expect: rejections map to their status, the rest is a bug.
fn unexpected(outcome: Outcome) -> VaultError {
    match outcome {
        Outcome::Rejected(r) => VaultError::from_rejection(r),
        Outcome::Destroyed { .. } => VaultError::Destroyed,
        other => VaultError::Internal(format!("unexpected outcome {}", outcome_name(&other))),
    }
}

fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Bootstrapped => "bootstrapped",
        Outcome::Staged { .. } => "staged",
        Outcome::Activated { .. } => "activated",
        Outcome::Charged { .. } => "charged",
        Outcome::Reset { .. } => "reset",
        Outcome::Destroyed { .. } => "destroyed",
        Outcome::Deleted { .. } => "deleted",
        Outcome::Rejected(_) => "rejected",
    }
}

#[tonic::async_trait]
impl<B: Backend + Clone> Vault for VaultService<B> {
    async fn register_start(
        &self,
        request: Request<RegisterStartRequest>,
    ) -> Result<Response<RegisterStartResponse>, Status> {
        self.call("RegisterStart", request, |c, m| self.register_start(c, m))
            .await
    }

    async fn register_finish(
        &self,
        request: Request<RegisterFinishRequest>,
    ) -> Result<Response<RegisterFinishResponse>, Status> {
        self.call("RegisterFinish", request, |c, m| self.register_finish(c, m))
            .await
    }

    async fn activate(
        &self,
        request: Request<ActivateRequest>,
    ) -> Result<Response<ActivateResponse>, Status> {
        self.call("Activate", request, |c, m| self.activate(c, m))
            .await
    }

    async fn recover_start(
        &self,
        request: Request<RecoverStartRequest>,
    ) -> Result<Response<RecoverStartResponse>, Status> {
        self.call("RecoverStart", request, |c, m| self.recover_start(c, m))
            .await
    }

    async fn recover_finish(
        &self,
        request: Request<RecoverFinishRequest>,
    ) -> Result<Response<RecoverFinishResponse>, Status> {
        self.call("RecoverFinish", request, |c, m| self.recover_finish(c, m))
            .await
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        self.call("Status", request, |c, m| self.status(c, m)).await
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        self.call("Delete", request, |c, m| self.delete(c, m)).await
    }
}
