//! A share-holder's own ledger of the evaluations it made with one OPRF key share: what a
//! node checks before it evaluates, whatever its Raft state says.
//!
//! The applied state already refuses anything beyond the guess limit, but a node's state is
//! only as honest as the leader that sent it: a compromised leader could send an honest
//! follower a crafted snapshot with the counter reset, or replay the registration after a
//! delete. So each share-holder also keeps, on its own disk, per share:
//! - the guess limit and reset key the share was made for (bound into the share's
//!   ciphertext by the client, so a forged record cannot change them);
//! - the charges it evaluated since the last reset the client signed, at most one blinded
//!   element per charge, at most `guess_limit` of them;
//! - the last signed reset it has seen; a reset clears the charges at or below it, and
//!   charges at or below it are never evaluated again.
//!
//! A share once erased (record destroyed, deleted or superseded, or the share replaced by a
//! refresh) is never installed again: its ledger entry stays as a tombstone, counters
//! included. A share that replaces another of the same record (a refresh) starts from the
//! counters of the one it replaces ([`ShareLedger::take_counters_of`]), so that a refresh
//! never gives a node a fresh budget. Everything here is deterministic and does no I/O;
//! the node persists the ledger and flushes it before it answers.

use serde::{Deserialize, Serialize};

use crate::bytes;
use crate::ids::{AccountId, AttemptId, ChargeNumber, RecordVersion};
use crate::reset::reset_signature_valid;
use crate::state::ResetProof;

/// One evaluation, as the ledger remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The charge it was made under.
    pub charge: u64,
    /// The attempt charged.
    pub attempt_id: AttemptId,
    /// SHA-256 of the blinded element evaluated.
    pub blinded_hash: [u8; 32],
}

/// The ledger of one share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareLedger {
    /// The account.
    pub account: AccountId,
    /// The record version the share belongs to.
    pub version: RecordVersion,
    /// Evaluations allowed between two signed resets (the record's guess limit, as the
    /// share's ciphertext binds it).
    pub guess_limit: u32,
    /// The key that signs this record's resets (as the share's ciphertext binds it).
    pub reset_key: [u8; 32],
    /// The charge of the last signed reset seen (0: none).
    pub last_reset_charge: u64,
    /// Evaluations since that reset, by charge.
    pub evaluated: Vec<Evaluation>,
    /// The share, sealed under this node's own share key; empty once erased.
    #[serde(with = "bytes")]
    pub sealed_share: Vec<u8>,
}

/// Why a share-holder refuses to evaluate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerRefusal {
    /// The share was erased (its record destroyed, deleted or superseded).
    #[error("the share was erased")]
    Erased,
    /// The charge is at or below the last signed reset.
    #[error("charge {charge} is not above the last reset ({last_reset})")]
    Stale {
        /// The charge asked for.
        charge: u64,
        /// The last reset's charge.
        last_reset: u64,
    },
    /// This charge was evaluated for another attempt or blinded element.
    #[error("charge {0} was evaluated for another blinded element")]
    Conflict(u64),
    /// `guess_limit` evaluations since the last signed reset.
    #[error("{0} evaluations since the last signed reset: the limit")]
    Exhausted(u32),
}

impl ShareLedger {
    /// The ledger of a share just installed.
    pub fn new(
        account: AccountId,
        version: RecordVersion,
        guess_limit: u32,
        reset_key: [u8; 32],
        sealed_share: Vec<u8>,
    ) -> Self {
        Self {
            account,
            version,
            guess_limit,
            reset_key,
            last_reset_charge: 0,
            evaluated: Vec::new(),
            sealed_share,
        }
    }

    /// Whether the share was erased.
    pub fn is_erased(&self) -> bool {
        self.sealed_share.is_empty()
    }

    /// Takes in a reset the applied state shows, if it is newer than the last one seen and
    /// its signature verifies under this share's own reset key. Returns whether the ledger
    /// changed.
    pub fn catch_up_reset(&mut self, cluster_name: &str, reset: &ResetProof) -> bool {
        if reset.charge.get() <= self.last_reset_charge
            || !reset_signature_valid(
                &self.reset_key,
                cluster_name,
                &self.account,
                self.version,
                reset.charge,
                &reset.signature,
            )
        {
            return false;
        }
        self.last_reset_charge = reset.charge.get();
        let last = self.last_reset_charge;
        self.evaluated.retain(|e| e.charge > last);
        true
    }

    /// Admits an evaluation under `charge` of the blinded element hashed to `blinded_hash`
    /// for `attempt_id`. `Ok(true)`: newly recorded, persist the ledger before answering;
    /// `Ok(false)`: the same evaluation was admitted before (a retry).
    pub fn admit(
        &mut self,
        charge: ChargeNumber,
        attempt_id: AttemptId,
        blinded_hash: [u8; 32],
    ) -> Result<bool, LedgerRefusal> {
        if self.is_erased() {
            return Err(LedgerRefusal::Erased);
        }
        let charge = charge.get();
        if charge <= self.last_reset_charge {
            return Err(LedgerRefusal::Stale {
                charge,
                last_reset: self.last_reset_charge,
            });
        }
        if let Some(earlier) = self.evaluated.iter().find(|e| e.charge == charge) {
            return if earlier.attempt_id == attempt_id && earlier.blinded_hash == blinded_hash {
                Ok(false)
            } else {
                Err(LedgerRefusal::Conflict(charge))
            };
        }
        if self.evaluated.len() >= self.guess_limit as usize {
            return Err(LedgerRefusal::Exhausted(self.guess_limit));
        }
        self.evaluated.push(Evaluation {
            charge,
            attempt_id,
            blinded_hash,
        });
        Ok(true)
    }

    /// Erases the share (its record is gone, or a refresh replaced it); the ledger stays as
    /// a tombstone, with its counters: a share that replaces it takes them over.
    pub fn erase(&mut self) {
        self.sealed_share.clear();
    }

    /// Takes over the counters of the ledger of the share this one replaces (the same
    /// record's, before a refresh): its evaluations since the last signed reset and that
    /// reset. Evaluations already here are kept; the limit applies to them all.
    pub fn take_counters_of(&mut self, old: &ShareLedger) {
        self.last_reset_charge = self.last_reset_charge.max(old.last_reset_charge);
        for evaluation in &old.evaluated {
            if !self.evaluated.iter().any(|e| e.charge == evaluation.charge) {
                self.evaluated.push(*evaluation);
            }
        }
        let last = self.last_reset_charge;
        self.evaluated.retain(|e| e.charge > last);
        self.evaluated.sort_by_key(|e| e.charge);
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;
    use crate::reset::reset_message;

    fn ledger(limit: u32, key: &SigningKey) -> ShareLedger {
        ShareLedger::new(
            AccountId::parse("alice").unwrap(),
            RecordVersion(9000),
            limit,
            key.verifying_key().to_bytes(),
            vec![1; 60],
        )
    }

    fn attempt(n: u8) -> AttemptId {
        AttemptId::new([n; 16])
    }

    fn reset(key: &SigningKey, charge: u64) -> ResetProof {
        let msg = reset_message(
            "bkv",
            &AccountId::parse("alice").unwrap(),
            RecordVersion(9000),
            ChargeNumber(charge),
        );
        ResetProof {
            charge: ChargeNumber(charge),
            signature: key.sign(&msg).to_bytes(),
        }
    }

    #[test]
    fn at_most_the_limit_between_signed_resets_and_one_element_per_charge() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let mut l = ledger(3, &key);
        for c in 1..=3u8 {
            assert_eq!(
                l.admit(ChargeNumber(c.into()), attempt(c), [c; 32]),
                Ok(true)
            );
        }
        // A retry of the same evaluation is admitted again, recording nothing.
        assert_eq!(l.admit(ChargeNumber(2), attempt(2), [2; 32]), Ok(false));
        // The same charge for another element or attempt is refused.
        assert_eq!(
            l.admit(ChargeNumber(2), attempt(9), [2; 32]),
            Err(LedgerRefusal::Conflict(2))
        );
        assert_eq!(
            l.admit(ChargeNumber(4), attempt(4), [4; 32]),
            Err(LedgerRefusal::Exhausted(3))
        );
        // A made-up or replayed reset changes nothing; the client's resets do.
        let forger = SigningKey::from_bytes(&[4; 32]);
        assert!(!l.catch_up_reset("bkv", &reset(&forger, 3)));
        assert!(!l.catch_up_reset("other", &reset(&key, 3)));
        assert!(l.catch_up_reset("bkv", &reset(&key, 3)));
        assert!(!l.catch_up_reset("bkv", &reset(&key, 2)));
        assert_eq!(
            l.admit(ChargeNumber(3), attempt(3), [3; 32]),
            Err(LedgerRefusal::Stale {
                charge: 3,
                last_reset: 3
            })
        );
        assert_eq!(l.admit(ChargeNumber(4), attempt(4), [4; 32]), Ok(true));
        // A reset below later evaluations keeps them.
        assert_eq!(l.admit(ChargeNumber(6), attempt(6), [6; 32]), Ok(true));
        assert!(l.catch_up_reset("bkv", &reset(&key, 5)));
        assert_eq!(l.evaluated.len(), 1);
        l.erase();
        assert_eq!(
            l.admit(ChargeNumber(7), attempt(7), [7; 32]),
            Err(LedgerRefusal::Erased)
        );
        // The tombstone keeps its counters.
        assert_eq!(l.evaluated.len(), 1);
        assert_eq!(l.last_reset_charge, 5);
    }

    #[test]
    fn a_share_that_replaces_another_starts_from_its_counters() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let mut old = ledger(3, &key);
        for c in 1..=2u8 {
            assert_eq!(
                old.admit(ChargeNumber(c.into()), attempt(c), [c; 32]),
                Ok(true)
            );
        }
        old.erase();
        let mut new = ledger(3, &key);
        new.take_counters_of(&old);
        // A retry of charge 2 is the same evaluation; one more is the limit.
        assert_eq!(new.admit(ChargeNumber(2), attempt(2), [2; 32]), Ok(false));
        assert_eq!(new.admit(ChargeNumber(3), attempt(3), [3; 32]), Ok(true));
        assert_eq!(
            new.admit(ChargeNumber(4), attempt(4), [4; 32]),
            Err(LedgerRefusal::Exhausted(3))
        );
        // A signed reset seen by the old share stays seen.
        let mut reset_old = ledger(3, &key);
        assert!(reset_old.catch_up_reset("bkv", &reset(&key, 3)));
        let mut fresh = ledger(3, &key);
        fresh.take_counters_of(&reset_old);
        assert!(matches!(
            fresh.admit(ChargeNumber(3), attempt(3), [3; 32]),
            Err(LedgerRefusal::Stale { .. })
        ));
    }
}
