//! Raw `bkv.v1.Vault` calls, below the SDK: to see the exact status a node answers and what
//! a response does (or does not) carry. The client's side of each step is the SDK's own
//! sans-I/O flow ([`Recovery`], [`Login`]), so the bytes sent are what a real client sends.

use bkv_client::flow::{LoginFinished, ShareEvaluation};
use bkv_client::proto::vault_client::VaultClient as RawVault;
use bkv_client::proto::{
    KsfParams as KsfProto, RecoverFinishRequest, RecoverFinishResponse, RecoverLoginRequest,
    RecoverLoginResponse, RecoverStartRequest, RecoverStartResponse, RegisterFinishRequest,
    ShareUpload as ShareUploadProto, StatusRequest, StatusResponse,
};
use bkv_client::{ClientError, KsfParams, Recovery, RegisterUpload, SecretString};
use bkv_core::ids::{AccountId, ChargeNumber, RecordVersion};
use rand::RngCore as _;
use tonic::transport::Channel;

/// `request` with `authorization: Bearer <token>` when a token is given.
pub fn with_token<T>(message: T, token: Option<&str>) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
    }
    Ok(request)
}

/// 16 fresh random bytes: an attempt or request id.
pub fn fresh_id() -> Vec<u8> {
    let mut id = vec![0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    id
}

/// The `RegisterFinish` of a client's registration upload, with `request_id`.
pub fn register_finish(request_id: Vec<u8>, upload: &RegisterUpload) -> RegisterFinishRequest {
    RegisterFinishRequest {
        request_id,
        registration_upload: upload.registration_upload.clone(),
        sealed_key: upload.sealed_key.clone(),
        guess_limit: upload.guess_limit,
        ksf: Some(KsfProto {
            m_cost_kib: upload.ksf.m_cost_kib,
            t_cost: upload.ksf.t_cost,
            p_cost: upload.ksf.p_cost,
        }),
        share_map_epoch: upload.share_map_epoch,
        shares: upload
            .shares
            .iter()
            .map(|s| ShareUploadProto {
                node_id: s.node_id,
                commitment: s.commitment.to_vec(),
                ciphertext: s.ciphertext.clone(),
            })
            .collect(),
        reset_public_key: upload.reset_public_key.to_vec(),
    }
}

/// The client's blinded element for `password` of `account`, and the state that unblinds
/// the evaluations (a fresh blind each call).
pub fn blind(account: &AccountId, password: &str) -> anyhow::Result<(Recovery, Vec<u8>)> {
    Ok(Recovery::start(
        account,
        SecretString::from(password.to_string()),
    )?)
}

/// `RecoverStart` for `password` with a fresh attempt id: the node's exact answer.
pub async fn recover_start(
    channel: Channel,
    token: Option<&str>,
    account: &AccountId,
    password: &str,
) -> anyhow::Result<Result<RecoverStartResponse, tonic::Status>> {
    let (_recovery, blinded_element) = blind(account, password)?;
    start(channel, token, fresh_id(), blinded_element).await
}

/// `RecoverStart` with exactly these bytes: the node's exact answer.
pub async fn start(
    channel: Channel,
    token: Option<&str>,
    attempt_id: Vec<u8>,
    blinded_element: Vec<u8>,
) -> anyhow::Result<Result<RecoverStartResponse, tonic::Status>> {
    let request = with_token(
        RecoverStartRequest {
            attempt_id,
            blinded_element,
        },
        token,
    )?;
    Ok(RawVault::new(channel)
        .recover_start(request)
        .await
        .map(tonic::Response::into_inner))
}

/// `RecoverLogin` with exactly these bytes: the node's exact answer.
pub async fn recover_login(
    channel: Channel,
    token: Option<&str>,
    attempt_id: Vec<u8>,
    credential_request: Vec<u8>,
) -> anyhow::Result<Result<RecoverLoginResponse, tonic::Status>> {
    let request = with_token(
        RecoverLoginRequest {
            attempt_id,
            credential_request,
        },
        token,
    )?;
    Ok(RawVault::new(channel)
        .recover_login(request)
        .await
        .map(tonic::Response::into_inner))
}

/// `RecoverFinish` with exactly these bytes: the node's exact answer.
pub async fn recover_finish(
    channel: Channel,
    token: Option<&str>,
    message: RecoverFinishRequest,
) -> anyhow::Result<Result<RecoverFinishResponse, tonic::Status>> {
    let request = with_token(message, token)?;
    Ok(RawVault::new(channel)
        .recover_finish(request)
        .await
        .map(tonic::Response::into_inner))
}

/// `Status` with `token` (or none): the node's exact answer.
pub async fn status(
    channel: Channel,
    token: Option<&str>,
) -> anyhow::Result<Result<StatusResponse, tonic::Status>> {
    let request = with_token(StatusRequest {}, token)?;
    Ok(RawVault::new(channel)
        .status(request)
        .await
        .map(tonic::Response::into_inner))
}

/// The evaluations of a `RecoverStart` answer, as the SDK's flow reads them.
pub fn evaluations(started: &RecoverStartResponse) -> Vec<ShareEvaluation> {
    started
        .evaluations
        .iter()
        .map(|e| ShareEvaluation {
            node_id: e.node_id,
            commitment: e.commitment.clone(),
            evaluated_element: e.evaluated_element.clone(),
            proof: e.proof.clone(),
        })
        .collect()
}

/// The record's Argon2id parameters from a `RecoverStart` answer.
pub fn ksf(started: &RecoverStartResponse) -> anyhow::Result<KsfParams> {
    let k = started
        .ksf
        .ok_or_else(|| anyhow::anyhow!("RecoverStart answered no KSF parameters"))?;
    Ok(KsfParams {
        m_cost_kib: k.m_cost_kib,
        t_cost: k.t_cost,
        p_cost: k.p_cost,
    })
}

/// A recovery taken through `RecoverStart` and `RecoverLogin` over raw calls and finished on
/// the client's side: what each step sent and got, and what a `RecoverFinish` needs.
#[derive(Debug)]
pub struct RawLogin {
    /// The attempt id of both calls.
    pub attempt_id: Vec<u8>,
    /// The blinded element `RecoverStart` carried.
    pub blinded_element: Vec<u8>,
    /// `RecoverStart`'s answer.
    pub started: RecoverStartResponse,
    /// The credential request `RecoverLogin` carried.
    pub credential_request: Vec<u8>,
    /// `RecoverLogin`'s answer.
    pub logged: RecoverLoginResponse,
    /// The client's OPAQUE finish: [`ClientError::WrongPassword`] for a wrong password.
    pub finished: Result<LoginFinished, ClientError>,
}

impl RawLogin {
    /// The `RecoverFinish` of this login, if the client's finish succeeded.
    pub fn finish_request(&self) -> Option<RecoverFinishRequest> {
        let done = self.finished.as_ref().ok()?;
        Some(RecoverFinishRequest {
            ticket: self.logged.ticket.clone(),
            credential_finalization: done.credential_finalization.clone(),
            reset_signature: done.reset_signature.to_vec(),
        })
    }

    /// The `RecoverFinish` of this login; an error if the client's finish failed.
    pub fn finish(&self) -> anyhow::Result<RecoverFinishRequest> {
        self.finish_request().ok_or_else(|| {
            anyhow::anyhow!(
                "the client's login finish failed: {:?}",
                self.finished.as_ref().err()
            )
        })
    }
}

/// `RecoverStart`, the client's combination, `RecoverLogin` and the client's OPAQUE finish
/// for `password` of `account` on one channel; an error names the step that failed.
pub async fn login(
    channel: Channel,
    token: Option<&str>,
    account: &AccountId,
    password: &str,
    cluster_name: &str,
) -> anyhow::Result<RawLogin> {
    let (recovery, blinded_element) = blind(account, password)?;
    let attempt_id = fresh_id();
    let started = start(
        channel.clone(),
        token,
        attempt_id.clone(),
        blinded_element.clone(),
    )
    .await?
    .map_err(|s| anyhow::anyhow!("RecoverStart for {account}: {s:?}"))?;
    let (login, credential_request) =
        recovery.harden(&blinded_element, started.threshold, &evaluations(&started))?;
    let logged = recover_login(
        channel,
        token,
        attempt_id.clone(),
        credential_request.clone(),
    )
    .await?
    .map_err(|s| anyhow::anyhow!("RecoverLogin for {account}: {s:?}"))?;
    let ksf = ksf(&started)?;
    let finished = login.finish(
        &logged.credential_response,
        account,
        &ksf,
        cluster_name,
        RecordVersion(started.version),
        ChargeNumber(started.charge),
    );
    Ok(RawLogin {
        attempt_id,
        blinded_element,
        started,
        credential_request,
        logged,
        finished,
    })
}
