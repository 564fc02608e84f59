//! The client API, `bkv.v1.Vault` (docs/DESIGN.md §4): registration, activation,
//! guess-limited recovery, status and delete.
//!
//! Every call is authenticated by an account token; every state change goes through the Raft
//! log. In `RecoverStart` the guess is committed and applied before anything derived from the
//! password file is computed, let alone sent.

use bkv_core::opaque::{self, ChargedRecord};
use bkv_core::record::seal_record;
use bkv_core::{
    AccountId, AttemptId, Command, GuessLimit, Outcome, RecordStatus, RecordVersion, RequestId,
    protocol,
};
use bkv_proto::v1::vault_server::Vault;
use bkv_proto::v1::{
    ActivateRequest, ActivateResponse, DeleteRequest, DeleteResponse, RecordState,
    RecoverFinishRequest, RecoverFinishResponse, RecoverStartRequest, RecoverStartResponse,
    RegisterFinishRequest, RegisterFinishResponse, RegisterStartRequest, RegisterStartResponse,
    StatusRequest, StatusResponse,
};
use tonic::{Request, Response, Status};

use crate::error::{LEADER_METADATA, VaultError};
use crate::metrics::CallTimer;
use crate::node::{Node, now_unix_ms};

/// The `bkv.v1.Vault` service of one node.
#[derive(Debug, Clone)]
pub struct VaultService {
    node: Node,
}

impl VaultService {
    /// The service over a node.
    pub fn new(node: Node) -> Self {
        Self { node }
    }

    /// Records the call and turns its result into the answer. A successful answer names the
    /// leader's client address (`bkv-leader` metadata, as UNAVAILABLE does), so that clients
    /// that route to the leader (`bkv_client::Routing::Leader`) find it without asking.
    fn answer<T>(
        &self,
        call: CallTimer,
        result: Result<T, VaultError>,
    ) -> Result<Response<T>, Status> {
        let mut response = call.finish(result)?;
        if let Some(leader) = self.node.leader_client_addr()
            && let Ok(value) = leader.parse()
        {
            response.metadata_mut().insert(LEADER_METADATA, value);
        }
        Ok(response)
    }

    async fn register_finish_inner(
        &self,
        account: AccountId,
        msg: RegisterFinishRequest,
    ) -> Result<RegisterFinishResponse, VaultError> {
        let request_id =
            RequestId::parse(&msg.request_id).map_err(|e| VaultError::bad_id("request_id", e))?;
        let upload = opaque::parse_registration_upload(&msg.registration_upload)
            .map_err(VaultError::from_protocol)?;
        let sealed_key =
            opaque::parse_sealed_key(msg.sealed_key).map_err(VaultError::from_protocol)?;
        let serving = self.node.serving()?;
        let cluster = &serving.cluster;
        let guess_limit = match msg.guess_limit {
            0 => cluster.default_guess_limit,
            n => GuessLimit::parse(n, cluster.max_guess_limit)
                .map_err(|e| VaultError::invalid("guess_limit", format!("out_of_range: {e}")))?,
        };
        let record = opaque::record_from_upload(upload, sealed_key, guess_limit);
        let sealed_record = seal_record(
            self.node.sealer(),
            &cluster.cluster_id,
            &account,
            &request_id,
            &record,
        )
        .await
        .map_err(|e| VaultError::Internal(format!("sealing the record: {e}")))?;
        let outcome = self
            .node
            .write(Command::Stage {
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

    async fn recover_start_inner(
        &self,
        account: AccountId,
        peer: Option<std::net::IpAddr>,
        msg: RecoverStartRequest,
    ) -> Result<RecoverStartResponse, VaultError> {
        let attempt_id =
            AttemptId::parse(&msg.attempt_id).map_err(|e| VaultError::bad_id("attempt_id", e))?;
        // Parsed before anything is committed: a malformed request never burns a guess.
        let credential_request = opaque::parse_credential_request(&msg.credential_request)
            .map_err(VaultError::from_protocol)?;
        let serving = self.node.serving()?;
        self.node.limits().check_recover(&account, peer)?;
        let request_hash = protocol::credential_request_hash(&msg.credential_request);
        let outcome = self
            .node
            .write(Command::ChargeGuess {
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
                self.node.metrics().record_destroyed();
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
            self.node.sealer(),
            &serving.secrets,
            &serving.cluster.cluster_id,
            &account,
            charged,
            credential_request,
            now_unix_ms(),
            self.node.ticket_ttl_ms(),
        )
        .await
        .map_err(|e| VaultError::Internal(format!("login start: {e}")))?;
        self.node.metrics().guess_charged();
        Ok(RecoverStartResponse {
            credential_response: started.credential_response,
            ticket: started.ticket,
            guesses_remaining,
            version: version.get(),
            guess_limit: guess_limit.get(),
        })
    }

    async fn recover_finish_inner(
        &self,
        account: AccountId,
        msg: RecoverFinishRequest,
    ) -> Result<RecoverFinishResponse, VaultError> {
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
        let serving = self.node.serving()?;
        let finished = opaque::login_finish(
            self.node.sealer(),
            &serving.cluster.cluster_id,
            &account,
            &msg.ticket,
            finalization,
            now_unix_ms(),
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
                        .node
                        .write(Command::Destroy {
                            account,
                            version,
                            charge,
                        })
                        .await?;
                    if let Outcome::Destroyed { .. } = outcome {
                        self.node.metrics().record_destroyed();
                    }
                }
                return Err(VaultError::WrongPassword { guesses_remaining });
            }
            Err(e) => return Err(VaultError::from_protocol(e)),
        };
        let outcome = self
            .node
            .write(Command::ResetGuesses {
                account,
                version: finished.version,
                charge: finished.charge,
            })
            .await?;
        match outcome {
            // Live at that version: the login proved the password, release the key.
            Outcome::Reset { version, .. } if version == finished.version => {
                self.node.metrics().recovered();
                Ok(RecoverFinishResponse {
                    transported_key: finished.transported_key,
                    version: version.get(),
                })
            }
            other => Err(unexpected(other)),
        }
    }

    async fn activate_inner(
        &self,
        account: AccountId,
        msg: ActivateRequest,
    ) -> Result<ActivateResponse, VaultError> {
        if msg.version == 0 {
            return Err(VaultError::invalid(
                "version",
                "zero: use the version RegisterFinish returned",
            ));
        }
        self.node.serving()?;
        let outcome = self
            .node
            .write(Command::Activate {
                account,
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
impl Vault for VaultService {
    async fn register_start(
        &self,
        request: Request<RegisterStartRequest>,
    ) -> Result<Response<RegisterStartResponse>, Status> {
        let call = self.node.begin_call("RegisterStart");
        let account = match self.node.authenticate(&request) {
            Ok(account) => account,
            Err(e) => return self.answer(call, Err(e)),
        };
        let result = (|| {
            let parsed =
                opaque::parse_registration_request(&request.get_ref().registration_request)
                    .map_err(VaultError::from_protocol)?;
            let serving = self.node.serving()?;
            let response = opaque::registration_start(&serving.secrets, &account, parsed)
                .map_err(VaultError::from_protocol)?;
            Ok(RegisterStartResponse {
                registration_response: response,
            })
        })();
        self.answer(call, result)
    }

    async fn register_finish(
        &self,
        request: Request<RegisterFinishRequest>,
    ) -> Result<Response<RegisterFinishResponse>, Status> {
        let call = self.node.begin_call("RegisterFinish");
        let account = match self.node.authenticate(&request) {
            Ok(account) => account,
            Err(e) => return self.answer(call, Err(e)),
        };
        self.answer(
            call,
            self.register_finish_inner(account, request.into_inner())
                .await,
        )
    }

    async fn activate(
        &self,
        request: Request<ActivateRequest>,
    ) -> Result<Response<ActivateResponse>, Status> {
        let call = self.node.begin_call("Activate");
        let account = match self.node.authenticate(&request) {
            Ok(account) => account,
            Err(e) => return self.answer(call, Err(e)),
        };
        self.answer(
            call,
            self.activate_inner(account, request.into_inner()).await,
        )
    }

    async fn recover_start(
        &self,
        request: Request<RecoverStartRequest>,
    ) -> Result<Response<RecoverStartResponse>, Status> {
        let call = self.node.begin_call("RecoverStart");
        let account = match self.node.authenticate(&request) {
            Ok(account) => account,
            Err(e) => return self.answer(call, Err(e)),
        };
        let peer = request.remote_addr().map(|a| a.ip());
        self.answer(
            call,
            self.recover_start_inner(account, peer, request.into_inner())
                .await,
        )
    }

    async fn recover_finish(
        &self,
        request: Request<RecoverFinishRequest>,
    ) -> Result<Response<RecoverFinishResponse>, Status> {
        let call = self.node.begin_call("RecoverFinish");
        let account = match self.node.authenticate(&request) {
            Ok(account) => account,
            Err(e) => return self.answer(call, Err(e)),
        };
        self.answer(
            call,
            self.recover_finish_inner(account, request.into_inner())
                .await,
        )
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let call = self.node.begin_call("Status");
        let account = match self.node.authenticate(&request) {
            Ok(account) => account,
            Err(e) => return self.answer(call, Err(e)),
        };
        let result = self.node.serving().map(|_| {
            let status = self.node.state().account_status(&account);
            let staged_version = status.staged.map(RecordVersion::get).unwrap_or(0);
            match status.record {
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
            }
        });
        self.answer(call, result)
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let call = self.node.begin_call("Delete");
        let account = match self.node.authenticate(&request) {
            Ok(account) => account,
            Err(e) => return self.answer(call, Err(e)),
        };
        let result = async {
            self.node.serving()?;
            match self.node.write(Command::Delete { account }).await? {
                Outcome::Deleted { existed } => Ok(DeleteResponse { existed }),
                other => Err(unexpected(other)),
            }
        }
        .await;
        self.answer(call, result)
    }
}
