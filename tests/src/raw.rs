//! Raw `bkv.v1.Vault` calls, below the SDK: to see the exact status a node answers and what
//! a response does (or does not) carry.

use bkv_client::proto::vault_client::VaultClient as RawVault;
use bkv_client::proto::{RecoverStartRequest, RecoverStartResponse, StatusRequest, StatusResponse};
use bkv_client::{Recovery, SecretString};
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

/// `RecoverStart` for `password` with a fresh attempt id: the node's exact answer.
pub async fn recover_start(
    channel: Channel,
    token: Option<&str>,
    password: &str,
) -> anyhow::Result<Result<RecoverStartResponse, tonic::Status>> {
    let (_recovery, credential_request) =
        Recovery::start(SecretString::from(password.to_string()))?;
    let mut attempt_id = vec![0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut attempt_id);
    let request = with_token(
        RecoverStartRequest {
            attempt_id,
            credential_request,
        },
        token,
    )?;
    Ok(RawVault::new(channel)
        .recover_start(request)
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
