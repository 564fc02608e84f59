//! [`VaultService`]: the client API, `bkv.v1.Vault` (protocol v2), over any [`Backend`]:
//! registration, activation, guess-limited recovery through the threshold OPRF and OPAQUE,
//! status and delete.
//!
//! Every call is authenticated by an account token; every state change is committed through
//! the backend. In `RecoverStart` the guess is committed and applied before any share is
//! evaluated, and each share-holder evaluates only under a charge it has applied itself
//! (see [`crate::holder`]); a reset applies only with the client's signature.

use std::future::Future;
use std::net::IpAddr;
use std::time::Instant;

use bkv_core::opaque::{self, ChargedRecord};
use bkv_core::oprf::{self, BlindedElement, Commitment, ShareCiphertext};
use bkv_core::protocol::KsfParams;
use bkv_core::record::seal_record;
use bkv_core::share_map::threshold_for;
use bkv_core::{
    AccountId, AttemptId, AttemptView, Command, GuessLimit, OprfRecord, Outcome, RecordStatus,
    RecordVersion, Rejection, RequestId, StoredShare, protocol,
};
use bkv_proto::contract;
use bkv_proto::v1::vault_server::{Vault, VaultServer};
use bkv_proto::v1::{
    ActivateRequest, ActivateResponse, DeleteRequest, DeleteResponse, KsfParams as KsfProto,
    RecordState, RecoverFinishRequest, RecoverFinishResponse, RecoverLoginRequest,
    RecoverLoginResponse, RecoverStartRequest, RecoverStartResponse, RegisterFinishRequest,
    RegisterFinishResponse, RegisterStartRequest, RegisterStartResponse, ShareEvaluation,
    StatusRequest, StatusResponse,
};
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use sha2::{Digest, Sha256};
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status};

use crate::backend::{Backend, CallReport, VaultEvent};
use crate::error::VaultError;
use crate::holder::EvalRequest;

/// How long the share-holders asked may take before one more is asked as well.
pub const HEDGE_AFTER: std::time::Duration = std::time::Duration::from_millis(400);

/// How many times a recovery asks the share-holders again when a share refresh replaced
/// the record's shares while they evaluated.
const REFRESH_REGATHERS: usize = 2;

/// How long a recovery whose evaluations failed waits for a share refresh this replica has
/// not applied yet.
const REFRESH_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// The `bkv.v1.Vault` service over a backend.
#[derive(Debug, Clone)]
pub struct VaultService<B> {
    backend: B,
}

/// Who is calling: the token's account and the peer's address.
struct Caller {
    account: AccountId,
    peer: Option<IpAddr>,
    /// When the client gives up on the call (its `grpc-timeout`), if it said.
    deadline: Option<Instant>,
}

/// How long before the client's deadline a node stops waiting for share-holders and answers
/// UNAVAILABLE itself, so that the client learns why rather than timing out.
const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_millis(100);

/// The `grpc-timeout` of a request (gRPC over HTTP/2: at most 8 digits and a unit, `H`, `M`,
/// `S`, `m`, `u` or `n`), if present and well formed.
fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<std::time::Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    use std::time::Duration;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
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

    /// The account of a call's `authorization: Bearer <JWT>` metadata: exactly `Bearer`, one
    /// space and the token (whatever else is there makes the token malformed).
    fn authenticate(&self, metadata: &MetadataMap) -> Result<AccountId, VaultError> {
        let header = metadata
            .get(contract::AUTHORIZATION)
            .ok_or_else(|| VaultError::no_token("no authorization metadata"))?;
        let value = header
            .to_str()
            .map_err(|_| VaultError::no_token("authorization is not text"))?;
        let token = value.strip_prefix(contract::BEARER_PREFIX).ok_or_else(|| {
            VaultError::no_token("authorization is not `Bearer <JWT>` (one space)")
        })?;
        self.backend.verify_token(token)
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
                let deadline = grpc_timeout(request.metadata()).map(|t| started + t);
                let caller = Caller {
                    account,
                    peer,
                    deadline,
                };
                handle(caller, request.into_inner()).await
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
        let cluster = self.backend.cluster()?;
        let map = cluster
            .share_map
            .ok_or_else(|| VaultError::unavailable("no share map is in force yet"))?;
        let registration_response =
            opaque::registration_start(&serving.secrets, &caller.account, parsed)
                .map_err(VaultError::from_protocol)?;
        Ok(RegisterStartResponse {
            registration_response,
            share_map: Some((&map.signed).into()),
            default_guess_limit: cluster.default_guess_limit.get(),
            max_guess_limit: cluster.max_guess_limit.get(),
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
        let ksf = parse_ksf(msg.ksf)?;
        let reset_key = parse_reset_key(&msg.reset_public_key)?;
        let serving = self.backend.serving()?;
        let cluster = self.backend.cluster()?;
        let guess_limit = match msg.guess_limit {
            0 => cluster.default_guess_limit,
            n => GuessLimit::parse(n, cluster.max_guess_limit)
                .map_err(|e| VaultError::invalid("guess_limit", format!("out_of_range: {e}")))?,
        };
        let map = cluster
            .share_map
            .as_ref()
            .map(|m| &m.map)
            .ok_or_else(|| VaultError::unavailable("no share map is in force yet"))?;
        if msg.share_map_epoch != map.epoch {
            return Err(stale_share_map(map.epoch));
        }
        let shares = parse_shares(&msg.shares, map)?;
        let record = opaque::record_from_upload(upload, sealed_key, guess_limit);
        let sealed_record = seal_record(
            self.backend.sealer(),
            &serving.cluster.cluster_id,
            &account,
            &request_id,
            &record,
        )
        .await
        .map_err(|e| VaultError::Internal(format!("sealing the record: {e}")))?;
        let oprf = OprfRecord {
            map_epoch: map.epoch,
            threshold: map.threshold,
            shares,
            reset_key,
            ksf,
        };
        let outcome = self
            .backend
            .commit(Command::Stage {
                account,
                request_id,
                guess_limit,
                sealed_record,
                oprf,
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
        let (account, caller_deadline) = (caller.account, caller.deadline);
        let attempt_id =
            AttemptId::parse(&msg.attempt_id).map_err(|e| VaultError::bad_id("attempt_id", e))?;
        // Parsed before anything is committed: a malformed request never burns a guess.
        let blinded = BlindedElement::parse(&msg.blinded_element)
            .map_err(|e| VaultError::invalid("blinded_element", format!("invalid: {e}")))?;
        self.backend.serving()?;
        self.backend.admit_recovery(&account, caller.peer)?;
        // A record keeps the share-holders it was registered with. Those removed from the
        // cluster since hold no share the cluster can ask for (until shares are repaired):
        // with fewer than `threshold` of them left, no evaluation can come back, so refuse
        // before the charge and spend no guess of the owner's.
        if let Some(oprf) = self.backend.active_oprf(&account) {
            let holders: Vec<u64> = oprf.holders().collect();
            let askable = self.backend.share_candidates(&holders, 0).len();
            if askable < usize::from(oprf.threshold) {
                return Err(VaultError::unavailable(format!(
                    "{askable} of the record's share-holders can be asked, {} are needed: its \
                     shares must be repaired; no guess was charged",
                    oprf.threshold
                )));
            }
        }
        let request_hash: [u8; 32] = Sha256::digest(blinded.as_bytes()).into();
        let outcome = self
            .backend
            .commit(Command::ChargeGuess {
                account: account.clone(),
                attempt_id,
                request_hash,
            })
            .await?;
        let (version, charge, guesses_remaining, guess_limit, oprf) = match outcome {
            Outcome::Charged {
                version,
                charge,
                guesses_remaining,
                guess_limit,
                oprf,
                ..
            } => (version, charge, guesses_remaining, guess_limit, oprf),
            Outcome::Destroyed { .. } => {
                // This charge found no guess left and destroyed the record.
                self.backend.observe(VaultEvent::RecordDestroyed);
                return Err(VaultError::Destroyed);
            }
            other => return Err(unexpected(other)),
        };
        let request = EvalRequest {
            account,
            version,
            attempt_id,
            charge,
            blinded,
        };
        let evaluations = self
            .gather_consistent(oprf.clone(), &request, caller_deadline)
            .await?;
        self.backend.observe(VaultEvent::GuessCharged);
        Ok(RecoverStartResponse {
            version: version.get(),
            charge: charge.get(),
            guesses_remaining,
            guess_limit: guess_limit.get(),
            ksf: Some(ksf_proto(&oprf.ksf)),
            threshold: u32::from(oprf.threshold),
            evaluations,
        })
    }

    /// [`Self::gather`] under the record's shares as charged, and again under its shares as
    /// applied here now if a share refresh replaced them meanwhile: the holders evaluate
    /// with the share their own applied state holds, so one that applied the refresh before
    /// or after this replica answers for the other shares (its proof does not verify, or,
    /// for this replica's own answer, is not checked here). If the gather fails, this
    /// replica waits a little for a refresh it has not applied yet. Each holder counts a
    /// charge once, so asking again spends nothing.
    async fn gather_consistent(
        &self,
        mut oprf: OprfRecord,
        request: &EvalRequest,
        deadline: Option<Instant>,
    ) -> Result<Vec<ShareEvaluation>, VaultError> {
        for round in 0..=REFRESH_REGATHERS {
            let result = self.gather(&oprf, request, deadline).await;
            // Wait only on a failure, and not past the client's deadline.
            let wait = match (&result, deadline) {
                (Ok(_), _) => std::time::Duration::ZERO,
                (Err(_), None) => REFRESH_WAIT,
                (Err(_), Some(d)) => d
                    .saturating_duration_since(Instant::now())
                    .saturating_sub(DEADLINE_MARGIN)
                    .min(REFRESH_WAIT),
            };
            let Some(now) = self.refreshed_shares(&request.account, &oprf, wait).await else {
                return result;
            };
            if round == REFRESH_REGATHERS {
                break;
            }
            oprf = now;
        }
        Err(VaultError::unavailable(
            "the record's shares were refreshed while it was evaluated; the guess stays \
             charged, retry with the same attempt id",
        ))
    }

    /// The record's OPRF half as applied here now, if its shares are not those of `oprf`
    /// (a refresh replaced them), looking again for up to `wait`.
    async fn refreshed_shares(
        &self,
        account: &AccountId,
        oprf: &OprfRecord,
        wait: std::time::Duration,
    ) -> Option<OprfRecord> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(now) = self.backend.active_oprf(account)
                && now.shares != oprf.shares
            {
                return Some(now);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(REFRESH_WAIT / 10).await;
        }
    }

    /// Asks share-holders of the record for evaluations until `threshold` have answered
    /// with a proof that verifies; a holder that fails or whose proof does not verify is
    /// replaced by the next, and while the holders asked are slow to answer (a stopped or
    /// unreachable node answers nothing until the call times out) one more is asked every
    /// [`HEDGE_AFTER`]. Asking an extra holder gives away nothing: each holder evaluates
    /// the same blinded element for the same charged attempt at most once, and any
    /// `threshold` evaluations combine to the same output. UNAVAILABLE when fewer than
    /// `threshold` can answer: the guess stays charged, and a retry with the same attempt
    /// gets the same charge.
    async fn gather(
        &self,
        oprf: &OprfRecord,
        request: &EvalRequest,
        deadline: Option<Instant>,
    ) -> Result<Vec<ShareEvaluation>, VaultError> {
        let threshold = usize::from(oprf.threshold);
        let holders: Vec<u64> = oprf.holders().collect();
        let mut candidates = self
            .backend
            .share_candidates(&holders, request.charge.get())
            .into_iter();
        let mut asked = FuturesUnordered::new();
        for holder in candidates.by_ref().take(threshold) {
            asked.push(self.ask(oprf, holder, request));
        }
        let mut answers = Vec::with_capacity(threshold);
        let mut failures = Vec::new();
        let hedge = tokio::time::sleep(HEDGE_AFTER);
        tokio::pin!(hedge);
        // Armed only when the client gave a deadline.
        let cut = deadline.map_or_else(Instant::now, |d| {
            d.checked_sub(DEADLINE_MARGIN).unwrap_or(d)
        });
        let give_up = tokio::time::sleep_until(cut.into());
        tokio::pin!(give_up);
        loop {
            tokio::select! {
                () = &mut give_up, if deadline.is_some() => {
                    failures.push(format!(
                        "{} still asked when the request's deadline came",
                        asked.len()
                    ));
                    break;
                }
                next = asked.next() => match next {
                    None => break,
                    Some((_, Ok(evaluation))) => {
                        answers.push(evaluation);
                        if answers.len() == threshold {
                            break;
                        }
                    }
                    Some((holder, Err(e))) => {
                        self.backend.observe(VaultEvent::ShareHolderFailed);
                        failures.push(format!("node {holder}: {e}"));
                        if let Some(next) = candidates.next() {
                            asked.push(self.ask(oprf, next, request));
                        }
                    }
                },
                () = &mut hedge, if candidates.len() > 0 => {
                    if let Some(next) = candidates.next() {
                        asked.push(self.ask(oprf, next, request));
                    }
                    hedge.as_mut().reset(tokio::time::Instant::now() + HEDGE_AFTER);
                }
            }
        }
        if answers.len() < threshold {
            return Err(VaultError::unavailable(format!(
                "{} of the {threshold} share evaluations needed ({}); the guess stays charged, \
                 retry with the same attempt id",
                answers.len(),
                failures.join("; ")
            )));
        }
        answers.sort_by_key(|a| a.node_id);
        Ok(answers)
    }

    /// One holder's evaluation, its proof checked against the record's commitment unless it
    /// is this replica's own.
    async fn ask(
        &self,
        oprf: &OprfRecord,
        holder: u64,
        request: &EvalRequest,
    ) -> (u64, Result<ShareEvaluation, VaultError>) {
        let answer = async {
            let stored = oprf
                .share_of(holder)
                .ok_or_else(|| VaultError::Internal("not a share-holder of the record".into()))?;
            let evaluated = self.backend.evaluate_share(holder, request).await?;
            if !self.backend.is_local(holder) {
                let commitment = Commitment::parse(&stored.commitment).map_err(|_| {
                    VaultError::Internal("a stored commitment does not parse".into())
                })?;
                oprf::verify_evaluation(
                    &commitment,
                    &request.blinded,
                    &evaluated.element,
                    &evaluated.proof,
                )
                .map_err(|_| VaultError::Internal("its proof does not verify".into()))?;
            }
            Ok(ShareEvaluation {
                node_id: holder,
                commitment: stored.commitment.to_vec(),
                evaluated_element: evaluated.element.as_bytes().to_vec(),
                proof: evaluated.proof.to_bytes().to_vec(),
            })
        };
        (holder, answer.await)
    }

    async fn recover_login(
        &self,
        caller: Caller,
        msg: RecoverLoginRequest,
    ) -> Result<RecoverLoginResponse, VaultError> {
        let account = caller.account;
        let attempt_id =
            AttemptId::parse(&msg.attempt_id).map_err(|e| VaultError::bad_id("attempt_id", e))?;
        let credential_request = opaque::parse_credential_request(&msg.credential_request)
            .map_err(VaultError::from_protocol)?;
        let serving = self.backend.serving()?;
        let charged = match self.backend.attempt(&account, &attempt_id).await {
            AttemptView::Charged(c) => c,
            AttemptView::Destroyed { .. } => return Err(VaultError::Destroyed),
            AttemptView::NoRecord => return Err(VaultError::no_record()),
            AttemptView::NotCharged { .. } => {
                return Err(VaultError::FailedPrecondition {
                    reason: contract::reason::NOT_CHARGED,
                    message: "this attempt is not charged on the active record (reset since, \
                              or never charged): start the recovery again"
                        .into(),
                });
            }
        };
        let charged = ChargedRecord {
            version: charged.version,
            charge: charged.charge,
            guesses_remaining: charged.guesses_remaining,
            guess_limit: charged.guess_limit,
            request_id: charged.request_id,
            sealed_record: charged.sealed_record,
        };
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
        Ok(RecoverLoginResponse {
            credential_response: started.credential_response,
            ticket: started.ticket,
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
        let signature: [u8; 64] = msg.reset_signature.as_slice().try_into().map_err(|_| {
            VaultError::invalid("reset_signature", "wrong_length: must be 64 bytes")
        })?;
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
                // A finished ticket presented again is refused as such, whatever the
                // finalization: it costs nothing and changes nothing.
                if ticket_finished(&self.backend.account_status(&account), version, charge) {
                    return Err(VaultError::ticket_used());
                }
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
                signature,
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
            Outcome::Rejected(Rejection::BadResetSignature) => Err(VaultError::invalid(
                "reset_signature",
                "does_not_verify: not a signature of this reset by the record's reset key",
            )),
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

    /// Two commits: a `Barrier`, whose answer (the highest version issued) bounds what this
    /// call removes, then `DeleteThrough` that version. A copy of the second that Raft commits late (a
    /// forward delivered after the client gave up, a retry on another node) then removes
    /// only what was registered before the call, never a registration the client made
    /// after it.
    async fn delete(&self, caller: Caller, _: DeleteRequest) -> Result<DeleteResponse, VaultError> {
        self.backend.serving()?;
        let through = match self.backend.commit(Command::Barrier).await? {
            Outcome::Barrier { through } => through,
            other => return Err(unexpected(other)),
        };
        let command = Command::DeleteThrough {
            account: caller.account,
            through,
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

/// Whether the applied state shows the ticket of (`version`, `charge`) finished already (its
/// charge at or below the highest finished on the active record). The commit of
/// `ResetGuesses` decides for good; this only answers a replay whose finalization fails.
fn ticket_finished(
    status: &bkv_core::AccountStatus,
    version: RecordVersion,
    charge: bkv_core::ChargeNumber,
) -> bool {
    matches!(
        status.record,
        RecordStatus::Active { version: v, last_finished, .. } if v == version && charge <= last_finished
    )
}

/// A registration made for another share map than the one in force.
fn stale_share_map(current: u64) -> VaultError {
    VaultError::FailedPrecondition {
        reason: contract::reason::STALE_SHARE_MAP,
        message: format!(
            "the share map changed (epoch {current} is in force): start the registration again"
        ),
    }
}

/// `RegisterFinishRequest.ksf`: present, and parameters the cluster accepts.
pub fn parse_ksf(ksf: Option<KsfProto>) -> Result<KsfParams, VaultError> {
    let ksf = ksf.ok_or_else(|| VaultError::invalid("ksf", "missing"))?;
    let params = KsfParams {
        m_cost_kib: ksf.m_cost_kib,
        t_cost: ksf.t_cost,
        p_cost: ksf.p_cost,
    };
    params
        .check()
        .map_err(|e| VaultError::invalid("ksf", format!("out_of_range: {e}")))?;
    Ok(params)
}

fn ksf_proto(ksf: &KsfParams) -> KsfProto {
    KsfProto {
        m_cost_kib: ksf.m_cost_kib,
        t_cost: ksf.t_cost,
        p_cost: ksf.p_cost,
    }
}

/// `RegisterFinishRequest.reset_public_key`: an Ed25519 public key of large order.
pub fn parse_reset_key(bytes: &[u8]) -> Result<[u8; 32], VaultError> {
    oprf::ResetPublicKey::parse(bytes)
        .map(|k| *k.as_bytes())
        .map_err(|e| VaultError::invalid("reset_public_key", format!("invalid: {e}")))
}

/// The shares of a registration: one per holder of the map in force, in its order, each
/// commitment a valid point, each ciphertext well formed, and the commitments consistent
/// with one polynomial of the map's degree (so that any `threshold` holders recover the
/// same key).
pub fn parse_shares(
    shares: &[bkv_proto::v1::ShareUpload],
    map: &bkv_core::ShareMap,
) -> Result<Vec<StoredShare>, VaultError> {
    if shares.len() != map.holders.len() {
        return Err(VaultError::invalid(
            "shares",
            format!(
                "wrong_count: one share per holder of the share map ({})",
                map.holders.len()
            ),
        ));
    }
    let mut stored = Vec::with_capacity(shares.len());
    let mut points = Vec::with_capacity(shares.len());
    for (share, holder) in shares.iter().zip(&map.holders) {
        if share.node_id != holder.node_id {
            return Err(VaultError::invalid(
                "shares",
                "wrong_holder: shares must follow the share map's holders in order",
            ));
        }
        let commitment = Commitment::parse(&share.commitment)
            .map_err(|e| VaultError::invalid("shares.commitment", format!("invalid: {e}")))?;
        ShareCiphertext::parse(&share.ciphertext)
            .map_err(|e| VaultError::invalid("shares.ciphertext", format!("invalid: {e}")))?;
        points.push((share.node_id, commitment));
        stored.push(StoredShare {
            node_id: share.node_id,
            commitment: *commitment.as_bytes(),
            ciphertext: share.ciphertext.clone(),
        });
    }
    debug_assert_eq!(usize::from(map.threshold), threshold_for(map.holders.len()));
    oprf::check_commitments(&points, usize::from(map.threshold))
        .map_err(|e| VaultError::invalid("shares.commitment", format!("inconsistent: {e}")))?;
    Ok(stored)
}

fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Bootstrapped => "bootstrapped",
        Outcome::ShareMapSet { .. } => "share_map_set",
        Outcome::Staged { .. } => "staged",
        Outcome::Activated { .. } => "activated",
        Outcome::Charged { .. } => "charged",
        Outcome::Reset { .. } => "reset",
        Outcome::Destroyed { .. } => "destroyed",
        Outcome::Deleted { .. } => "deleted",
        Outcome::Barrier { .. } => "barrier",
        Outcome::ShareAdded { .. } => "share_added",
        Outcome::SharesRefreshed { .. } => "shares_refreshed",
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

    async fn recover_login(
        &self,
        request: Request<RecoverLoginRequest>,
    ) -> Result<Response<RecoverLoginResponse>, Status> {
        self.call("RecoverLogin", request, |c, m| self.recover_login(c, m))
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tonic::metadata::{MetadataMap, MetadataValue};

    use super::grpc_timeout;

    fn with(value: &'static str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("grpc-timeout", MetadataValue::from_static(value));
        m
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit_and_bad_ones_are_ignored() {
        for (value, want) in [
            ("1H", Duration::from_secs(3600)),
            ("2M", Duration::from_secs(120)),
            ("3S", Duration::from_secs(3)),
            ("2999m", Duration::from_millis(2999)),
            ("5u", Duration::from_micros(5)),
            ("99999999n", Duration::from_nanos(99_999_999)),
        ] {
            assert_eq!(grpc_timeout(&with(value)), Some(want), "{value}");
        }
        for bad in ["", "S", "123456789S", "12", "1s", "-1S", "1.5S", "10x"] {
            let mut m = MetadataMap::new();
            if let Ok(v) = bad.parse() {
                m.insert("grpc-timeout", v);
            }
            assert_eq!(grpc_timeout(&m), None, "{bad:?}");
        }
        assert_eq!(grpc_timeout(&MetadataMap::new()), None);
    }
}
