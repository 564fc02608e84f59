//! [`Attacker`]: a client that holds a valid account token for its victim but not the
//! password, making raw `bkv.v1.Vault` calls to one node at a time: blinded elements of
//! wrong passwords, retries of an attempt with the same bytes, attempt ids reused with
//! another blinded element, logins on its own charged attempts, forged finalizations and
//! reset signatures, replayed tickets, and stopping after any step.

use bkv_client::proto::RecoverFinishRequest;
use bkv_client::{Recovery, SecretString};
use bkv_core::ids::AccountId;
use rand::RngCore as _;

use super::history::{Entry, History, Outcome, Role};
use super::honest::Leak;
use super::kit::ClientKit;
use super::workload::{classify_status, random_id, record_start, request_hash};
use crate::raw;

/// A recovery start an attacker made (to retry, log in on, or replay).
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The account.
    pub account: String,
    /// The attempt id.
    pub attempt_id: [u8; 16],
    /// The blinded element of a wrong password.
    pub blinded_element: Vec<u8>,
    /// A credential request for the (wrong) hardened password the evaluations gave: what
    /// `RecoverLogin` carries, once a start was answered.
    pub credential_request: Option<Vec<u8>>,
    /// The ticket, once `RecoverLogin` answered.
    pub ticket: Option<Vec<u8>>,
}

impl Attempt {
    /// Whether a `RecoverStart` of this attempt was answered with evaluations (a password
    /// test the attacker combined).
    pub fn answered(&self) -> bool {
        self.credential_request.is_some()
    }
}

/// Attacks through raw calls: the attacker holds a valid account token for its victim but
/// not the password.
#[derive(Debug, Clone)]
pub struct Attacker {
    /// Its name in the history.
    pub name: String,
}

/// A wrong password no owner uses.
fn wrong_password() -> SecretString {
    SecretString::from(format!("wrong-{}", hex::encode(random_id())))
}

impl Attacker {
    /// An attacker named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    /// A wrong-password `RecoverStart` with a fresh attempt on `node`, stopping after the
    /// first step. If evaluations come back, the attacker combines them as a client does (a
    /// proof that does not verify is an error: the vault would have burnt an honest
    /// client's guess) and keeps the credential request for a later [`Attacker::login`].
    pub async fn guess(
        &self,
        kit: &ClientKit,
        h: &History,
        account: &str,
        node: u64,
    ) -> anyhow::Result<Attempt> {
        let (recovery, blinded_element) =
            Recovery::start(&AccountId::parse(account)?, wrong_password())?;
        let mut attempt = Attempt {
            account: account.to_string(),
            attempt_id: random_id(),
            blinded_element,
            credential_request: None,
            ticket: None,
        };
        if let Some(answer) = self
            .send_start(kit, h, &attempt, node, "recover_start")
            .await?
        {
            let (_login, credential_request) = recovery
                .harden(
                    &attempt.blinded_element,
                    answer.threshold,
                    &raw::evaluations(&answer),
                )
                .map_err(|e| {
                    anyhow::anyhow!("node {node} answered evaluations that do not combine: {e}")
                })?;
            attempt.credential_request = Some(credential_request);
        }
        Ok(attempt)
    }

    /// Sends `attempt`'s start (again) to `node`: a retry when its bytes are unchanged.
    pub async fn start(
        &self,
        kit: &ClientKit,
        h: &History,
        attempt: Attempt,
        node: u64,
        op_name: &str,
    ) -> anyhow::Result<Attempt> {
        self.send_start(kit, h, &attempt, node, op_name).await?;
        Ok(attempt)
    }

    /// `RecoverStart` of `attempt` on `node`, recorded; the answer if there was one. A
    /// release is an answer with evaluations: a password test.
    async fn send_start(
        &self,
        kit: &ClientKit,
        h: &History,
        attempt: &Attempt,
        node: u64,
        op_name: &str,
    ) -> anyhow::Result<Option<bkv_client::proto::RecoverStartResponse>> {
        let mut invoke = Entry::new(Role::Attacker, &self.name, op_name)
            .account(&attempt.account)
            .node(node);
        invoke.attempt = Some(hex::encode(attempt.attempt_id));
        invoke.request_hash = Some(request_hash(&attempt.blinded_element));
        let op = h.invoke(invoke);
        let token = kit.token(&attempt.account);
        let answer = raw::start(
            kit.channel(node)?,
            Some(&token),
            attempt.attempt_id.to_vec(),
            attempt.blinded_element.clone(),
        )
        .await?;
        Ok(match answer {
            Ok(r) => {
                op.complete(Outcome::Ok, |e| record_start(e, &r));
                Some(r)
            }
            Err(s) => {
                op.complete(classify_status(&s), |e| e.detail = Some(s.message().into()));
                None
            }
        })
    }

    /// Reuses `attempt`'s id with another blinded element (the vault must refuse).
    pub async fn conflict(
        &self,
        kit: &ClientKit,
        h: &History,
        attempt: &Attempt,
        node: u64,
    ) -> anyhow::Result<Attempt> {
        let (_recovery, blinded_element) =
            Recovery::start(&AccountId::parse(&attempt.account)?, wrong_password())?;
        let other = Attempt {
            blinded_element,
            credential_request: None,
            ticket: None,
            ..attempt.clone()
        };
        self.start(kit, h, other, node, "recover_start").await
    }

    /// `RecoverLogin` of `attempt` on `node` (which charges nothing): keeps the ticket.
    /// Nothing is sent for an attempt whose start was never answered (the attacker has no
    /// hardened password to log in with).
    pub async fn login(
        &self,
        kit: &ClientKit,
        h: &History,
        mut attempt: Attempt,
        node: u64,
    ) -> anyhow::Result<Attempt> {
        let Some(credential_request) = attempt.credential_request.clone() else {
            return Ok(attempt);
        };
        let mut invoke = Entry::new(Role::Attacker, &self.name, "recover_login")
            .account(&attempt.account)
            .node(node);
        invoke.attempt = Some(hex::encode(attempt.attempt_id));
        let op = h.invoke(invoke);
        let token = kit.token(&attempt.account);
        match raw::recover_login(
            kit.channel(node)?,
            Some(&token),
            attempt.attempt_id.to_vec(),
            credential_request,
        )
        .await?
        {
            Ok(r) => {
                op.complete(Outcome::Ok, |_| {});
                attempt.ticket = Some(r.ticket);
            }
            Err(s) => {
                op.complete(classify_status(&s), |e| e.detail = Some(s.message().into()));
            }
        }
        Ok(attempt)
    }

    /// `RecoverFinish` with `ticket`, a forged finalization and a forged reset signature
    /// (random bytes of the right lengths): the vault must release nothing and reset
    /// nothing.
    pub async fn forge_finish(
        &self,
        kit: &ClientKit,
        h: &History,
        account: &str,
        ticket: &[u8],
        node: u64,
    ) -> anyhow::Result<Outcome> {
        let mut forged = vec![0u8; 64];
        rand::rngs::OsRng.fill_bytes(&mut forged);
        let mut signature = vec![0u8; 64];
        rand::rngs::OsRng.fill_bytes(&mut signature);
        let msg = RecoverFinishRequest {
            ticket: ticket.to_vec(),
            credential_finalization: forged,
            reset_signature: signature,
        };
        self.finish(kit, h, account, msg, node, "recover_finish")
            .await
    }

    /// Replays an honest client's ticket, finalization and reset signature (the answer is
    /// sealed for the honest client's session, so it is worthless to the attacker; the
    /// vault must not let it undo later charges).
    pub async fn replay(
        &self,
        kit: &ClientKit,
        h: &History,
        leak: &Leak,
        node: u64,
    ) -> anyhow::Result<Outcome> {
        self.finish(
            kit,
            h,
            &leak.account,
            leak.request.clone(),
            node,
            "replay_finish",
        )
        .await
    }

    /// Replays an honest client's ticket and finalization with a forged reset signature:
    /// the login verifies, the reset does not, and neither key nor reset may follow.
    pub async fn replay_forged_reset(
        &self,
        kit: &ClientKit,
        h: &History,
        leak: &Leak,
        node: u64,
    ) -> anyhow::Result<Outcome> {
        let mut signature = vec![0u8; 64];
        rand::rngs::OsRng.fill_bytes(&mut signature);
        let msg = RecoverFinishRequest {
            reset_signature: signature,
            ..leak.request.clone()
        };
        self.finish(kit, h, &leak.account, msg, node, "recover_finish")
            .await
    }

    async fn finish(
        &self,
        kit: &ClientKit,
        h: &History,
        account: &str,
        msg: RecoverFinishRequest,
        node: u64,
        op_name: &str,
    ) -> anyhow::Result<Outcome> {
        let op = h.invoke(
            Entry::new(Role::Attacker, &self.name, op_name)
                .account(account)
                .node(node),
        );
        let token = kit.token(account);
        Ok(
            match raw::recover_finish(kit.channel(node)?, Some(&token), msg).await? {
                Ok(r) => op
                    .complete(Outcome::Ok, |e| {
                        e.released = !r.transported_key.is_empty();
                        e.version = Some(r.version);
                    })
                    .outcome
                    .unwrap_or(Outcome::Error),
                Err(s) => {
                    let outcome = classify_status(&s);
                    op.complete(outcome, |e| e.detail = Some(s.message().into()));
                    outcome
                }
            },
        )
    }
}
