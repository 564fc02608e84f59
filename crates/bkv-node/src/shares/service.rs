//! [`SharesService`]: `bkv.v1.Shares` on the peer listener (node certificates only): another
//! node, serving a recovery, asks this one to evaluate its share. The rules are the
//! share-holder's (`bkv_vault::holder`): only a charge this node has applied, at most once,
//! within its own ledger.

use std::sync::Arc;

use bkv_core::oprf::BlindedElement;
use bkv_core::oprf::ShareCiphertext;
use bkv_core::{AccountId, AttemptId, ChargeNumber, RecordVersion};
use bkv_proto::v1::shares_server::{Shares, SharesServer};
use bkv_proto::v1::{
    EvaluateRequest, EvaluateResponse, RefreshApplyRequest, RefreshApplyResponse,
    RefreshDealRequest, RefreshDealResponse, RefreshScope, RepairAnswer, RepairCombineRequest,
    RepairCombineResponse, RepairDealRequest, RepairDealResponse, RepairRecord, RepairScope,
};
use bkv_vault::VaultError;
use bkv_vault::holder::{
    EvalRefusal, EvalRequest, Evaluated, HolderError, RefreshTask, RepairTask,
};
use futures::future::join_all;
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

/// Most records in one repair request.
pub const REPAIR_BATCH_MAX: usize = 256;

/// Reads a repair request's scope and records (each record's pieces beside its task).
pub fn parse_repair(
    scope: Option<&RepairScope>,
    records: &[RepairRecord],
) -> Result<Vec<(RepairTask, Vec<ShareCiphertext>)>, VaultError> {
    let scope = scope.ok_or_else(|| VaultError::invalid("scope", "missing"))?;
    if scope.helpers.len() > u16::MAX as usize {
        return Err(VaultError::invalid("scope.helpers", "too_many"));
    }
    parse_records(records, |account, version| RepairTask {
        account,
        version,
        target: scope.target,
        helpers: scope.helpers.clone(),
    })
}

/// Reads a refresh request's scope and records (each record's pieces beside its task).
pub fn parse_refresh(
    scope: Option<&RefreshScope>,
    records: &[RepairRecord],
) -> Result<Vec<(RefreshTask, Vec<ShareCiphertext>)>, VaultError> {
    let scope = scope.ok_or_else(|| VaultError::invalid("scope", "missing"))?;
    if scope.participants.len() > u16::MAX as usize {
        return Err(VaultError::invalid("scope.participants", "too_many"));
    }
    parse_records(records, |account, version| RefreshTask {
        account,
        version,
        participants: scope.participants.clone(),
    })
}

/// Reads the records of a repair or refresh request: at most [`REPAIR_BATCH_MAX`], each
/// account valid and each piece a well-formed ciphertext; `task` makes each record's task.
fn parse_records<T>(
    records: &[RepairRecord],
    task: impl Fn(AccountId, RecordVersion) -> T,
) -> Result<Vec<(T, Vec<ShareCiphertext>)>, VaultError> {
    if records.len() > REPAIR_BATCH_MAX {
        return Err(VaultError::invalid(
            "records",
            format!(
                "too_many: {} records, at most {REPAIR_BATCH_MAX}",
                records.len()
            ),
        ));
    }
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let account = AccountId::parse(&r.account)
                .map_err(|e| VaultError::bad_id("records.account", e))?;
            let pieces = r
                .pieces
                .iter()
                .map(|p| {
                    ShareCiphertext::parse(p).map_err(|e| {
                        VaultError::invalid("records.pieces", format!("invalid in record {i}: {e}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((task(account, RecordVersion(r.version)), pieces))
        })
        .collect()
}

/// One record's answer on the wire.
fn repair_answer(result: Result<Vec<ShareCiphertext>, HolderError>) -> RepairAnswer {
    match result {
        Ok(ciphertexts) => RepairAnswer {
            ciphertexts: ciphertexts.iter().map(|c| c.as_bytes().to_vec()).collect(),
            ..Default::default()
        },
        Err(e) => RepairAnswer {
            refused: e.to_string(),
            ..Default::default()
        },
    }
}

/// A refresh step's refusal of a record that carries pieces in step 1.
fn pieces_in_step_1() -> HolderError {
    HolderError::Refused(EvalRefusal::Refresh("step 1 carries no pieces".into()))
}

#[tonic::async_trait]
impl Shares for SharesService {
    async fn repair_deal(
        &self,
        request: Request<RepairDealRequest>,
    ) -> Result<Response<RepairDealResponse>, Status> {
        let msg = request.get_ref();
        let tasks = parse_repair(msg.scope.as_ref(), &msg.records)?;
        // Every record at once: the token work goes to the HSM pool's workers in parallel.
        let answers: Vec<RepairAnswer> = join_all(tasks.iter().map(|(task, pieces)| async move {
            let result = if pieces.is_empty() {
                self.shares.repair_deal(task).await
            } else {
                Err(HolderError::Refused(EvalRefusal::Repair(
                    "step 1 carries no pieces".into(),
                )))
            };
            repair_answer(result)
        }))
        .await;
        self.metrics.repair_helped("deal", &answers);
        Ok(Response::new(RepairDealResponse { answers }))
    }

    async fn repair_combine(
        &self,
        request: Request<RepairCombineRequest>,
    ) -> Result<Response<RepairCombineResponse>, Status> {
        let msg = request.get_ref();
        let tasks = parse_repair(msg.scope.as_ref(), &msg.records)?;
        let answers: Vec<RepairAnswer> = join_all(tasks.iter().map(|(task, pieces)| async move {
            let result = self.shares.repair_combine(task, pieces).await;
            repair_answer(result.map(|sum| vec![sum]))
        }))
        .await;
        self.metrics.repair_helped("combine", &answers);
        Ok(Response::new(RepairCombineResponse { answers }))
    }

    async fn refresh_deal(
        &self,
        request: Request<RefreshDealRequest>,
    ) -> Result<Response<RefreshDealResponse>, Status> {
        let msg = request.get_ref();
        let tasks = parse_refresh(msg.scope.as_ref(), &msg.records)?;
        // Every record at once, as for repair.
        let answers: Vec<RepairAnswer> = join_all(tasks.iter().map(|(task, pieces)| async move {
            let result = if pieces.is_empty() {
                self.shares.refresh_deal(task).await
            } else {
                Err(pieces_in_step_1())
            };
            repair_answer(result)
        }))
        .await;
        self.metrics.repair_helped("refresh_deal", &answers);
        Ok(Response::new(RefreshDealResponse { answers }))
    }

    async fn refresh_apply(
        &self,
        request: Request<RefreshApplyRequest>,
    ) -> Result<Response<RefreshApplyResponse>, Status> {
        let msg = request.get_ref();
        let tasks = parse_refresh(msg.scope.as_ref(), &msg.records)?;
        let answers: Vec<RepairAnswer> = join_all(tasks.iter().map(|(task, pieces)| async move {
            match self.shares.refresh_apply(task, pieces).await {
                Ok(share) => RepairAnswer {
                    ciphertexts: vec![share.ciphertext],
                    commitment: share.commitment.to_vec(),
                    ..Default::default()
                },
                Err(e) => RepairAnswer {
                    refused: e.to_string(),
                    ..Default::default()
                },
            }
        }))
        .await;
        self.metrics.repair_helped("refresh_apply", &answers);
        Ok(Response::new(RefreshApplyResponse { answers }))
    }

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
