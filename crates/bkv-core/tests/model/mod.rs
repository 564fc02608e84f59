//! A reference model of the vault state machine, written apart from `VaultState` and as
//! plainly as possible: every record ever staged sits in one list with its life stage and
//! the full list of its charges, and each command is answered by searching that list.
//!
//! It shares nothing with `bkv_core::state` but the command and outcome types, and the
//! signature checks of share maps and resets.

use bkv_core::reset::reset_signature_valid;
use bkv_core::{
    AccountId, AccountStatus, AttemptId, ChargeNumber, Command, GuessLimit, OprfRecord, Outcome,
    RecordStatus, RecordVersion, Rejection, RequestId, ShareMap, SignedShareMap,
};

/// Where a record is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    /// Staged, not activated.
    Staged,
    /// Staged, then replaced by a newer staged record.
    Dropped,
    /// The account's recoverable record.
    Active,
    /// Was active, replaced by a newer activation.
    Superseded,
    /// Was active, destroyed after running out of guesses.
    Destroyed,
    /// Its account was deleted.
    Deleted,
}

#[derive(Debug, Clone)]
struct Rec {
    account: AccountId,
    version: u64,
    request_id: RequestId,
    limit: GuessLimit,
    blob: Vec<u8>,
    life: Life,
    /// Log index of its activation (0: never).
    activated_at: u64,
    /// Every charge ever made on it, in order: charge number `i + 1` is `charges[i]`.
    charges: Vec<(AttemptId, [u8; 32])>,
    /// How many of `charges` came before the last effective reset.
    before_reset: usize,
    /// The highest charge whose ticket finished (0: none).
    finished: u64,
    oprf: OprfRecord,
}

impl Rec {
    fn since_reset(&self) -> &[(AttemptId, [u8; 32])] {
        &self.charges[self.before_reset..]
    }
    fn limit(&self) -> usize {
        self.limit.get() as usize
    }
    fn charged(&self, charge: usize, used_then: usize) -> Outcome {
        Outcome::Charged {
            version: RecordVersion(self.version),
            charge: ChargeNumber(charge as u64),
            guesses_remaining: (self.limit() - used_then) as u32,
            guess_limit: self.limit,
            request_id: self.request_id,
            sealed_record: self.blob.clone(),
            oprf: self.oprf.clone(),
        }
    }
}

/// The model.
#[derive(Debug, Clone, Default)]
pub struct Model {
    max_limit: Option<GuessLimit>,
    cluster_name: String,
    identity_key: [u8; 32],
    map: Option<(SignedShareMap, ShareMap)>,
    records: Vec<Rec>,
    /// Registrations, oldest first; an account's are removed when it is deleted.
    registrations: Vec<(AccountId, RequestId, u64)>,
}

fn reject(r: Rejection) -> Outcome {
    Outcome::Rejected(r)
}

impl Model {
    /// The account's staged record.
    fn staged(&mut self, account: &AccountId) -> Option<&mut Rec> {
        self.records
            .iter_mut()
            .find(|r| r.account == *account && r.life == Life::Staged)
    }

    /// Index of the account's most recently activated record that is still active or was
    /// destroyed by guessing (a superseded record always has a later activation after it).
    fn current(&self, account: &AccountId) -> Option<usize> {
        self.records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.account == *account)
            .filter(|(_, r)| r.life == Life::Active || r.life == Life::Destroyed)
            .max_by_key(|(_, r)| r.activated_at)
            .map(|(i, _)| i)
    }

    /// The highest version ever issued (records are never taken out of the list).
    fn highest_version(&self) -> u64 {
        self.records.iter().map(|r| r.version).max().unwrap_or(0)
    }

    /// Applies a command at a log index, proposed at `at_unix_ms`.
    pub fn apply(&mut self, index: u64, at_unix_ms: u64, command: &Command) -> Outcome {
        let Some(max) = self.max_limit else {
            return match command {
                Command::Bootstrap {
                    default_guess_limit,
                    max_guess_limit,
                    cluster_name,
                    identity_key,
                    ..
                } => {
                    if default_guess_limit.get() > max_guess_limit.get() {
                        return reject(Rejection::GuessLimitTooHigh {
                            requested: default_guess_limit.get(),
                            max: max_guess_limit.get(),
                        });
                    }
                    self.max_limit = Some(*max_guess_limit);
                    self.cluster_name = cluster_name.clone();
                    self.identity_key = *identity_key;
                    Outcome::Bootstrapped
                }
                _ => reject(Rejection::NotBootstrapped),
            };
        };
        match command {
            Command::Bootstrap { .. } => reject(Rejection::AlreadyBootstrapped),
            Command::SetShareMap { map: signed } => {
                let map = match signed.verify(&self.identity_key) {
                    Ok(map) => map,
                    Err(e) => return reject(Rejection::BadShareMap(e.to_string())),
                };
                if map.cluster_name != self.cluster_name {
                    return reject(Rejection::BadShareMap(
                        "the map names another cluster".into(),
                    ));
                }
                let current = self.map.as_ref().map_or(0, |(_, m)| m.epoch);
                if map.epoch <= current {
                    if self.map.as_ref().is_some_and(|(s, _)| s == signed) {
                        return Outcome::ShareMapSet { epoch: current };
                    }
                    return reject(Rejection::ShareMapEpoch {
                        epoch: map.epoch,
                        current,
                    });
                }
                let epoch = map.epoch;
                self.map = Some((signed.clone(), map));
                Outcome::ShareMapSet { epoch }
            }
            Command::Stage {
                account,
                request_id,
                guess_limit,
                sealed_record,
                oprf,
            } => {
                if guess_limit.get() > max.get() {
                    return reject(Rejection::GuessLimitTooHigh {
                        requested: guess_limit.get(),
                        max: max.get(),
                    });
                }
                let Some((_, map)) = &self.map else {
                    return reject(Rejection::NoShareMap);
                };
                let current = map.epoch;
                let follows = oprf.map_epoch == map.epoch
                    && oprf.threshold == map.threshold
                    && oprf
                        .shares
                        .iter()
                        .map(|s| s.node_id)
                        .eq(map.holders.iter().map(|h| h.node_id));
                let mine: Vec<_> = self
                    .registrations
                    .iter()
                    .filter(|(a, _, _)| a == account)
                    .collect();
                let kept = &mine[mine.len().saturating_sub(4)..];
                if let Some((_, _, v)) = kept.iter().find(|(_, r, _)| r == request_id) {
                    return Outcome::Staged {
                        version: RecordVersion(*v),
                    };
                }
                if !follows {
                    return reject(Rejection::StaleShareMap { current });
                }
                if let Some(old) = self.staged(account) {
                    old.life = Life::Dropped;
                }
                // A record's version is its entry's clock in microseconds, or one above the
                // highest issued.
                let version = (at_unix_ms * 1000).max(self.highest_version() + 1);
                self.records.push(Rec {
                    account: account.clone(),
                    version,
                    request_id: *request_id,
                    limit: *guess_limit,
                    blob: sealed_record.clone(),
                    life: Life::Staged,
                    activated_at: 0,
                    charges: Vec::new(),
                    before_reset: 0,
                    finished: 0,
                    oprf: oprf.clone(),
                });
                self.registrations
                    .push((account.clone(), *request_id, version));
                Outcome::Staged {
                    version: RecordVersion(version),
                }
            }
            Command::Activate { account, version } => {
                let v = version.get();
                let current = self.current(account);
                if let Some(c) = current {
                    let rec = &self.records[c];
                    if rec.life == Life::Active && rec.version == v {
                        return Outcome::Activated { version: *version };
                    }
                }
                let is_staged = self
                    .records
                    .iter()
                    .any(|r| r.account == *account && r.life == Life::Staged && r.version == v);
                if is_staged {
                    if let Some(c) = current.filter(|c| self.records[*c].life == Life::Active) {
                        self.records[c].life = Life::Superseded;
                    }
                    if let Some(rec) = self.staged(account) {
                        rec.life = Life::Active;
                        rec.activated_at = index;
                    }
                    return Outcome::Activated { version: *version };
                }
                match current.map(|c| &self.records[c]) {
                    Some(rec) if rec.life == Life::Destroyed && rec.version == v => {
                        reject(Rejection::RecordDestroyed { version: *version })
                    }
                    _ => reject(Rejection::NoSuchVersion),
                }
            }
            Command::ChargeGuess {
                account,
                attempt_id,
                request_hash,
            } => {
                let Some(c) = self.current(account) else {
                    return reject(Rejection::NoRecord);
                };
                let rec = &mut self.records[c];
                if rec.life == Life::Destroyed {
                    return reject(Rejection::RecordDestroyed {
                        version: RecordVersion(rec.version),
                    });
                }
                let since = rec.since_reset();
                if let Some(pos) = since.iter().position(|(a, _)| a == attempt_id) {
                    if since[pos].1 != *request_hash {
                        return reject(Rejection::AttemptConflict);
                    }
                    return rec.charged(rec.before_reset + pos + 1, pos + 1);
                }
                if since.len() >= rec.limit() {
                    rec.life = Life::Destroyed;
                    return Outcome::Destroyed {
                        version: RecordVersion(rec.version),
                    };
                }
                rec.charges.push((*attempt_id, *request_hash));
                let used = rec.since_reset().len();
                rec.charged(rec.charges.len(), used)
            }
            Command::ResetGuesses {
                account,
                version,
                charge,
                signature,
            } => {
                let v = version.get();
                let name = self.cluster_name.clone();
                let rec = self.current(account).map(|c| &mut self.records[c]);
                match rec {
                    Some(rec) if rec.version == v && rec.life == Life::Active => {
                        if !reset_signature_valid(
                            &rec.oprf.reset_key,
                            &name,
                            account,
                            *version,
                            *charge,
                            signature,
                        ) {
                            return reject(Rejection::BadResetSignature);
                        }
                        let latest = rec.charges.len() as u64;
                        if charge.get() == 0 || charge.get() > latest {
                            return reject(Rejection::VersionNotActive);
                        }
                        if charge.get() <= rec.finished {
                            return reject(Rejection::TicketUsed { charge: *charge });
                        }
                        rec.finished = charge.get();
                        let reset = charge.get() == latest;
                        if reset {
                            rec.before_reset = rec.charges.len();
                        }
                        Outcome::Reset {
                            version: *version,
                            reset,
                        }
                    }
                    Some(rec) if rec.version == v && rec.life == Life::Destroyed => {
                        reject(Rejection::RecordDestroyed { version: *version })
                    }
                    _ => reject(Rejection::VersionNotActive),
                }
            }
            Command::Destroy {
                account,
                version,
                charge,
            } => {
                let v = version.get();
                let rec = self.current(account).map(|c| &mut self.records[c]);
                match rec {
                    Some(rec) if rec.version == v && rec.life == Life::Active => {
                        let latest = rec.charges.len() as u64;
                        if charge.get() == latest && rec.since_reset().len() == rec.limit() {
                            rec.life = Life::Destroyed;
                            Outcome::Destroyed { version: *version }
                        } else {
                            reject(Rejection::NotExhausted)
                        }
                    }
                    Some(rec) if rec.version == v && rec.life == Life::Destroyed => {
                        reject(Rejection::RecordDestroyed { version: *version })
                    }
                    _ => reject(Rejection::VersionNotActive),
                }
            }
            Command::Delete { account } => self.delete_through(account, self.highest_version()),
            Command::Barrier => Outcome::Barrier {
                through: RecordVersion(self.highest_version()),
            },
            Command::DeleteThrough { account, through } => {
                self.delete_through(account, through.get())
            }
            Command::AddShare {
                account,
                version,
                helpers,
                share,
            } => self.add_share(account, *version, helpers, share),
            Command::RefreshShares {
                account,
                version,
                from,
                shares,
            } => self.refresh_shares(account, *version, from, shares),
        }
    }

    /// Refreshed shares replace the active record's if they are at least its threshold,
    /// increasing, each a holder and in the map, and their commitments share its key.
    fn refresh_shares(
        &mut self,
        account: &AccountId,
        version: RecordVersion,
        from: &[u8; 32],
        shares: &[bkv_core::oprf_record::StoredShare],
    ) -> Outcome {
        let bad = |why: &str| reject(Rejection::BadRefresh(why.into()));
        let map = self.map.as_ref().map(|(_, m)| m.clone());
        let Some(rec) = self
            .current(account)
            .map(|i| &mut self.records[i])
            .filter(|r| r.life == Life::Active && r.version == version.get())
        else {
            return reject(Rejection::VersionNotActive);
        };
        let refreshed = Outcome::SharesRefreshed { version };
        if rec.oprf.shares == shares {
            return refreshed;
        }
        if &rec.oprf.shares_digest() != from {
            return bad("stale");
        }
        let threshold = usize::from(rec.oprf.threshold);
        let shaped = shares.len() >= threshold
            && shares.windows(2).all(|w| w[0].node_id < w[1].node_id)
            && shares.iter().all(|s| {
                rec.oprf.share_of(s.node_id).is_some()
                    && map
                        .as_ref()
                        .is_some_and(|m| m.holders.iter().any(|h| h.node_id == s.node_id))
                    && bkv_core::oprf::ShareCiphertext::parse(&s.ciphertext).is_ok()
            });
        if !shaped {
            return bad("shape");
        }
        let points = |list: &[bkv_core::oprf_record::StoredShare]| -> Option<Vec<_>> {
            list.iter()
                .map(|s| {
                    Some((
                        s.node_id,
                        bkv_core::oprf::Commitment::parse(&s.commitment).ok()?,
                    ))
                })
                .collect()
        };
        let checked = points(&rec.oprf.shares)
            .zip(points(shares))
            .is_some_and(|(old, new)| bkv_core::oprf::check_refresh(&old, &new, threshold).is_ok());
        if !checked {
            return bad("commitments");
        }
        rec.oprf.shares = shares.to_vec();
        refreshed
    }

    /// A repaired share joins the active record if its voter is in the map, holds none,
    /// and its commitment is the helpers' at its index.
    fn add_share(
        &mut self,
        account: &AccountId,
        version: RecordVersion,
        helpers: &[u64],
        share: &bkv_core::oprf_record::StoredShare,
    ) -> Outcome {
        let bad = |why: &str| reject(Rejection::BadRepair(why.into()));
        let in_map = self
            .map
            .as_ref()
            .is_some_and(|(_, m)| m.holders.iter().any(|h| h.node_id == share.node_id));
        if !in_map {
            return bad("not in the map");
        }
        let Some(rec) = self
            .current(account)
            .map(|i| &mut self.records[i])
            .filter(|r| r.life == Life::Active && r.version == version.get())
        else {
            return reject(Rejection::VersionNotActive);
        };
        let added = Outcome::ShareAdded {
            version,
            node_id: share.node_id,
        };
        if let Some(held) = rec.oprf.share_of(share.node_id) {
            return if held == share {
                added
            } else {
                bad("holds one")
            };
        }
        let voters: Vec<u64> = self
            .map
            .as_ref()
            .map(|(_, m)| m.holders.iter().map(|h| h.node_id).collect())
            .unwrap_or_default();
        let sorted =
            helpers.windows(2).all(|w| w[0] < w[1]) && helpers.iter().all(|h| voters.contains(h));
        let points: Option<Vec<_>> = helpers
            .iter()
            .map(|h| {
                let stored = rec.oprf.share_of(*h)?;
                Some((
                    *h,
                    bkv_core::oprf::Commitment::parse(&stored.commitment).ok()?,
                ))
            })
            .collect();
        let expected = points
            .filter(|p| sorted && p.len() == usize::from(rec.oprf.threshold))
            .and_then(|p| bkv_core::oprf::repaired_commitment(&p, share.node_id).ok());
        let parses = bkv_core::oprf::ShareCiphertext::parse(&share.ciphertext).is_ok();
        if !parses || expected.is_none_or(|e| e.as_bytes() != &share.commitment) {
            return bad("off the polynomial");
        }
        rec.oprf.shares.retain(|s| voters.contains(&s.node_id));
        rec.oprf.shares.push(share.clone());
        rec.oprf.shares.sort_by_key(|s| s.node_id);
        added
    }

    /// Deletes the account's records of versions up to `through`; the account's
    /// registration ids go only when nothing of it is left.
    fn delete_through(&mut self, account: &AccountId, through: u64) -> Outcome {
        let current = self.current(account).map(|c| self.records[c].version);
        let staged = self.staged(account).map(|r| r.version);
        let existed = [current, staged].iter().flatten().any(|v| *v <= through);
        for rec in self.records.iter_mut().filter(|r| {
            r.account == *account
                && r.version <= through
                && matches!(r.life, Life::Staged | Life::Active | Life::Destroyed)
        }) {
            rec.life = Life::Deleted;
        }
        if self.current(account).is_none() && self.staged(account).is_none() {
            self.registrations.retain(|(a, _, _)| a != account);
        }
        Outcome::Deleted { existed }
    }

    /// What the model holds for an account, in the state's terms.
    pub fn status(&mut self, account: &AccountId) -> AccountStatus {
        let record = match self.current(account).map(|c| &self.records[c]) {
            None => RecordStatus::Absent,
            Some(rec) if rec.life == Life::Destroyed => RecordStatus::Destroyed {
                version: RecordVersion(rec.version),
            },
            Some(rec) => RecordStatus::Active {
                version: RecordVersion(rec.version),
                guesses_used: rec.since_reset().len() as u32,
                guess_limit: rec.limit,
                last_charge: ChargeNumber(rec.charges.len() as u64),
                last_finished: ChargeNumber(rec.finished),
            },
        };
        let staged = self.staged(account).map(|r| RecordVersion(r.version));
        AccountStatus { record, staged }
    }
}
