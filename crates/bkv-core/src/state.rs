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
mod refresh;
mod repair;
mod status;
#[cfg(test)]
mod tests;

pub use account::ResetProof;
pub use cluster::{ClusterConfig, CurrentShareMap};
pub use codec::StateDecodeError;
pub use repair::ShareCoverage;
pub use status::{AccountStatus, RecordStatus};

use account::{Account, ActiveRecord, ChargedAttempt, Registration, StagedRecord};
use accounts::Accounts;
use cluster::CurrentShareMap as ShareMapInForce;

use crate::audit::{AuditEvent, AuditKind};
use crate::command::{Command, Request};
use crate::ids::{
    AccountId, AttemptId, ChargeNumber, ClusterId, GuessLimit, RecordVersion, RequestId,
};
use crate::oprf_record::OprfRecord;
use crate::outcome::{Outcome, Rejection};
use crate::reset::reset_signature_valid;
use crate::share_map::SignedShareMap;

/// The vault's replicated state. `Default` is the empty, not bootstrapped state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VaultState {
    /// The log index of the last entry that changed the state (0: none).
    last_change: u64,
    /// The highest record version issued (0: none). A `Stage` takes the next version from
    /// the entry's clock, in microseconds, or one above this when that is not higher, so
    /// versions are unique in the cluster, never reused (also after a `Delete`), and grow
    /// with time rather than with the number of registrations.
    version_clock: u64,
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
    /// stale one is refused with [`Rejection::StaleLogIndex`], so that no command applies
    /// twice. A `Stage` reads the request's clock for its record's version (see
    /// `version_clock`); nothing else reads it.
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
                identity_key,
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
                        identity_key: *identity_key,
                        share_map: None,
                    },
                )
            }
            Command::SetShareMap { map } => self.set_share_map(log_index, map),
            Command::Stage {
                account,
                request_id,
                guess_limit,
                sealed_record,
                oprf,
            } => self.stage(
                log_index,
                request.at_unix_ms,
                account,
                request_id,
                *guess_limit,
                sealed_record,
                oprf,
            ),
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
                signature,
            } => self.reset_guesses(log_index, account, *version, *charge, signature),
            Command::Destroy {
                account,
                version,
                charge,
            } => self.destroy(log_index, account, *version, *charge),
            Command::Delete { account } => {
                self.delete_through(log_index, account, RecordVersion(self.version_clock))
            }
            Command::Barrier => Applied::quiet(Outcome::Barrier {
                through: RecordVersion(self.version_clock),
            }),
            Command::DeleteThrough { account, through } => {
                self.delete_through(log_index, account, *through)
            }
            Command::AddShare {
                account,
                version,
                helpers,
                share,
            } => self.add_share(log_index, account, *version, helpers, share),
            Command::RefreshShares {
                account,
                version,
                from,
                shares,
            } => self.refresh_shares(
                log_index,
                request.at_unix_ms,
                account,
                *version,
                from,
                shares,
            ),
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

    fn set_share_map(&mut self, log_index: u64, signed: &SignedShareMap) -> Applied {
        let Some(cluster) = self.cluster.as_mut() else {
            return Applied::rejected(Rejection::NotBootstrapped);
        };
        let map = match signed.verify(&cluster.identity_key) {
            Ok(map) => map,
            Err(e) => return Applied::rejected(Rejection::BadShareMap(e.to_string())),
        };
        if map.cluster_name != cluster.cluster_name {
            return Applied::rejected(Rejection::BadShareMap(
                "the map names another cluster".into(),
            ));
        }
        let current = cluster.share_map.as_ref().map_or(0, |m| m.map.epoch);
        if map.epoch <= current {
            // A retry of the map in force answers the same; anything else is stale.
            if cluster
                .share_map
                .as_ref()
                .is_some_and(|m| m.signed == *signed)
            {
                return Applied::quiet(Outcome::ShareMapSet { epoch: current });
            }
            return Applied::rejected(Rejection::ShareMapEpoch {
                epoch: map.epoch,
                current,
            });
        }
        let epoch = map.epoch;
        cluster.share_map = Some(ShareMapInForce {
            signed: signed.clone(),
            map,
        });
        self.last_change = log_index;
        Applied {
            outcome: Outcome::ShareMapSet { epoch },
            events: vec![AuditEvent {
                kind: AuditKind::ShareMapSet,
                account: None,
                version: None,
                charge: None,
                guesses_remaining: None,
            }],
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn stage(
        &mut self,
        log_index: u64,
        at_unix_ms: u64,
        account: &AccountId,
        request_id: &RequestId,
        guess_limit: GuessLimit,
        sealed_record: &[u8],
        oprf: &OprfRecord,
    ) -> Applied {
        let Some(cluster) = self.cluster.as_ref() else {
            return Applied::rejected(Rejection::NotBootstrapped);
        };
        let max = cluster.max_guess_limit;
        if guess_limit > max {
            return Applied::rejected(Rejection::GuessLimitTooHigh {
                requested: guess_limit.get(),
                max: max.get(),
            });
        }
        let Some(map) = cluster.share_map.as_ref().map(|m| &m.map) else {
            return Applied::rejected(Rejection::NoShareMap);
        };
        let follows_map = oprf.map_epoch == map.epoch
            && oprf.threshold == map.threshold
            && oprf.holders().eq(map.holders.iter().map(|h| h.node_id));
        let current = map.epoch;
        if let Some(version) = self
            .accounts
            .get(account)
            .and_then(|e| e.registered(request_id))
        {
            // A retry: the same version, nothing staged anew.
            return Applied::quiet(Outcome::Staged { version });
        }
        if !follows_map {
            return Applied::rejected(Rejection::StaleShareMap { current });
        }
        // The entry's clock in microseconds, or one above the last version issued: unique in
        // the cluster and never reused, also after a Delete (tickets, share ledgers and
        // histories name a record by it), and it tells a client nothing of how many others
        // registered in between.
        let version = RecordVersion(
            at_unix_ms
                .saturating_mul(1000)
                .max(self.version_clock.saturating_add(1)),
        );
        self.version_clock = version.get();
        let entry = self.accounts.get_or_insert_default(account);
        entry.last_version = version;
        entry.staged = Some(StagedRecord {
            version,
            request_id: *request_id,
            guess_limit,
            sealed_record: sealed_record.to_vec(),
            oprf: oprf.clone(),
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
        signature: &[u8; 64],
    ) -> Applied {
        let Some(cluster_name) = self.cluster.as_ref().map(|c| c.cluster_name.as_str()) else {
            return Applied::rejected(Rejection::NotBootstrapped);
        };
        let Some(entry) = self.accounts.get_mut(account) else {
            return Applied::rejected(Rejection::VersionNotActive);
        };
        let Some(active) = entry.active.as_mut().filter(|a| a.version == version) else {
            return Applied::rejected(not_active(entry, version));
        };
        // Only the client, who knows the password, can sign a reset: a node that makes one
        // up is refused here, on every replica.
        if !reset_signature_valid(
            &active.oprf.reset_key,
            cluster_name,
            account,
            version,
            charge,
            signature,
        ) {
            return Applied::rejected(Rejection::BadResetSignature);
        }
        // A charge never made on this version (a ticket of a deleted earlier registration
        // with the same number) finishes nothing.
        if charge.get() == 0 || charge > active.last_charge {
            return Applied::rejected(Rejection::VersionNotActive);
        }
        // Tickets are single-use: once a ticket of a charge has finished, neither it nor a
        // ticket of an earlier charge finishes again, also after later charges.
        if charge <= active.last_finished {
            return Applied::rejected(Rejection::TicketUsed { charge });
        }
        active.last_finished = charge;
        // Only the latest charge may reset: a ticket of an earlier charge leaves the guesses
        // charged after it in place. The latest charge is above every finished one, so
        // there is a guess to reset.
        let reset = charge == active.last_charge;
        if reset {
            active.guesses_used = 0;
            active.attempts.clear();
            active.last_reset = Some(ResetProof {
                charge,
                signature: *signature,
            });
        }
        self.last_change = log_index;
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

    /// Removes the account's versions at or below `through`; the account goes when
    /// nothing newer is left. The event names the active version removed, if any.
    fn delete_through(
        &mut self,
        log_index: u64,
        account: &AccountId,
        through: RecordVersion,
    ) -> Applied {
        let mut removed_active = None;
        let mut existed = false;
        let mut now_empty = false;
        if let Some(entry) = self.accounts.get_mut(account) {
            let staged = entry.staged.take_if(|s| s.version <= through);
            let active = entry.active.take_if(|a| a.version <= through);
            let destroyed = entry.destroyed.take_if(|v| *v <= through);
            removed_active = active.as_ref().map(|a| a.version);
            existed = staged.is_some() || active.is_some() || destroyed.is_some();
            now_empty =
                entry.staged.is_none() && entry.active.is_none() && entry.destroyed.is_none();
        }
        if now_empty {
            self.accounts.remove(account);
        }
        if existed || now_empty {
            self.last_change = log_index;
        }
        Applied {
            outcome: Outcome::Deleted { existed },
            events: vec![event(
                AuditKind::Deleted,
                account,
                removed_active,
                None,
                None,
            )],
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
                last_finished: a.last_finished,
            },
            (None, Some(version)) => RecordStatus::Destroyed { version },
            (None, None) => RecordStatus::Absent,
        };
        AccountStatus {
            record,
            staged: entry.staged.as_ref().map(|s| s.version),
        }
    }

    /// What the state holds about a recovery attempt on `account`'s active record: for
    /// `RecoverLogin` and for share-holders deciding whether to evaluate.
    pub fn attempt(&self, account: &AccountId, attempt_id: &AttemptId) -> AttemptView {
        let Some(entry) = self.accounts.get(account) else {
            return AttemptView::NoRecord;
        };
        let Some(active) = entry.active.as_ref() else {
            return match entry.destroyed {
                Some(version) => AttemptView::Destroyed { version },
                None => AttemptView::NoRecord,
            };
        };
        match active.attempts.get(attempt_id) {
            Some(a) => AttemptView::Charged(Box::new(ChargedAttemptView {
                version: active.version,
                charge: a.charge,
                request_hash: a.request_hash,
                guesses_remaining: active.remaining_after(a.charge),
                guess_limit: active.guess_limit,
                request_id: active.request_id,
                sealed_record: active.sealed_record.clone(),
                oprf: active.oprf.clone(),
            })),
            None => AttemptView::NotCharged {
                version: active.version,
                last_charge: active.last_charge,
                last_reset: active.last_reset,
            },
        }
    }

    /// The account's active record as stored: version, registration id, guess limit, the
    /// HSM-sealed record and the public OPRF half (for operators' tools and tests; the
    /// node's request handling goes through the commands).
    pub fn active_record(&self, account: &AccountId) -> Option<RecordView> {
        let active = self.accounts.get(account)?.active.as_ref()?;
        Some(RecordView {
            version: active.version,
            request_id: active.request_id,
            guess_limit: active.guess_limit,
            last_charge: active.last_charge,
            sealed_record: active.sealed_record.clone(),
            oprf: active.oprf.clone(),
        })
    }

    /// The account's records that may still be recovered or activated: the active and the
    /// staged one, with their versions, guess limits and public OPRF halves (for
    /// share-holders installing their shares).
    pub fn live_records(
        &self,
        account: &AccountId,
    ) -> Vec<(RecordVersion, GuessLimit, &OprfRecord)> {
        let Some(entry) = self.accounts.get(account) else {
            return Vec::new();
        };
        let active = entry
            .active
            .as_ref()
            .map(|a| (a.version, a.guess_limit, &a.oprf));
        let staged = entry
            .staged
            .as_ref()
            .map(|s| (s.version, s.guess_limit, &s.oprf));
        active.into_iter().chain(staged).collect()
    }

    /// The active record's public OPRF half, if `version` is the active one (what
    /// `AddShare` and `RefreshShares` check themselves against).
    pub(crate) fn active_oprf_at(
        &self,
        account: &AccountId,
        version: RecordVersion,
    ) -> Option<&OprfRecord> {
        let active = self.accounts.get(account)?.active.as_ref()?;
        (active.version == version).then_some(&active.oprf)
    }

    /// The active record's public OPRF half and last reset, if `version` is the active one.
    pub fn active_oprf(
        &self,
        account: &AccountId,
        version: RecordVersion,
    ) -> Option<(OprfRecord, Option<ResetProof>)> {
        let active = self.accounts.get(account)?.active.as_ref()?;
        (active.version == version).then(|| (active.oprf.clone(), active.last_reset))
    }

    /// How many accounts have an active record that names `node_id` as one of its OPRF
    /// share-holders: the accounts that node can evaluate for (one pass over the accounts).
    pub fn accounts_with_share_of(&self, node_id: u64) -> u64 {
        let named = self.accounts.values().filter(|a| {
            a.active
                .as_ref()
                .is_some_and(|r| r.oprf.share_of(node_id).is_some())
        });
        named.count() as u64
    }

    /// The records, among the next `scan` accounts above `after` (every account for `None`),
    /// that name `node_id` as an OPRF share-holder and have a version above `newer_than`,
    /// in account order (an account's active record before its staged one), and the last
    /// account looked at if more may follow (`None` at the end): what a share-holder
    /// installs ahead of the first recovery, in batches from a cursor, a pass at a time
    /// (`newer_than` the [`VaultState::version_clock`] when the last pass began). At most `scan` accounts
    /// are looked at per call, so a caller holding the state's lock holds it briefly however
    /// few records are new.
    pub fn records_with_share_of(
        &self,
        node_id: u64,
        after: Option<&AccountId>,
        scan: usize,
        newer_than: u64,
    ) -> (Vec<(AccountId, RecordVersion)>, Option<AccountId>) {
        let mut out = Vec::new();
        let mut last = None;
        for (seen, (account, entry)) in self.accounts.iter_after(after).enumerate() {
            if seen == scan {
                return (out, last);
            }
            let active = entry.active.as_ref().map(|a| (a.version, &a.oprf));
            let staged = entry.staged.as_ref().map(|s| (s.version, &s.oprf));
            for (version, oprf) in active.into_iter().chain(staged) {
                if version.get() > newer_than && oprf.share_of(node_id).is_some() {
                    out.push((account.clone(), version));
                }
            }
            last = Some(account.clone());
        }
        (out, None)
    }

    /// How many accounts the state holds anything for (staged, active or destroyed).
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// The log index of the last entry that changed the state (0 for the empty state).
    pub fn last_change_index(&self) -> u64 {
        self.last_change
    }

    /// The highest record version issued so far (0 for none): every record staged from now
    /// on gets a higher one.
    pub fn version_clock(&self) -> u64 {
        self.version_clock
    }
}

/// A recovery attempt as the applied state knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptView {
    /// No active record and no tombstone.
    NoRecord,
    /// The active record was destroyed.
    Destroyed {
        /// The destroyed version.
        version: RecordVersion,
    },
    /// Not among the attempts charged since the last reset (never charged, not applied here
    /// yet, or cleared by a reset).
    NotCharged {
        /// The active version.
        version: RecordVersion,
        /// Its latest charge.
        last_charge: ChargeNumber,
        /// Its last reset.
        last_reset: Option<ResetProof>,
    },
    /// Charged on the active record since its last reset.
    Charged(Box<ChargedAttemptView>),
}

/// A record as the state stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView {
    /// The version.
    pub version: RecordVersion,
    /// The registration id the record was sealed under.
    pub request_id: RequestId,
    /// The guess limit.
    pub guess_limit: GuessLimit,
    /// Its latest charge (0: none yet).
    pub last_charge: ChargeNumber,
    /// The HSM-sealed record.
    pub sealed_record: Vec<u8>,
    /// The public OPRF half.
    pub oprf: OprfRecord,
}

/// A charged attempt and the record it was charged on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargedAttemptView {
    /// The active version.
    pub version: RecordVersion,
    /// The attempt's charge.
    pub charge: ChargeNumber,
    /// SHA-256 of the blinded element the charge is bound to.
    pub request_hash: [u8; 32],
    /// Guesses that were left right after this charge.
    pub guesses_remaining: u32,
    /// The record's guess limit.
    pub guess_limit: GuessLimit,
    /// The registration id the record was sealed under.
    pub request_id: RequestId,
    /// The sealed record.
    pub sealed_record: Vec<u8>,
    /// The record's public OPRF half.
    pub oprf: OprfRecord,
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
        oprf: active.oprf.clone(),
    }
}

/// Why `version` cannot be reset or destroyed on an account whose active record is not it.
fn not_active(entry: &Account, version: RecordVersion) -> Rejection {
    match entry.destroyed {
        Some(destroyed) if destroyed == version => Rejection::RecordDestroyed { version },
        _ => Rejection::VersionNotActive,
    }
}
