//! [`Attacker`]: a client that holds a valid account token for its victim but not the
//! password, making raw `bkv.v1.Vault` calls to one node at a time: wrong passwords, retries
//! of an attempt with the same bytes, attempt ids reused with another request, forged
//! finalizations, replayed tickets, and stopping after the first step.

use bkv_client::proto::{RecoverFinishRequest, RecoverStartRequest};
use bkv_client::{Recovery, SecretString};
use rand::RngCore as _;

use super::history::{Entry, History, Outcome, Role};
use super::honest::Leak;
use super::kit::ClientKit;
use super::workload::{classify_status, random_id, request_hash};

/// A recovery start an attacker made (to retry or replay).
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The account.
    pub account: String,
    /// The attempt id.
    pub attempt_id: [u8; 16],
    /// The credential request bytes.
    pub credential_request: Vec<u8>,
    /// The ticket, if a response came back.
    pub ticket: Option<Vec<u8>>,
}

/// Attacks through raw calls: the attacker holds a valid account token for its victim but
/// not the password.
#[derive(Debug, Clone)]
pub struct Attacker {
    /// Its name in the history.
    pub name: String,
}

impl Attacker {
    /// An attacker named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    /// A wrong-password `RecoverStart` with a fresh attempt on `node`, stopping after the
    /// first step.
    pub async fn guess(
        &self,
        kit: &ClientKit,
        h: &History,
        account: &str,
        node: u64,
    ) -> anyhow::Result<Attempt> {
        let (_recovery, credential_request) = Recovery::start(SecretString::from(format!(
            "wrong-{}",
            hex::encode(random_id())
        )))?;
        let attempt = Attempt {
            account: account.to_string(),
            attempt_id: random_id(),
            credential_request,
            ticket: None,
        };
        self.start(kit, h, attempt, node, "recover_start").await
    }

    /// Sends `attempt` (again) to `node`: a retry when its bytes are unchanged.
    pub async fn start(
        &self,
        kit: &ClientKit,
        h: &History,
        mut attempt: Attempt,
        node: u64,
        op_name: &str,
    ) -> anyhow::Result<Attempt> {
        let mut invoke = Entry::new(Role::Attacker, &self.name, op_name)
            .account(&attempt.account)
            .node(node);
        invoke.attempt = Some(hex::encode(attempt.attempt_id));
        invoke.request_hash = Some(request_hash(&attempt.credential_request));
        let op = h.invoke(invoke);
        let msg = RecoverStartRequest {
            attempt_id: attempt.attempt_id.to_vec(),
            credential_request: attempt.credential_request.clone(),
        };
        match kit
            .raw(node)?
            .recover_start(kit.request(&attempt.account, msg)?)
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                op.complete(Outcome::Ok, |e| {
                    e.released = !r.credential_response.is_empty();
                    e.version = Some(r.version);
                    e.guesses_remaining = Some(r.guesses_remaining);
                    e.guess_limit = Some(r.guess_limit);
                });
                attempt.ticket = Some(r.ticket);
            }
            Err(s) => {
                op.complete(classify_status(&s), |e| e.detail = Some(s.message().into()));
            }
        }
        Ok(attempt)
    }

    /// Reuses `attempt`'s id with a new credential request (the vault must refuse).
    pub async fn conflict(
        &self,
        kit: &ClientKit,
        h: &History,
        attempt: &Attempt,
        node: u64,
    ) -> anyhow::Result<Attempt> {
        let (_recovery, credential_request) = Recovery::start(SecretString::from(format!(
            "wrong-{}",
            hex::encode(random_id())
        )))?;
        let other = Attempt {
            credential_request,
            ticket: None,
            ..attempt.clone()
        };
        self.start(kit, h, other, node, "recover_start").await
    }

    /// `RecoverFinish` with `ticket` and a forged finalization (random bytes of the right
    /// length): the vault must release nothing.
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
        self.finish(kit, h, account, ticket, forged, node, "recover_finish")
            .await
    }

    /// Replays an honest client's ticket and finalization (the answer is sealed for the
    /// honest client's session, so it is worthless to the attacker; the vault must not let
    /// it undo later charges).
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
            &leak.ticket,
            leak.finalization.clone(),
            node,
            "replay_finish",
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        kit: &ClientKit,
        h: &History,
        account: &str,
        ticket: &[u8],
        credential_finalization: Vec<u8>,
        node: u64,
        op_name: &str,
    ) -> anyhow::Result<Outcome> {
        let op = h.invoke(
            Entry::new(Role::Attacker, &self.name, op_name)
                .account(account)
                .node(node),
        );
        let msg = RecoverFinishRequest {
            ticket: ticket.to_vec(),
            credential_finalization,
        };
        Ok(
            match kit
                .raw(node)?
                .recover_finish(kit.request(account, msg)?)
                .await
            {
                Ok(r) => {
                    let r = r.into_inner();
                    op.complete(Outcome::Ok, |e| {
                        e.released = !r.transported_key.is_empty();
                        e.version = Some(r.version);
                    })
                    .outcome
                    .unwrap_or(Outcome::Error)
                }
                Err(s) => {
                    let outcome = classify_status(&s);
                    op.complete(outcome, |e| e.detail = Some(s.message().into()));
                    outcome
                }
            },
        )
    }
}
