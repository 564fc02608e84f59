//! Snapshot bytes of the state: a magic and format-version header, then the postcard body.
//!
//! The encoding is canonical (ordered maps, no floats, no hash maps), so replicas that
//! applied the same entries produce the same bytes and the same digest. Decoding takes
//! hostile bytes: it never panics, refuses trailing and non-canonical bytes, and checks
//! the invariants that `apply` keeps before handing out a state.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::account::{Account, REQUEST_IDS_KEPT};
use super::accounts::Accounts;
use super::{ClusterConfig, VaultState};
use crate::ids::AccountId;

/// First bytes of every snapshot.
const MAGIC: [u8; 8] = *b"bkvstate";
/// The body format written by this code (2: protocol v2, with the share map, the OPRF half of
/// records and signed resets; 3: per-account record versions and single-use tickets, each
/// account with its latest staged version and each active record with its last finished charge;
/// 4: record versions from the clock of the entries, with the highest issued kept; 5: each
/// active record with the clock of its last share refresh).
/// Only this format is read: a node of another format catches up from the log or a snapshot
/// of its own version.
const FORMAT_VERSION: u16 = 5;
/// Header length: magic and big-endian format version.
const HEADER_LEN: usize = MAGIC.len() + 2;

/// Why snapshot bytes were refused. Carries no state bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateDecodeError {
    /// Shorter than the header, or the magic is not ours.
    #[error("not a bkv state snapshot")]
    NotASnapshot,
    /// A format version this code cannot read.
    #[error("unknown state format version {0}")]
    UnknownFormat(u16),
    /// The body does not parse.
    #[error("state body is malformed: {0}")]
    Malformed(#[from] postcard::Error),
    /// Bytes follow the body.
    #[error("{0} trailing bytes after the state body")]
    TrailingBytes(usize),
    /// The body parses, but is not how this state encodes (duplicate or unordered keys,
    /// overlong integers).
    #[error("state body is not in canonical form")]
    NonCanonical,
    /// The body breaks an invariant that applying commands keeps.
    #[error("state breaks an invariant: {0}")]
    Invalid(&'static str),
}

/// The body as written.
#[derive(Serialize)]
struct BodyRef<'a> {
    last_change: u64,
    version_clock: u64,
    cluster: &'a Option<ClusterConfig>,
    accounts: &'a Accounts,
}

/// The body as read.
#[derive(Deserialize)]
struct Body {
    last_change: u64,
    version_clock: u64,
    cluster: Option<ClusterConfig>,
    accounts: BTreeMap<AccountId, Account>,
}

impl VaultState {
    /// Snapshot bytes: a header (magic, format version) and the canonical postcard body.
    pub fn encode(&self) -> Vec<u8> {
        let body = BodyRef {
            last_change: self.last_change,
            version_clock: self.version_clock,
            cluster: &self.cluster,
            accounts: &self.accounts,
        };
        let mut out = Vec::with_capacity(HEADER_LEN + 64);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        // Serializing into a Vec cannot fail for these types: integers, byte arrays,
        // strings, options, sequences and ordered maps only.
        postcard::to_extend(&body, out).expect("postcard encodes plain data")
    }

    /// SHA-256 of [`VaultState::encode`]: equal on replicas that applied the same entries.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.encode()).into()
    }

    /// Reads snapshot bytes made by [`VaultState::encode`]. Never panics on hostile bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, StateDecodeError> {
        let (magic, rest) = bytes
            .split_first_chunk::<8>()
            .ok_or(StateDecodeError::NotASnapshot)?;
        if *magic != MAGIC {
            return Err(StateDecodeError::NotASnapshot);
        }
        let (version, body) = rest
            .split_first_chunk::<2>()
            .ok_or(StateDecodeError::NotASnapshot)?;
        let version = u16::from_be_bytes(*version);
        if version != FORMAT_VERSION {
            return Err(StateDecodeError::UnknownFormat(version));
        }
        let (body, trailing): (Body, _) = postcard::take_from_bytes(body)?;
        if !trailing.is_empty() {
            return Err(StateDecodeError::TrailingBytes(trailing.len()));
        }
        let state = VaultState {
            last_change: body.last_change,
            version_clock: body.version_clock,
            cluster: body.cluster,
            accounts: Accounts::from(body.accounts),
        };
        state.check()?;
        if state.encode() != bytes {
            return Err(StateDecodeError::NonCanonical);
        }
        Ok(state)
    }

    /// Checks the invariants that `apply` keeps.
    fn check(&self) -> Result<(), StateDecodeError> {
        use StateDecodeError::Invalid;
        let Some(cluster) = &self.cluster else {
            if self.last_change != 0 || self.version_clock != 0 || !self.accounts.is_empty() {
                return Err(Invalid("state without a cluster"));
            }
            return Ok(());
        };
        if self.last_change == 0 {
            return Err(Invalid("bootstrapped at index 0"));
        }
        if cluster.default_guess_limit > cluster.max_guess_limit {
            return Err(Invalid("default guess limit above the maximum"));
        }
        // The map in force must be one the identity key signed, as `apply` checked.
        let epoch = match &cluster.share_map {
            Some(current) => {
                if current.signed.verify(&cluster.identity_key).as_ref() != Ok(&current.map) {
                    return Err(Invalid("share map not signed by the identity key"));
                }
                current.map.epoch
            }
            None => 0,
        };
        // A staged record has exactly the holders of the map it was registered under; an
        // active one may have gained repaired holders and lost departed ones since (AddShare),
        // so only `1 <= threshold <= holders` holds for it.
        let oprf_ok = |o: &crate::oprf_record::OprfRecord, repaired: bool| {
            let ids: Vec<u64> = o.holders().collect();
            let threshold = usize::from(o.threshold);
            let threshold_ok = if repaired {
                threshold >= 1 && threshold <= ids.len()
            } else {
                threshold == crate::share_map::threshold_for(ids.len())
            };
            o.map_epoch >= 1
                && o.map_epoch <= epoch
                && !ids.is_empty()
                && ids.windows(2).all(|w| w[0] < w[1])
                && threshold_ok
        };
        let max = cluster.max_guess_limit;
        let last = self.version_clock;
        for entry in self.accounts.values() {
            if entry.staged.is_none() && entry.active.is_none() && entry.destroyed.is_none() {
                return Err(Invalid("empty account"));
            }
            if entry.active.is_some() && entry.destroyed.is_some() {
                return Err(Invalid("active record next to a tombstone"));
            }
            if entry.registrations.len() > REQUEST_IDS_KEPT {
                return Err(Invalid("too many registration ids"));
            }
            let ids: BTreeSet<_> = entry.registrations.iter().map(|r| r.request_id).collect();
            if ids.len() != entry.registrations.len() {
                return Err(Invalid("repeated registration id"));
            }
            // Every version the account names is one that a `Stage` of it made, at most the
            // last, which is at most the highest version issued (`last`).
            let newest = entry.last_version;
            if newest.get() == 0 || newest.get() > last {
                return Err(Invalid("version count out of range"));
            }
            if entry
                .registrations
                .iter()
                .any(|r| r.version.get() == 0 || r.version > newest)
            {
                return Err(Invalid("registration of a future version"));
            }
            let active_version = entry.active.as_ref().map(|a| a.version);
            let older = active_version.or(entry.destroyed);
            if let Some(staged) = &entry.staged {
                if staged.guess_limit > max {
                    return Err(Invalid("guess limit above the maximum"));
                }
                if !oprf_ok(&staged.oprf, false) {
                    return Err(Invalid("OPRF record out of step with the share map"));
                }
                if staged.version > newest || older.is_some_and(|v| v >= staged.version) {
                    return Err(Invalid("staged version out of order"));
                }
            }
            if older.is_some_and(|v| v.get() == 0 || v > newest) {
                return Err(Invalid("record version out of range"));
            }
            if let Some(active) = &entry.active {
                if active.guess_limit > max {
                    return Err(Invalid("guess limit above the maximum"));
                }
                if !oprf_ok(&active.oprf, true) {
                    return Err(Invalid("OPRF record out of step with the share map"));
                }
                if active.last_finished > active.last_charge {
                    return Err(Invalid("finished a charge that was not made"));
                }
                if active.last_reset.is_some_and(|r| {
                    r.charge.get() == 0
                        || r.charge > active.last_charge
                        || r.charge > active.last_finished
                }) {
                    return Err(Invalid("reset of a charge that was not made or finished"));
                }
                let used = active.guesses_used;
                let last_charge = active.last_charge.get();
                if used > active.guess_limit.get() || u64::from(used) > last_charge {
                    return Err(Invalid("guess counter out of range"));
                }
                // Each charge changed the state at its own index.
                if last_charge > self.last_change {
                    return Err(Invalid("more charges than entries"));
                }
                // The attempts since the reset are exactly the charges
                // `last_charge - used + 1 ..= last_charge`, one each.
                let first = (last_charge - u64::from(used)).saturating_add(1);
                let charges: BTreeSet<u64> =
                    active.attempts.values().map(|a| a.charge.get()).collect();
                if charges.len() != active.attempts.len()
                    || charges.len() != used as usize
                    || charges.first().is_some_and(|c| *c != first)
                    || charges.last().is_some_and(|c| *c != last_charge)
                {
                    return Err(Invalid("attempt table out of step with the counter"));
                }
            }
        }
        Ok(())
    }
}
