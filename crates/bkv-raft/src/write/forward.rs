//! The leader's side of `bkv.v1.Raft/Forward`: a follower's write, committed through this
//! node's group commit, answered with its outcome or with why not (see `WriteError`'s
//! conversion to a status).

use std::time::Duration;

use bkv_core::Request;
use bkv_proto::v1::{ForwardRequest, ForwardResponse};
use tonic::Status;

use super::MAX_FORWARD_REQUEST_BYTES;
use super::batcher::Batcher;
use crate::codec;

/// Commits a forwarded write within `timeout` and answers its encoded outcome.
pub(crate) async fn serve(
    batcher: &Batcher,
    request: &ForwardRequest,
    timeout: Duration,
) -> Result<ForwardResponse, Status> {
    let bytes = &request.request;
    let req: Request = codec::decode_bounded(bytes, MAX_FORWARD_REQUEST_BYTES)
        .map_err(|e| Status::invalid_argument(format!("request: {e}")))?;
    let committed = batcher.commit(req, bytes.len(), timeout).await?;
    let outcome = codec::encode(&committed.outcome)
        .map_err(|e| Status::internal(format!("encoding the outcome: {e}")))?;
    Ok(ForwardResponse {
        outcome,
        log_index: committed.log_index,
    })
}
