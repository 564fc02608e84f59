//! Workloads of chaos runs, each operation recorded in a [`History`]:
//!
//! - honest clients (the SDK, with failover over every node): register, recover, delete;
//!   and a "leaky" honest recovery over raw calls whose finish (ticket, finalization, reset
//!   signature) an attacker later replays;
//! - attackers (raw `bkv.v1.Vault` calls to one node at a time): blinded elements of wrong
//!   passwords, retries of an attempt with the same bytes on other nodes, attempt ids reused
//!   with another blinded element, logins on their own charged attempts, forged
//!   finalizations and reset signatures, replayed finishes, clients that stop after any step.
//!
//! The clients live in [`super::honest`] and [`super::attacker`], reaching the cluster through
//! [`super::kit::ClientKit`]; here are what they share: how answers read in the history, ids,
//! and the final status observation.

use bkv_client::proto::{RecordState, RecoverStartResponse, StatusRequest};
use rand::RngCore as _;
use tonic::Code;

use super::history::{Entry, Evaluation, History, Outcome, Role};
use super::kit::ClientKit;

/// How a raw call's status reads for the history.
pub fn classify_status(s: &tonic::Status) -> Outcome {
    match s.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
            Outcome::Unavailable
        }
        Code::PermissionDenied => Outcome::WrongPassword,
        Code::NotFound => Outcome::NotFound,
        Code::FailedPrecondition
            if bkv_client::error_details(s).is_some_and(|d| d.reason == "DESTROYED") =>
        {
            Outcome::Destroyed
        }
        Code::FailedPrecondition | Code::InvalidArgument => Outcome::Refused,
        _ => Outcome::Error,
    }
}

pub(crate) fn random_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    id
}

/// SHA-256 of a `RecoverStart`'s blinded element (what the vault binds a charge to), first
/// 16 bytes in hex (the history's `request_hash`).
pub fn request_hash(blinded_element: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(blinded_element)[..16])
}

/// Records a `RecoverStart` answer in its complete entry: a release when it carries
/// evaluations (a password test), with the version, the charge, the guesses and who
/// evaluated what.
pub fn record_start(e: &mut Entry, r: &RecoverStartResponse) {
    use sha2::Digest as _;
    e.released = !r.evaluations.is_empty();
    e.version = Some(r.version);
    e.charge = Some(r.charge);
    e.guesses_remaining = Some(r.guesses_remaining);
    e.guess_limit = Some(r.guess_limit);
    e.evaluations = r
        .evaluations
        .iter()
        .map(|v| Evaluation {
            node: v.node_id,
            element_fp: hex::encode(&sha2::Sha256::digest(&v.evaluated_element)[..16]),
        })
        .collect();
}

/// The record status of `account` as node `node` has it applied, recorded as a
/// `final_status` observation: `(state, version)` with state `absent`, `active` or
/// `destroyed`.
pub async fn observe_status(
    kit: &ClientKit,
    h: &History,
    account: &str,
    node: u64,
) -> anyhow::Result<(String, u64)> {
    let answer = kit
        .raw(node)?
        .status(kit.request(account, StatusRequest {})?)
        .await?
        .into_inner();
    let state = match RecordState::try_from(answer.state) {
        Ok(RecordState::Active) => "active",
        Ok(RecordState::Destroyed) => "destroyed",
        Ok(RecordState::Absent) => "absent",
        _ => "unknown",
    }
    .to_string();
    let mut e = Entry::new(Role::Observer, "observer", "final_status")
        .account(account)
        .node(node)
        .detail(state.clone());
    e.version = (answer.version != 0).then_some(answer.version);
    e.guesses_remaining = Some(answer.guess_limit.saturating_sub(answer.guesses_used));
    e.guess_limit = Some(answer.guess_limit);
    h.info(e);
    Ok((state, answer.version))
}
