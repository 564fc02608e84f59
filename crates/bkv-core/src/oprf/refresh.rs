//! Share refresh: the share-holders of a record re-randomise their shares of its OPRF key
//! with a sharing of zero, so that shares taken before the refresh and shares taken after
//! it do not combine, while the key `k` (and every output) stays the same.
//!
//! With participants `P` (the record's holders that are voters of the share map in force,
//! at least its threshold `t`, increasing):
//!
//! 1. **Deal.** Participant `i` draws a random polynomial `g_i` of degree `t - 1` with
//!    `g_i(0) = 0` and encrypts `g_i(x_l)` to each participant `l` (itself included) under a
//!    [`RefreshContext`] naming the dealer and the recipient.
//! 2. **Apply.** Participant `l` opens the pieces addressed to it, exactly one from each
//!    participant, and adds them to its share: `k_l' = k_l + Σ_{i in P} g_i(x_l)`.
//! 3. **Check** ([`check_refresh`], public, run by every replica before the new shares
//!    replace the old): the new commitments `K_l' = k_l'·G` lie on one polynomial of degree
//!    `t - 1` and interpolate at 0 to the same point as the old ones. Then the new shares
//!    are a `t`-of-`|P|` sharing of the same `k`: `f' = f + Σ g_i`, with `f'(0) = f(0)`.
//!
//! Whatever `t - 1` participants see (their old and new shares and the pieces dealt to
//! them) is the same for any other values of the others' shares: each of their new shares
//! is their old one plus a value of a polynomial with `t - 1` random coefficients, of
//! which `t - 1` points say nothing. A share of node 1 from before a refresh and shares of
//! other nodes after it lie on two different polynomials: they combine to a value that is
//! not the key's (unless every dealer's polynomial is 0 at the points involved, which
//! happens with probability about `1 / 2^252`).
//!
//! The context binds the refresh to the record (cluster, account, version, guess limit,
//! reset key), the threshold, and the participants with their commitments before the
//! refresh: pieces of one refresh do not open in another record's, nor in a later refresh
//! of the same record (its commitments are the new ones), nor for another recipient or
//! dealer. A participant that opens nothing but one piece per dealer never adds a piece
//! twice and never returns a single dealer's piece.
//!
//! The ciphertexts have the layout of a share ciphertext (`E || nonce || ct || tag`, 125
//! bytes, ECIES P-256 with HKDF-SHA256 and AES-256-GCM), their AAD and HKDF info the bytes
//! of [`RefreshContext::piece`].

use curve25519_dalek::scalar::Scalar;
use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use super::shamir::{check_commitments, check_indices, commitment_at_zero};
use super::share_ciphertext::{open_scalar, seal_scalar};
use super::{Commitment, KeyShare, OprfError, P256PublicKey, ShareCiphertext};
use crate::ids::AccountId;

/// The first bytes of a refresh piece's context.
pub const REFRESH_PIECE_LABEL: &[u8] = b"bkv/v2/refresh-piece";

/// What one refresh of one record is bound to: the record (cluster, account, version, and
/// the guess limit and reset key its shares were made under), its threshold, and the
/// participants with their commitments before the refresh, by increasing node id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshContext {
    /// The cluster's name.
    pub cluster_name: String,
    /// The account.
    pub account: AccountId,
    /// The record version.
    pub version: u64,
    /// The record's guess limit (as its share ciphertexts bind it).
    pub guess_limit: u32,
    /// The record's reset public key (as its share ciphertexts bind it).
    pub reset_key: [u8; 32],
    /// The record's threshold `t`: the dealt polynomials have degree `t - 1`.
    pub threshold: u16,
    /// The participants `P` and their commitments before the refresh, increasing.
    pub participants: Vec<(u64, Commitment)>,
}

impl RefreshContext {
    /// Checks the participants: nonzero, strictly increasing, at least the threshold, which
    /// is at least 1.
    pub fn check(&self) -> Result<(), OprfError> {
        let n = self.participants.len();
        let threshold = usize::from(self.threshold);
        if threshold == 0 || threshold > n {
            return Err(OprfError::BadThreshold { threshold, n });
        }
        check_indices(self.participants.iter().map(|(x, _)| *x))?;
        if self.participants.windows(2).any(|w| w[0].0 > w[1].0) {
            return Err(OprfError::ParticipantsUnordered);
        }
        Ok(())
    }

    /// The participants' node ids, in order.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.participants.iter().map(|(x, _)| *x)
    }

    /// `label || I2OSP(len(cluster_name), 2) || cluster_name || I2OSP(len(account), 2) ||
    /// account || I2OSP(version, 8) || I2OSP(guess_limit, 4) || reset_key (32) ||
    /// I2OSP(threshold, 2) || I2OSP(len(participants), 2) || (I2OSP(x, 8) || K (32)) each ||
    /// I2OSP(from, 8) || I2OSP(to, 8)`, integers big-endian.
    fn encode(&self, label: &[u8], from: u64, to: u64) -> Vec<u8> {
        let name = self.cluster_name.as_bytes();
        let account = self.account.as_bytes();
        let mut out = Vec::with_capacity(
            label.len()
                + 2
                + name.len()
                + 2
                + account.len()
                + 48
                + 40 * self.participants.len()
                + 16,
        );
        out.extend_from_slice(label);
        // Cluster names are at most 255 bytes (ShareMap::check), accounts 128, participants
        // a share map's voters: every length fits in two bytes.
        out.extend_from_slice(&super::suite::i2osp2(name.len()));
        out.extend_from_slice(name);
        out.extend_from_slice(&super::suite::i2osp2(account.len()));
        out.extend_from_slice(account);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.guess_limit.to_be_bytes());
        out.extend_from_slice(&self.reset_key);
        out.extend_from_slice(&self.threshold.to_be_bytes());
        out.extend_from_slice(&super::suite::i2osp2(self.participants.len()));
        for (x, commitment) in &self.participants {
            out.extend_from_slice(&x.to_be_bytes());
            out.extend_from_slice(commitment.as_bytes());
        }
        out.extend_from_slice(&from.to_be_bytes());
        out.extend_from_slice(&to.to_be_bytes());
        out
    }

    /// The context of the piece dealt by participant `dealer` to participant `recipient`.
    pub fn piece(&self, dealer: u64, recipient: u64) -> Vec<u8> {
        self.encode(REFRESH_PIECE_LABEL, dealer, recipient)
    }
}

/// Step 1, by participant `dealer`: `g(x_l)` for a fresh random polynomial `g` of degree
/// `t - 1` with `g(0) = 0`, one per participant `l`, each encrypted to that participant's
/// key (`keys`, in the order of `context.participants`).
pub fn deal_refresh<R: RngCore + CryptoRng>(
    dealer: u64,
    context: &RefreshContext,
    keys: &[P256PublicKey],
    rng: &mut R,
) -> Result<Vec<ShareCiphertext>, OprfError> {
    context.check()?;
    if !context.ids().any(|x| x == dealer) {
        return Err(OprfError::NotAParticipant { index: dealer });
    }
    if keys.len() != context.participants.len() {
        return Err(OprfError::WrongCount {
            what: "participant_keys",
            expected: context.participants.len(),
            actual: keys.len(),
        });
    }
    // g(x) = a_1 x + ... + a_{t-1} x^{t-1}.
    let coefficients: Zeroizing<Vec<Scalar>> = Zeroizing::new(
        (1..context.threshold)
            .map(|_| Scalar::random(rng))
            .collect(),
    );
    let mut pieces = Vec::with_capacity(keys.len());
    for ((recipient, _), key) in context.participants.iter().zip(keys) {
        let x = Scalar::from(*recipient);
        // Horner, ending on the constant term 0: ((a_{t-1} x + a_{t-2}) x + ... + a_1) x.
        let mut value = Zeroizing::new(Scalar::ZERO);
        for a in coefficients.iter().rev() {
            *value = (*value + a) * x;
        }
        let context = context.piece(dealer, *recipient);
        pieces.push(seal_scalar(key, &value.to_bytes(), &context, rng));
    }
    Ok(pieces)
}

/// Step 2, by the participant holding `share`: the pieces addressed to it, one per
/// participant in the context's order, opened with the ECDH secrets its token computed
/// (`zs[i]` for `pieces[i]`) and added to its share. The caller encrypts the result to its
/// own key; nothing here can tell whether the dealers were honest (the replicas'
/// [`check_refresh`] of every participant's new commitment does).
pub fn apply_refresh(
    share: &KeyShare,
    own_key: &P256PublicKey,
    context: &RefreshContext,
    pieces: &[ShareCiphertext],
    zs: &[Zeroizing<[u8; 32]>],
) -> Result<KeyShare, OprfError> {
    context.check()?;
    let me = share.index();
    if !context.ids().any(|x| x == me) {
        return Err(OprfError::NotAParticipant { index: me });
    }
    if pieces.len() != context.participants.len() || zs.len() != pieces.len() {
        return Err(OprfError::WrongCount {
            what: "pieces",
            expected: context.participants.len(),
            actual: pieces.len(),
        });
    }
    let mut sum = Zeroizing::new(*share.secret());
    for ((dealer, piece), z) in context.ids().zip(pieces).zip(zs) {
        let plain = open_scalar(z, piece, own_key, &context.piece(dealer, me))?;
        let value = Option::<Scalar>::from(Scalar::from_canonical_bytes(*plain))
            .map(Zeroizing::new)
            .ok_or(OprfError::NonCanonicalScalar {
                what: "refresh_piece",
            })?;
        *sum += *value;
    }
    // A zero share (probability about 1 / 2^252) is refused: it would commit to the
    // identity, which no replica accepts; the refresh is simply done again.
    KeyShare::from_bytes(me, &sum.to_bytes())
}

/// The check every replica makes of a refresh, from commitments alone: `new` (the
/// participants' commitments after it, increasing) lies on one polynomial of degree
/// `threshold - 1` ([`check_commitments`]) and interpolates at 0 to the same point as `old`
/// (the record's commitments before it, any `threshold` or more on its polynomial): the
/// new shares share the same key.
pub fn check_refresh(
    old: &[(u64, Commitment)],
    new: &[(u64, Commitment)],
    threshold: usize,
) -> Result<(), OprfError> {
    check_commitments(new, threshold)?;
    if old.len() < threshold {
        return Err(OprfError::BadThreshold {
            threshold,
            n: old.len(),
        });
    }
    check_indices(old.iter().map(|(x, _)| *x))?;
    if commitment_at_zero(&old[..threshold]) != commitment_at_zero(&new[..threshold]) {
        return Err(OprfError::RefreshChangesKey);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
