//! The vault SDK: register a backup key under a password, recover it, ask the record's
//! status, delete it. Each method runs the client side of the protocol
//! (docs/DESIGN.md §4) over [`Failover`], which retries only what is safe to retry with the
//! same ids and bytes.

use bkv_core::ids::{AccountId, ChargeNumber, RecordVersion};
use bkv_core::protocol::{BackupKey, MAX_TICKET_LEN, MAX_TRANSPORTED_KEY_LEN};
use bkv_proto::contract::reason as contract_reason;
use bkv_proto::v1::vault_client::VaultClient as RawVaultClient;
use bkv_proto::v1::{
    ActivateRequest, DeleteRequest, RecordState as RawRecordState, RecoverFinishRequest,
    RecoverLoginRequest, RecoverStartRequest, RegisterStartRequest, StatusRequest,
};
use rand::RngCore as _;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret as _, SecretString};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::answers::{AccountStatus, RecordState, Recovered, Registered, Reshared};
use crate::endpoint;
use crate::failover::{CallError, Failover};
use crate::flow::{ClusterTrust, RegisterStarted, ShareEvaluation};
use crate::token_source::{unverified_audience, unverified_subject};
use crate::vault_error::{Rpc, VaultError, from_status};
use crate::{ClientConfig, ClientError, KsfParams, Recovery, Registration, TokenSource};

/// A client of a bkv cluster for one account token.
///
/// Calls go to the endpoints of [`ClientConfig`] with failover: UNAVAILABLE answers and
/// transport failures are retried (with the same ids and bytes, so no retry can cost a
/// second guess) until [`ClientConfig::deadline`]; every other answer is a typed
/// [`VaultError`].
///
/// ```no_run
/// use bkv_client::{ClientConfig, SecretString, TokenSource, VaultClient, VaultError};
/// use bkv_core::ids::AccountId;
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let config = ClientConfig::new(
///     vec!["https://127.0.0.1:7101".into()],
///     std::fs::read("pki/ca.pem")?,
///     TokenSource::fixed(std::env::var("BKV_TOKEN")?),
/// );
/// let vault = VaultClient::connect(config).await?;
/// let account = AccountId::parse("alice")?;
/// let registered = vault
///     .register(&account, SecretString::from("correct horse".to_string()), Some(5))
///     .await?;
/// match vault.recover(&account, SecretString::from("correct horse".to_string())).await {
///     Ok(recovered) => assert_eq!(recovered.key, registered.key),
///     Err(VaultError::WrongPassword { guesses_remaining }) => {
///         eprintln!("wrong password, {guesses_remaining} guesses left")
///     }
///     Err(e) => return Err(e.into()),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct VaultClient {
    failover: Failover,
    token: TokenSource,
    ksf: KsfParams,
    identity_key: Option<[u8; 32]>,
}

/// A token already checked out of the [`TokenSource`] for one SDK call, and the cluster
/// name it is for (its audience).
struct Bearer(
    MetadataValue<tonic::metadata::Ascii>,
    String,
    std::time::Duration,
);

impl Bearer {
    /// `message` with the token, and the call timeout as its `grpc-timeout`: a node that
    /// cannot finish in time (share-holders that do not answer) says so before the client
    /// gives up on the call.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        request.set_timeout(self.2);
        request
    }
}

impl VaultClient {
    /// Sets up TLS channels to every endpoint (connected on first use).
    pub async fn connect(config: ClientConfig) -> Result<Self, VaultError> {
        if config.endpoints.is_empty() {
            return Err(VaultError::Transport("no endpoint given".into()));
        }
        config
            .ksf
            .argon2()
            .map_err(|e| VaultError::Protocol(e.to_string()))?;
        let tls = endpoint::tls(&config.ca_cert_pem, None);
        let failover = Failover::new(
            &config.endpoints,
            &tls,
            config.routing,
            config.retry,
            config.call_timeout,
            config.deadline,
        )?;
        Ok(Self {
            failover,
            token: config.token,
            ksf: config.ksf,
            identity_key: config.identity_key,
        })
    }

    /// A client for another account token over this client's channels: no new connection is
    /// made, and the endpoint to start at is shared (a failover or a leader that one of them
    /// learns, the others use). For a service that acts for many accounts (a backend, a load
    /// generator), one `connect` and then a `with_token` per account.
    pub fn with_token(&self, token: TokenSource) -> Self {
        Self {
            failover: self.failover.share(),
            token,
            ksf: self.ksf,
            identity_key: self.identity_key,
        }
    }

    /// The endpoints in use, normalized to `https://host:port`.
    pub fn endpoints(&self) -> Vec<String> {
        self.failover.urls()
    }

    /// The endpoint the next call goes to first (see [`crate::Routing`]).
    pub fn current_endpoint(&self) -> String {
        self.failover.preferred_url().to_string()
    }

    /// Generates a backup key, registers it under `password` and activates it. The
    /// previous active version, if any, is destroyed. `guess_limit` `None` takes the
    /// cluster's default.
    pub async fn register(
        &self,
        account: &AccountId,
        password: SecretString,
        guess_limit: Option<u32>,
    ) -> Result<Registered, VaultError> {
        let key = BackupKey::generate();
        let version = self
            .register_key(account, password, guess_limit, &key)
            .await?;
        Ok(Registered { version, key })
    }

    /// Registers an existing backup key under `password` and activates it.
    pub async fn register_key(
        &self,
        account: &AccountId,
        password: SecretString,
        guess_limit: Option<u32>,
        key: &BackupKey,
    ) -> Result<RecordVersion, VaultError> {
        if guess_limit == Some(0) {
            return Err(VaultError::InvalidArgument {
                field: "guess_limit".into(),
                reason: "must be at least 1".into(),
            });
        }
        let identity_key = self.identity_key.ok_or_else(|| {
            VaultError::Protocol(
                "no pinned cluster identity key: the share map cannot be checked".into(),
            )
        })?;
        let bearer = self.bearer(Some(account))?;
        let (registration, registration_request) = Registration::start(account, password)?;

        // Phase 1: RegisterStart (stateless): the OPAQUE response and the share map.
        let start = RegisterStartRequest {
            registration_request,
        };
        let response = self
            .call(Rpc::Register, |mut c| {
                let request = bearer.request(start.clone());
                async move { c.register_start(request).await }
            })
            .await?;
        let started = RegisterStarted::from_response(response).map_err(VaultError::Protocol)?;

        // Phase 2: Argon2id, the upload and the shares, off the async threads.
        let ksf = self.ksf;
        let account_owned = account.clone();
        let cluster_name = bearer.1.clone();
        let key_copy = BackupKey::from_slice(key.expose())
            .map_err(|_| VaultError::Protocol("backup key length".into()))?;
        let limit = guess_limit.unwrap_or(0);
        let upload = tokio::task::spawn_blocking(move || {
            registration.finish(
                &started,
                &account_owned,
                &key_copy,
                &ksf,
                limit,
                ClusterTrust {
                    cluster_name: &cluster_name,
                    identity_key: &identity_key,
                },
            )
        })
        .await
        .map_err(|_| VaultError::Protocol("registration worker failed".into()))??;

        // Phase 3: RegisterFinish, idempotent per request_id.
        let mut request_id = vec![0u8; 16];
        OsRng.fill_bytes(&mut request_id);
        let finish = upload.into_request(request_id);
        let staged = self
            .call(Rpc::Register, |mut c| {
                let request = bearer.request(finish.clone());
                async move { c.register_finish(request).await }
            })
            .await?
            .version;
        if staged == 0 {
            return Err(VaultError::Protocol(
                "RegisterFinish returned version 0".into(),
            ));
        }

        // Phase 4: Activate, idempotent.
        let activated = self
            .call(Rpc::Register, |mut c| {
                let request = bearer.request(ActivateRequest { version: staged });
                async move { c.activate(request).await }
            })
            .await?
            .version;
        if activated != staged {
            return Err(VaultError::Protocol(format!(
                "Activate({staged}) answered version {activated}"
            )));
        }
        Ok(RecordVersion(activated))
    }

    /// Recovers the backup key with `password`. Spends one guess; a wrong password gives
    /// [`VaultError::WrongPassword`] with the guesses left, a destroyed record
    /// [`VaultError::Destroyed`].
    ///
    /// If RecoverFinish is refused because its ticket was used already, an earlier try of
    /// the same call was served and its answer lost (the key was released and the counter
    /// reset): the recovery then starts again once, as a new attempt, which spends one guess
    /// and is reset again by the right password.
    pub async fn recover(
        &self,
        account: &AccountId,
        password: SecretString,
    ) -> Result<Recovered, VaultError> {
        match self.recover_once(account, password.clone()).await {
            Err(VaultError::TicketRejected { reason })
                if reason == contract_reason::TICKET_USED =>
            {
                self.recover_once(account, password).await
            }
            other => other,
        }
    }

    /// One recovery attempt: [`VaultClient::recover`] without the restart.
    async fn recover_once(
        &self,
        account: &AccountId,
        password: SecretString,
    ) -> Result<Recovered, VaultError> {
        let bearer = self.bearer(Some(account))?;
        // One attempt, one blinded element: retries below resend exactly these bytes with
        // this attempt_id, so the vault charges the attempt once.
        let (recovery, blinded_element) = Recovery::start(account, password)?;
        let mut attempt_id = vec![0u8; 16];
        OsRng.fill_bytes(&mut attempt_id);
        let start = RecoverStartRequest {
            attempt_id: attempt_id.clone(),
            blinded_element: blinded_element.clone(),
        };

        // Phase 1: RecoverStart charges a guess and gathers the share evaluations.
        let started = self
            .call(Rpc::RecoverStart, |mut c| {
                let request = bearer.request(start.clone());
                async move { c.recover_start(request).await }
            })
            .await?;
        let guesses_remaining = started.guesses_remaining;
        let ksf = started
            .ksf
            .map(|k| KsfParams {
                m_cost_kib: k.m_cost_kib,
                t_cost: k.t_cost,
                p_cost: k.p_cost,
            })
            .ok_or_else(|| {
                VaultError::Protocol("RecoverStart returned no KSF parameters".into())
            })?;
        let evaluations: Vec<ShareEvaluation> = started
            .evaluations
            .iter()
            .map(ShareEvaluation::from)
            .collect();
        let (login, credential_request) =
            recovery.harden(&blinded_element, started.threshold, &evaluations)?;

        // Phase 2: RecoverLogin: OPAQUE on the hardened password.
        let login_request = RecoverLoginRequest {
            attempt_id,
            credential_request,
        };
        let logged = self
            .call(Rpc::RecoverFinish, |mut c| {
                let request = bearer.request(login_request.clone());
                async move { c.recover_login(request).await }
            })
            .await?;
        if logged.ticket.is_empty() || logged.ticket.len() > MAX_TICKET_LEN {
            return Err(VaultError::Protocol(format!(
                "RecoverLogin returned a ticket of {} bytes",
                logged.ticket.len()
            )));
        }

        // Phase 3: the client finishes OPAQUE and learns whether the password was right.
        ksf.argon2()
            .map_err(|e| VaultError::Protocol(format!("the record's KSF: {e}")))?;
        let account_owned = account.clone();
        let cluster_name = bearer.1.clone();
        let credential_response = logged.credential_response;
        let (version, charge) = (RecordVersion(started.version), ChargeNumber(started.charge));
        let finished = tokio::task::spawn_blocking(move || {
            login.finish(
                &credential_response,
                &account_owned,
                &ksf,
                &cluster_name,
                version,
                charge,
            )
        })
        .await
        .map_err(|_| VaultError::Protocol("recovery worker failed".into()))?;
        let finished = match finished {
            Ok(done) => done,
            Err(ClientError::WrongPassword) => {
                return Err(VaultError::WrongPassword { guesses_remaining });
            }
            Err(e) => return Err(e.into()),
        };
        let session = finished.session;

        // Phase 4: RecoverFinish with the same ticket on every retry.
        let finish = RecoverFinishRequest {
            ticket: logged.ticket,
            credential_finalization: finished.credential_finalization,
            reset_signature: finished.reset_signature.to_vec(),
        };
        let done = self
            .call(Rpc::RecoverFinish, |mut c| {
                let request = bearer.request(finish.clone());
                async move { c.recover_finish(request).await }
            })
            .await
            .map_err(|e| match e {
                // The vault's count wins; without one, the count from RecoverStart holds.
                VaultError::PermissionDenied(_) => VaultError::WrongPassword { guesses_remaining },
                e => e,
            })?;
        if done.version != started.version {
            return Err(VaultError::Protocol(format!(
                "RecoverFinish answered version {} for a login on version {}",
                done.version, started.version
            )));
        }
        if done.transported_key.len() > MAX_TRANSPORTED_KEY_LEN {
            return Err(VaultError::Protocol("transported_key is too long".into()));
        }
        let version = RecordVersion(done.version);
        let key = session.open(&done.transported_key, version)?;
        Ok(Recovered {
            version,
            key,
            guesses_remaining_before: guesses_remaining,
            guess_limit: started.guess_limit,
        })
    }

    /// Recovers the backup key with `password`, then registers the same key under the same
    /// password and guess limit again, with a fresh OPRF key split over the cluster's current
    /// voters (the share map in force), and activates it: the recovered record and its
    /// shares are replaced at once (the old shares are erased by each node's share sweep).
    /// After a node was replaced, an account recovered this way is shared over the current
    /// members again; and shares taken from nodes before the recovery say nothing about the
    /// new OPRF key. The recovery's result comes back even if the re-registration fails
    /// ([`Reshared::reshared`] holds its error); the old record is then still the active one.
    pub async fn recover_and_reshare(
        &self,
        account: &AccountId,
        password: SecretString,
    ) -> Result<Reshared, VaultError> {
        let recovered = self.recover(account, password.clone()).await?;
        let reshared = self
            .register_key(
                account,
                password,
                Some(recovered.guess_limit),
                &recovered.key,
            )
            .await;
        Ok(Reshared {
            recovered,
            reshared,
        })
    }

    /// What the vault holds for the token's account.
    pub async fn status(&self) -> Result<AccountStatus, VaultError> {
        let bearer = self.bearer(None)?;
        let s = self
            .call(Rpc::Account, |mut c| {
                let request = bearer.request(StatusRequest {});
                async move { c.status(request).await }
            })
            .await?;
        let state = match RawRecordState::try_from(s.state) {
            Ok(RawRecordState::Absent) => RecordState::Absent,
            Ok(RawRecordState::Active) => RecordState::Active,
            Ok(RawRecordState::Destroyed) => RecordState::Destroyed,
            _ => {
                return Err(VaultError::Protocol(format!(
                    "Status returned record state {}",
                    s.state
                )));
            }
        };
        let version = |v: u64| (v != 0).then_some(RecordVersion(v));
        Ok(AccountStatus {
            state,
            version: version(s.version),
            guesses_used: s.guesses_used,
            guess_limit: s.guess_limit,
            staged_version: version(s.staged_version),
        })
    }

    /// Deletes every version of the token's account record. Returns whether there was
    /// anything to delete.
    pub async fn delete(&self) -> Result<bool, VaultError> {
        let bearer = self.bearer(None)?;
        let answer = self
            .call(Rpc::Account, |mut c| {
                let request = bearer.request(DeleteRequest {});
                async move { c.delete(request).await }
            })
            .await?;
        Ok(answer.existed)
    }

    /// The token for one SDK call, as `authorization` metadata. With `account`, refuses a
    /// JWT whose subject is another account: the OPAQUE messages would be bound to the
    /// wrong one.
    fn bearer(&self, account: Option<&AccountId>) -> Result<Bearer, VaultError> {
        let token = self.token.token().map_err(VaultError::Token)?;
        if let Some(account) = account
            && let Some(subject) = unverified_subject(&token)
            && subject != account.as_str()
        {
            return Err(VaultError::InvalidArgument {
                field: "account".into(),
                reason: "the account token is for another account".into(),
            });
        }
        let audience = unverified_audience(&token).unwrap_or_default();
        let value = SecretString::from(format!("Bearer {}", token.expose_secret()));
        let mut value: MetadataValue<tonic::metadata::Ascii> = value
            .expose_secret()
            .parse()
            .map_err(|_| VaultError::Token("the token is not printable ASCII".into()))?;
        value.set_sensitive(true);
        Ok(Bearer(value, audience, self.failover.call_timeout()))
    }

    /// One RPC through the failover, with its status mapped for `rpc`.
    async fn call<T, F, Fut>(&self, rpc: Rpc, mut f: F) -> Result<T, VaultError>
    where
        F: FnMut(RawVaultClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.failover
            .call(|channel| f(RawVaultClient::new(channel)))
            .await
            .map(|response| {
                self.failover.follow(response.metadata());
                response.into_inner()
            })
            .map_err(|e| match e {
                CallError::Status(status) => from_status(&status, rpc),
                CallError::Exhausted { attempts, last } => {
                    VaultError::Unavailable { attempts, last }
                }
            })
    }
}

#[cfg(test)]
mod tests;
