//! Failpoints builds only: a node that lies like a compromised one, for the test that shows
//! the honest nodes hold the guess limit anyway. Three switches (`bkv_failpoints`, set with
//! `BKV_FAILPOINTS` or on the HTTP port): [`EVALUATE_UNCHECKED`] is read by
//! `crate::shares::evaluate`; [`SKIP_CHARGE`] and [`FAKE_RESET`] by [`commit`], which every
//! write of the vault service goes through.

use bkv_core::{AccountId, ChargeNumber, Command, Outcome, RecordVersion};

use crate::error::VaultError;
use crate::node::Node;

/// This node evaluates its own OPRF key share with no charge and no ledger.
pub const EVALUATE_UNCHECKED: &str = "lie_evaluate_unchecked";
/// This node's RecoverStart does not commit its charge: it makes one up from its applied
/// state and asks the share-holders to evaluate under it.
pub const SKIP_CHARGE: &str = "lie_skip_charge";
/// After each charge it commits, this node proposes a reset of the account's guesses with a
/// made-up signature.
pub const FAKE_RESET: &str = "lie_fake_reset";

/// Whether switch `name` is on.
pub fn on(name: &str) -> bool {
    bkv_failpoints::on(name)
}

/// The vault service's writes, lying where a switch says so.
pub async fn commit(node: &Node, command: Command) -> Result<Outcome, VaultError> {
    let Command::ChargeGuess { account, .. } = &command else {
        return node.write(command).await;
    };
    let account = account.clone();
    if on(SKIP_CHARGE) {
        tracing::warn!(
            failpoint = SKIP_CHARGE,
            "lying: a charge made up, not committed"
        );
        return made_up_charge(node, &account);
    }
    let outcome = node.write(command).await?;
    if let Outcome::Charged {
        version, charge, ..
    } = &outcome
        && on(FAKE_RESET)
    {
        fake_reset(node, account, *version, *charge).await;
    }
    Ok(outcome)
}

/// The `Charged` outcome a charge would have, read from this node's applied state and never
/// committed: the next charge number, the whole guess limit left.
fn made_up_charge(node: &Node, account: &AccountId) -> Result<Outcome, VaultError> {
    let record = node
        .state()
        .read(|s| s.active_record(account))
        .ok_or_else(VaultError::no_record)?;
    Ok(Outcome::Charged {
        version: record.version,
        charge: ChargeNumber(record.last_charge.get() + 1),
        guesses_remaining: record.guess_limit.get(),
        guess_limit: record.guess_limit,
        request_id: record.request_id,
        sealed_record: record.sealed_record,
        oprf: record.oprf,
    })
}

/// Proposes a reset of `account`'s guesses signed by no one; the apply refuses it on every
/// node (the signature does not verify under the record's reset key).
async fn fake_reset(node: &Node, account: AccountId, version: RecordVersion, charge: ChargeNumber) {
    let outcome = node
        .write(Command::ResetGuesses {
            account,
            version,
            charge,
            signature: [0x42; 64],
        })
        .await;
    match outcome {
        Ok(Outcome::Rejected(reason)) => {
            tracing::warn!(failpoint = FAKE_RESET, reason = ?reason, "lying: made-up reset refused");
        }
        other => {
            tracing::error!(failpoint = FAKE_RESET, outcome = ?other, "lying: made-up reset not refused");
        }
    }
}
