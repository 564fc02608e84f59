//! The replicated state machine of the vault: accounts, their record versions and guess
//! counters, changed only by applying entries of the Raft log.
//!
//! Sans-I/O and deterministic: no clock, no randomness, no hash-map iteration. Every
//! replica that applies the same entries at the same log indices holds the same state,
//! returns the same outcomes and emits the same audit events. A rejected command changes
//! nothing.
//!
//! The rule that matters most: between two effective resets, the distinct charges on a
//! record version never exceed its guess limit, and the node releases a credential
//! response only under a `Charged` outcome.

mod account;
mod accounts;
mod cluster;
mod codec;
mod status;
#[cfg(test)]
mod tests;

pub use cluster::ClusterConfig;
pub use codec::StateDecodeError;
pub use status::{AccountStatus, RecordStatus};

use account::{Account, ActiveRecord, ChargedAttempt, Registration, StagedRecord};
use accounts::Accounts;

use crate::audit::{AuditEvent, AuditKind};
use crate::command::{Command, Request};
use crate::ids::{
    AccountId, AttemptId, ChargeNumber, ClusterId, GuessLimit, RecordVersion, RequestId,
};
use crate::outcome::{Outcome, Rejection};

/// The vault's replicated state. `Default` is the empty, not bootstrapped state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VaultState {
    /// The log index of the last entry that changed the state (0: none).
    last_change: u64,
    /// Set by `Bootstrap`.
    cluster: Option<ClusterConfig>,
    /// Every account the state holds anything for. Cloning the state is cheap (shared
    /// copy-on-write chunks): a snapshot encodes a clone without holding up applies.
    accounts: Accounts,
}

/// What applying one entry gave: the outcome for the proposer's client, and audit events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The outcome.
    pub outcome: Outcome,
    /// Audit events, in the order things happened (none for a rejection or a retry).
    pub events: Vec<AuditEvent>,
}

impl Applied {
    fn rejected(rejection: Rejection) -> Self {
        Self::quiet(Outcome::Rejected(rejection))
    }

    fn quiet(outcome: Outcome) -> Self {
        Self {
            outcome,
            events: Vec::new(),
        }
    }
}

/// Builds an audit event about an account.
fn event(
    kind: AuditKind,
    account: &AccountId,
    version: Option<RecordVersion>,
    charge: Option<ChargeNumber>,
    guesses_remaining: Option<u32>,
) -> AuditEvent {
    AuditEvent {
        kind,
        account: Some(account.clone()),
        version,
        charge,
        guesses_remaining,
    }
}

impl VaultState {
    /// Registration ids remembered per account for `Stage` retries.
    pub const REQUEST_IDS_KEPT: usize = account::REQUEST_IDS_KEPT;

    /// Applies the command at log position `log_index`.
    ///
    /// The position is the command's place in the replicated log: bkv-raft passes
    /// `command_position` (the entry's Raft index × 1000 + the command's place in the
    /// entry, since one entry may carry several commands). It must be above every position
    /// that changed the state before (positive and strictly increasing across calls); a
    /// stale one is refused with [`Rejection::StaleLogIndex`], so that record versions (the
    /// positions of their `Stage` commands) stay unique. The request's clock is not read.
    pub fn apply(&mut self, log_index: u64, request: &Request) -> Applied {
        if log_index <= self.last_change {
            return Applied::rejected(Rejection::StaleLogIndex {
                index: log_index,
                last: self.last_change,
            });
        }
        let bootstrap = matches!(request.command, Command::Bootstrap { .. });
        match (bootstrap, &self.cluster) {
            (true, Some(_)) => return Applied::rejected(Rejection::AlreadyBootstrapped),
            (false, None) => return Applied::rejected(Rejection::NotBootstrapped),
            _ => {}
        }
        match &request.command {
            Command::Bootstrap {
                cluster_id,
                cluster_name,
                sealed_server_setup,
                key_check_value,
                key_id,
                default_guess_limit,
                max_guess_limit,
            } => {
                if default_guess_limit > max_guess_limit {
                    return Applied::rejected(Rejection::GuessLimitTooHigh {
                        requested: default_guess_limit.get(),
                        max: max_guess_limit.get(),
                    });
                }
                self.bootstrap(
                    log_index,
                    ClusterConfig {
                        cluster_id: *cluster_id,
                        cluster_name: cluster_name.clone(),
                        sealed_server_setup: sealed_server_setup.clone(),
                        key_check_value: *key_check_value,
                        key_id: *key_id,
                        default_guess_limit: *default_guess_limit,
                        max_guess_limit: *max_guess_limit,
                    },
                )
            }
            Command::Stage {
                account,
                request_id,
                guess_limit,
                sealed_record,
            } => self.stage(log_index, account, request_id, *guess_limit, sealed_record),
            Command::Activate { account, version } => self.activate(log_index, account, *version),
            Command::ChargeGuess {
                account,
                attempt_id,
                request_hash,
            } => self.charge_guess(log_index, account, attempt_id, request_hash),
            Command::ResetGuesses {
                account,
                version,
                charge,
            } => self.reset_guesses(log_index, account, *version, *charge),
            Command::Destroy {
                account,
                version,
                charge,
            } => self.destroy(log_index, account, *version, *charge),
            Command::Delete { account } => self.delete(log_index, account),
        }
    }

    fn bootstrap(&mut self, log_index: u64, cluster: ClusterConfig) -> Applied {
        self.cluster = Some(cluster);
        self.last_change = log_index;
        Applied {
            outcome: Outcome::Bootstrapped,
            events: vec![AuditEvent {
                kind: AuditKind::Bootstrapped,
                account: None,
                version: None,
                charge: None,
                guesses_remaining: None,
            }],
        }
    }

    fn stage(
        &mut self,
        log_index: u64,
        account: &AccountId,
        request_id: &RequestId,
        guess_limit: GuessLimit,
        sealed_record: &[u8],
    ) -> Applied {
        let Some(max) = self.cluster.as_ref().map(|c| c.max_guess_limit) else {
            return Applied::rejected(Rejection::NotBootstrapped);
        };
        if guess_limit > max {
            return Applied::rejected(Rejection::GuessLimitTooHigh {
                requested: guess_limit.get(),
                max: max.get(),
            });
        }
        let entry = self.accounts.get_or_insert_default(account);
        if let Some(version) = entry.registered(request_id) {
            // A retry: the same version, nothing staged anew. The insert above cannot
            // have inserted an empty entry here, since a remembered id means it existed.
            return Applied::quiet(Outcome::Staged { version });
        }
        let version = RecordVersion(log_index);
        entry.staged = Some(StagedRecord {
            version,
            request_id: *request_id,
            guess_limit,
            sealed_record: sealed_record.to_vec(),
        });
        entry.remember(Registration {
            request_id: *request_id,
            version,
        });
        self.last_change = log_index;
        Applied {
            outcome: Outcome::Staged { version },
            events: vec![event(
                AuditKind::Registered,
                account,
                Some(version),
                None,
                Some(guess_limit.get()),
            )],
        }
    }

    fn activate(&mut self, log_index: u64, account: &AccountId, version: RecordVersion) -> Applied {
        let Some(entry) = self.accounts.get_mut(account) else {
            return Applied::rejected(Rejection::NoSuchVersion);
        };
        if entry.active.as_ref().is_some_and(|a| a.version == version) {
            return Applied::quiet(Outcome::Activated { version });
        }
        let Some(staged) = entry.staged.take_if(|s| s.version == version) else {
            return Applied::rejected(match entry.destroyed {
                Some(destroyed) if destroyed == version => Rejection::RecordDestroyed { version },
                _ => Rejection::NoSuchVersion,
            });
        };
        let guess_limit = staged.guess_limit;
        let replaced = entry.active.replace(ActiveRecord::from_staged(staged));
        entry.destroyed = None;
        self.last_change = log_index;
        let mut events = vec![event(
            AuditKind::Activated,
            account,
            Some(version),
            None,
            Some(guess_limit.get()),
        )];
        if let Some(old) = replaced {
            events.push(event(
                AuditKind::Destroyed,
                account,
                Some(old.version),
                None,
                None,
            ));
        }
        Applied {
            outcome: Outcome::Activated { version },
            events,
        }
    }

    fn charge_guess(
        &mut self,
        log_index: u64,
        account: &AccountId,
        attempt_id: &AttemptId,
        request_hash: &[u8; 32],
    ) -> Applied {
        let Some(entry) = self.accounts.get_mut(account) else {
            return Applied::rejected(Rejection::NoRecord);
        };
        let Some(active) = entry.active.as_mut() else {
            return Applied::rejected(match entry.destroyed {
                Some(version) => Rejection::RecordDestroyed { version },
                None => Rejection::NoRecord,
            });
        };
        if let Some(earlier) = active.attempts.get(attempt_id) {
            if earlier.request_hash != *request_hash {
                return Applied::rejected(Rejection::AttemptConflict);
            }
            // A retry of a charged attempt: the original charge, nothing new.
            return Applied::quiet(charged(active, earlier.charge));
        }
        let version = active.version;
        if active.guesses_used >= active.guess_limit.get() {
            // No guess left: the record goes now, before anything else can be tried on it.
            let last_charge = active.last_charge;
            entry.active = None;
            entry.destroyed = Some(version);
            self.last_change = log_index;
            return Applied {
                outcome: Outcome::Destroyed { version },
                events: vec![event(
                    AuditKind::Destroyed,
                    account,
                    Some(version),
                    Some(last_charge),
                    Some(0),
                )],
            };
        }
        let charge = ChargeNumber(active.last_charge.get().saturating_add(1));
        active.last_charge = charge;
        active.guesses_used += 1; // below the limit (checked above), so no overflow
        active.attempts.insert(
            *attempt_id,
            ChargedAttempt {
                request_hash: *request_hash,
                charge,
            },
        );
        self.last_change = log_index;
        Applied {
            outcome: charged(active, charge),
            events: vec![event(
                AuditKind::GuessCharged,
                account,
                Some(version),
                Some(charge),
                Some(active.guesses_remaining()),
            )],
        }
    }

    fn reset_guesses(
        &mut self,
        log_index: u64,
        account: &AccountId,
        version: RecordVersion,
        charge: ChargeNumber,
    ) -> Applied {
        let Some(entry) = self.accounts.get_mut(account) else {
            return Applied::rejected(Rejection::VersionNotActive);
        };
        let Some(active) = entry.active.as_mut().filter(|a| a.version == version) else {
            return Applied::rejected(not_active(entry, version));
        };
        // Only the latest charge may reset: a replayed ticket of an earlier charge leaves
        // the guesses charged after it in place.
        let reset = charge.get() > 0 && charge == active.last_charge;
        if reset && active.guesses_used > 0 {
            active.guesses_used = 0;
            active.attempts.clear();
            self.last_change = log_index;
        }
        Applied {
            outcome: Outcome::Reset { version, reset },
            events: vec![event(
                AuditKind::Recovered,
                account,
                Some(version),
                Some(charge),
                Some(active.guesses_remaining()),
            )],
        }
    }

    fn destroy(
        &mut self,
        log_index: u64,
        account: &AccountId,
        version: RecordVersion,
        charge: ChargeNumber,
    ) -> Applied {
        let Some(entry) = self.accounts.get_mut(account) else {
            return Applied::rejected(Rejection::VersionNotActive);
        };
        let Some(active) = entry.active.as_ref().filter(|a| a.version == version) else {
            return Applied::rejected(not_active(entry, version));
        };
        if active.last_charge != charge || active.guesses_used < active.guess_limit.get() {
            return Applied::rejected(Rejection::NotExhausted);
        }
        entry.active = None;
        entry.destroyed = Some(version);
        self.last_change = log_index;
        Applied {
            outcome: Outcome::Destroyed { version },
            events: vec![event(
                AuditKind::Destroyed,
                account,
                Some(version),
                Some(charge),
                Some(0),
            )],
        }
    }

    fn delete(&mut self, log_index: u64, account: &AccountId) -> Applied {
        let removed = self.accounts.remove(account);
        if removed.is_some() {
            self.last_change = log_index;
        }
        let version = removed
            .as_ref()
            .and_then(|e| e.active.as_ref())
            .map(|a| a.version);
        Applied {
            outcome: Outcome::Deleted {
                existed: removed.is_some(),
            },
            events: vec![event(AuditKind::Deleted, account, version, None, None)],
        }
    }

    /// The cluster's configuration, once bootstrapped.
    pub fn cluster(&self) -> Option<&ClusterConfig> {
        self.cluster.as_ref()
    }

    /// The cluster id, once bootstrapped.
    pub fn cluster_id(&self) -> Option<ClusterId> {
        self.cluster.as_ref().map(|c| c.cluster_id)
    }

    /// What the state holds for an account.
    pub fn account_status(&self, account: &AccountId) -> AccountStatus {
        let Some(entry) = self.accounts.get(account) else {
            return AccountStatus::ABSENT;
        };
        let record = match (&entry.active, entry.destroyed) {
            (Some(a), _) => RecordStatus::Active {
                version: a.version,
                guesses_used: a.guesses_used,
                guess_limit: a.guess_limit,
                last_charge: a.last_charge,
            },
            (None, Some(version)) => RecordStatus::Destroyed { version },
            (None, None) => RecordStatus::Absent,
        };
        AccountStatus {
            record,
            staged: entry.staged.as_ref().map(|s| s.version),
        }
    }

    /// How many accounts the state holds anything for (staged, active or destroyed).
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// The log index of the last entry that changed the state (0 for the empty state).
    pub fn last_change_index(&self) -> u64 {
        self.last_change
    }
}

/// The `Charged` outcome of a charge made on `active` since its last reset.
fn charged(active: &ActiveRecord, charge: ChargeNumber) -> Outcome {
    Outcome::Charged {
        version: active.version,
        charge,
        guesses_remaining: active.remaining_after(charge),
        guess_limit: active.guess_limit,
        request_id: active.request_id,
        sealed_record: active.sealed_record.clone(),
    }
}

/// Why `version` cannot be reset or destroyed on an account whose active record is not it.
fn not_active(entry: &Account, version: RecordVersion) -> Rejection {
    match entry.destroyed {
        Some(destroyed) if destroyed == version => Rejection::RecordDestroyed { version },
        _ => Rejection::VersionNotActive,
    }
}
