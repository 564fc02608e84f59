//! [`Honest`]: a client that knows its account's password, through the SDK (with failover
//! over every node), and a "leaky" recovery over raw calls whose finish (ticket,
//! finalization, reset signature) an attacker later replays ([`Leak`]).

use bkv_client::proto::RecoverFinishRequest;
use bkv_client::{Recovery, SecretString, VaultError};
use bkv_core::ids::{AccountId, ChargeNumber, RecordVersion};

use super::canary::{Canaries, canary_password};
use super::history::{Entry, History, Outcome, Role, fingerprint};
use super::kit::ClientKit;
use super::workload::{classify_status, random_id, record_start, request_hash};
use crate::raw;

fn classify_sdk(e: &VaultError) -> Outcome {
    match e {
        VaultError::WrongPassword { .. } => Outcome::WrongPassword,
        VaultError::Destroyed => Outcome::Destroyed,
        VaultError::NotFound => Outcome::NotFound,
        VaultError::Unavailable { .. } | VaultError::Transport(_) => Outcome::Unavailable,
        _ => Outcome::Error,
    }
}

/// Honest operations through the SDK.
#[derive(Debug, Clone)]
pub struct Honest {
    /// The client's name in the history.
    pub name: String,
    /// The account it owns.
    pub account: String,
    /// Its password (a canary).
    pub password: String,
}

impl Honest {
    /// A client for `account` with a fresh canary password.
    pub fn new(name: impl Into<String>, account: impl Into<String>, canaries: &Canaries) -> Self {
        Self {
            name: name.into(),
            account: account.into(),
            password: canary_password(canaries),
        }
    }

    fn account_id(&self) -> anyhow::Result<AccountId> {
        Ok(AccountId::parse(&self.account)?)
    }

    /// Registers a fresh backup key (its bytes become a canary); returns the version when
    /// acknowledged.
    pub async fn register(
        &self,
        kit: &ClientKit,
        h: &History,
        canaries: &Canaries,
        guess_limit: Option<u32>,
        first: usize,
    ) -> anyhow::Result<Option<u64>> {
        let mut invoke = Entry::new(Role::Honest, &self.name, "register").account(&self.account);
        invoke.guess_limit = guess_limit;
        let op = h.invoke(invoke);
        let vault = kit.vault(&self.account, first).await?;
        let pw = SecretString::from(self.password.clone());
        Ok(
            match vault.register(&self.account_id()?, pw, guess_limit).await {
                Ok(r) => {
                    canaries.add(r.key.expose());
                    let v = r.version.get();
                    op.complete(Outcome::Ok, |e| {
                        e.version = Some(v);
                        e.key_fp = Some(fingerprint(r.key.expose()));
                    });
                    Some(v)
                }
                Err(err) => {
                    op.complete(classify_sdk(&err), |e| e.detail = Some(err.to_string()));
                    None
                }
            },
        )
    }

    /// Recovers the key with the right password; returns the outcome.
    pub async fn recover(
        &self,
        kit: &ClientKit,
        h: &History,
        first: usize,
    ) -> anyhow::Result<Outcome> {
        let op = h.invoke(Entry::new(Role::Honest, &self.name, "recover").account(&self.account));
        let vault = kit.vault(&self.account, first).await?;
        let pw = SecretString::from(self.password.clone());
        Ok(match vault.recover(&self.account_id()?, pw).await {
            Ok(r) => {
                let v = r.version.get();
                op.complete(Outcome::Ok, |e| {
                    e.version = Some(v);
                    e.released = true;
                    e.key_fp = Some(fingerprint(r.key.expose()));
                    e.guesses_remaining = Some(r.guesses_remaining_before);
                    e.guess_limit = Some(r.guess_limit);
                })
                .outcome
                .unwrap_or(Outcome::Error)
            }
            Err(err) => {
                let outcome = classify_sdk(&err);
                op.complete(outcome, |e| {
                    if let VaultError::WrongPassword { guesses_remaining } = err {
                        e.guesses_remaining = Some(guesses_remaining);
                        e.released = true;
                    }
                    e.detail = Some(err.to_string());
                });
                outcome
            }
        })
    }

    /// Deletes the account's records.
    pub async fn delete(
        &self,
        kit: &ClientKit,
        h: &History,
        first: usize,
    ) -> anyhow::Result<Outcome> {
        let op = h.invoke(Entry::new(Role::Honest, &self.name, "delete").account(&self.account));
        let vault = kit.vault(&self.account, first).await?;
        Ok(match vault.delete().await {
            Ok(existed) => {
                op.complete(Outcome::Ok, |e| {
                    e.detail = Some(format!("existed={existed}"))
                });
                Outcome::Ok
            }
            Err(err) => {
                let outcome = classify_sdk(&err);
                op.complete(outcome, |e| e.detail = Some(err.to_string()));
                outcome
            }
        })
    }

    /// A recovery over raw calls to `node` whose `RecoverFinish` request (ticket,
    /// finalization, reset signature) is handed back for attackers to replay (as if they had
    /// read it off the wire).
    pub async fn leaky_recover(
        &self,
        kit: &ClientKit,
        h: &History,
        node: u64,
    ) -> anyhow::Result<Option<Leak>> {
        let account = self.account_id()?;
        let token = kit.token(&self.account);
        let (recovery, blinded_element) =
            Recovery::start(&account, SecretString::from(self.password.clone()))?;
        let attempt_id = random_id();
        let mut invoke = Entry::new(Role::Honest, &self.name, "recover_start")
            .account(&self.account)
            .node(node);
        invoke.attempt = Some(hex::encode(attempt_id));
        invoke.request_hash = Some(request_hash(&blinded_element));
        let op = h.invoke(invoke);
        let started = match raw::start(
            kit.channel(node)?,
            Some(&token),
            attempt_id.to_vec(),
            blinded_element.clone(),
        )
        .await?
        {
            Ok(r) => r,
            Err(s) => {
                op.complete(classify_status(&s), |e| e.detail = Some(s.message().into()));
                return Ok(None);
            }
        };
        op.complete(Outcome::Ok, |e| record_start(e, &started));
        let (login, credential_request) = recovery.harden(
            &blinded_element,
            started.threshold,
            &raw::evaluations(&started),
        )?;
        let mut invoke = Entry::new(Role::Honest, &self.name, "recover_login")
            .account(&self.account)
            .node(node);
        invoke.attempt = Some(hex::encode(attempt_id));
        let op = h.invoke(invoke);
        let logged = match raw::recover_login(
            kit.channel(node)?,
            Some(&token),
            attempt_id.to_vec(),
            credential_request,
        )
        .await?
        {
            Ok(r) => {
                op.complete(Outcome::Ok, |_| {});
                r
            }
            Err(s) => {
                op.complete(classify_status(&s), |e| e.detail = Some(s.message().into()));
                return Ok(None);
            }
        };
        let finished = login.finish(
            &logged.credential_response,
            &account,
            &raw::ksf(&started)?,
            kit.cluster_name(),
            RecordVersion(started.version),
            ChargeNumber(started.charge),
        )?;
        let mut invoke = Entry::new(Role::Honest, &self.name, "recover_finish")
            .account(&self.account)
            .node(node);
        invoke.version = Some(started.version);
        let op = h.invoke(invoke);
        let request = RecoverFinishRequest {
            ticket: logged.ticket,
            credential_finalization: finished.credential_finalization.clone(),
            reset_signature: finished.reset_signature.to_vec(),
        };
        match raw::recover_finish(kit.channel(node)?, Some(&token), request.clone()).await? {
            Ok(r) => {
                let version = RecordVersion(r.version);
                let key = finished.session.open(&r.transported_key, version)?;
                op.complete(Outcome::Ok, |e| {
                    e.released = true;
                    e.version = Some(r.version);
                    e.key_fp = Some(fingerprint(key.expose()));
                });
            }
            Err(s) => {
                op.complete(classify_status(&s), |e| e.detail = Some(s.message().into()));
            }
        }
        Ok(Some(Leak {
            account: self.account.clone(),
            request,
        }))
    }
}

/// An honest `RecoverFinish` an attacker saw go by.
#[derive(Debug, Clone)]
pub struct Leak {
    /// The account.
    pub account: String,
    /// The request: ticket, finalization and reset signature.
    pub request: RecoverFinishRequest,
}
