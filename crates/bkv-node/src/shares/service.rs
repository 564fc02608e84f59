//! [`SharesService`]: `bkv.v1.Shares` on the peer listener (node certificates only): another
//! node, serving a recovery, asks this one to evaluate its share. The rules are the
//! share-holder's (`bkv_vault::holder`): only a charge this node has applied, at most once,
//! within its own ledger.

use std::sync::Arc;

use bkv_core::oprf::BlindedElement;
use bkv_core::{AccountId, AttemptId, ChargeNumber, RecordVersion};
use bkv_proto::v1::shares_server::{Shares, SharesServer};
use bkv_proto::v1::{EvaluateRequest, EvaluateResponse};
use bkv_vault::VaultError;
use bkv_vault::holder::{EvalRefusal, EvalRequest, Evaluated, HolderError};
use tonic::{Request, Response, Status};

use super::NodeShares;
use crate::metrics::Metrics;

/// The `bkv.v1.Shares` service of one node.
#[derive(Debug, Clone)]
pub struct SharesService {
    shares: Arc<NodeShares>,
    metrics: Metrics,
}

impl SharesService {
    /// The service over this node's share-holder.
    pub fn new(shares: Arc<NodeShares>, metrics: Metrics) -> Self {
        Self { shares, metrics }
    }

    /// The tonic server.
    pub fn into_server(self) -> SharesServer<Self> {
        SharesServer::new(self)
    }
}

/// Reads an evaluation request from the wire.
pub fn parse_request(msg: &EvaluateRequest) -> Result<EvalRequest, VaultError> {
    Ok(EvalRequest {
        account: AccountId::parse(&msg.account).map_err(|e| VaultError::bad_id("account", e))?,
        version: RecordVersion(msg.version),
        attempt_id: AttemptId::parse(&msg.attempt_id)
            .map_err(|e| VaultError::bad_id("attempt_id", e))?,
        charge: ChargeNumber(msg.charge),
        blinded: BlindedElement::parse(&msg.blinded_element)
            .map_err(|e| VaultError::invalid("blinded_element", format!("invalid: {e}")))?,
    })
}

/// The wire form of an evaluation request.
pub fn request_message(request: &EvalRequest) -> EvaluateRequest {
    EvaluateRequest {
        account: request.account.as_str().to_string(),
        version: request.version.get(),
        attempt_id: request.attempt_id.as_bytes().to_vec(),
        charge: request.charge.get(),
        blinded_element: request.blinded.as_bytes().to_vec(),
    }
}

/// Reads an evaluation answer from the wire.
pub fn parse_answer(msg: &EvaluateResponse) -> Result<Evaluated, VaultError> {
    let bad = |what: &str| VaultError::Internal(format!("a share-holder answered a bad {what}"));
    Ok(Evaluated {
        element: bkv_core::oprf::EvaluatedElement::parse(&msg.evaluated_element)
            .map_err(|_| bad("evaluated element"))?,
        proof: bkv_core::oprf::DleqProof::parse(&msg.proof).map_err(|_| bad("proof"))?,
    })
}

/// How a holder's refusal answers a peer.
pub fn refusal_status(e: HolderError) -> Status {
    match e {
        HolderError::Refused(EvalRefusal::NotYetApplied) => {
            Status::unavailable("the charge has not been applied on this node yet")
        }
        HolderError::Refused(EvalRefusal::NoShare) => {
            Status::not_found("this node holds no share of the record")
        }
        HolderError::Refused(r) => Status::failed_precondition(r.to_string()),
        HolderError::Vault(e) => Status::from(e),
    }
}

#[tonic::async_trait]
impl Shares for SharesService {
    async fn evaluate(
        &self,
        request: Request<EvaluateRequest>,
    ) -> Result<Response<EvaluateResponse>, Status> {
        let request = parse_request(request.get_ref())?;
        match super::evaluate(&self.shares, &self.metrics, &request).await {
            Ok(evaluated) => Ok(Response::new(EvaluateResponse {
                evaluated_element: evaluated.element.as_bytes().to_vec(),
                proof: evaluated.proof.to_bytes().to_vec(),
            })),
            Err(e) => {
                tracing::info!(error = %e, "share evaluation refused");
                Err(refusal_status(e))
            }
        }
    }
}
