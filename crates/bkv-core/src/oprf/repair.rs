//! Share repair: `t` share-holders of a record give a voter that holds no share of it (a
//! node added or put in a removed one's place) its share `k_j = f(x_j)`, so that no helper
//! learns anything of another's share or of `k_j`, and the voter learns `k_j` only.
//!
//! With helpers `H` (`t` of the record's holders, `x_j` not among them), `k_j` is
//! `Σ_{i in H} L_i(x_j) k_i` (the Lagrange basis of `H` at `x_j`). In two rounds:
//!
//! 1. **Deal.** Helper `i` splits its weighted share `c_i = L_i(x_j) k_i` into `t` random
//!    pieces `d_{i,l}` (`l` in `H`, summing to `c_i`) and encrypts each to helper `l`'s
//!    share-receiving key, bound to a [`RepairContext`] naming the dealer and the recipient.
//! 2. **Combine.** Helper `l` opens the `t` pieces addressed to it, exactly one from each
//!    helper of `H`, adds them, `s_l = Σ_i d_{i,l}`, and encrypts `s_l` to `x_j`'s key.
//! 3. **Take.** The voter opens the `t` sums and adds them: `Σ_l s_l = Σ_i c_i = k_j`. It
//!    keeps the result only if `k_j·G = Σ_{i in H} L_i(x_j) K_i` ([`repaired_commitment`],
//!    which every node checks again from the record's public commitments).
//!
//! Each piece is a uniformly random scalar, and each sum mixes pieces of every dealer, so
//! whoever holds fewer than `t` of the parties' views (the voter's and up to `t - 2`
//! helpers') sees values that are the same whatever the other helpers' shares are. A helper
//! opens only pieces made for this repair, for itself, one per dealer: it cannot be made to
//! decrypt a registration's share ciphertext or to return one dealer's pieces alone (which
//! would give away that dealer's `c_i`).
//!
//! The ciphertexts have the layout of a share ciphertext (`E || nonce || ct || tag`, 125
//! bytes, ECIES P-256 with HKDF-SHA256 and AES-256-GCM); the AAD and HKDF info carry the
//! bytes of [`RepairContext::piece`] or [`RepairContext::sum`].

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use super::shamir::{check_indices, lagrange};
use super::share_ciphertext::{open_scalar, seal_scalar};
use super::{Commitment, KeyShare, OprfError, P256PublicKey, ShareCiphertext};
use crate::ids::AccountId;

/// The first bytes of a piece's context.
pub const REPAIR_PIECE_LABEL: &[u8] = b"bkv/v2/repair-piece";

/// The first bytes of a sum's context.
pub const REPAIR_SUM_LABEL: &[u8] = b"bkv/v2/repair-sum";

/// What one repair of one record is bound to: the record (cluster, account, version, and
/// the guess limit and reset key its shares were made under), the voter repaired and the
/// helpers, in increasing order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairContext {
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
    /// The voter that gets its share, `x_j`.
    pub target: u64,
    /// The helpers `H`, increasing.
    pub helpers: Vec<u64>,
}

impl RepairContext {
    /// Checks the indices: helpers increasing, nonzero, at least one; the target nonzero and
    /// not a helper.
    pub fn check(&self) -> Result<(), OprfError> {
        if self.helpers.is_empty() {
            return Err(OprfError::BadThreshold { threshold: 0, n: 0 });
        }
        check_indices(self.helpers.iter().copied().chain([self.target]))?;
        if self.helpers.windows(2).any(|w| w[0] > w[1]) {
            return Err(OprfError::HelpersUnordered);
        }
        Ok(())
    }

    /// `label || I2OSP(len(cluster_name), 2) || cluster_name || I2OSP(len(account), 2) ||
    /// account || I2OSP(version, 8) || I2OSP(guess_limit, 4) || reset_key (32) ||
    /// I2OSP(target, 8) || I2OSP(len(helpers), 2) || I2OSP(helper, 8) each ||
    /// I2OSP(from, 8) || I2OSP(to, 8)`, integers big-endian.
    fn encode(&self, label: &[u8], from: u64, to: u64) -> Vec<u8> {
        let name = self.cluster_name.as_bytes();
        let account = self.account.as_bytes();
        let mut out = Vec::with_capacity(
            label.len() + 2 + name.len() + 2 + account.len() + 54 + 8 * self.helpers.len() + 16,
        );
        out.extend_from_slice(label);
        // Cluster names are at most 255 bytes (ShareMap::check), accounts 128, helpers a
        // share map's voters: every length fits in two bytes.
        out.extend_from_slice(&super::suite::i2osp2(name.len()));
        out.extend_from_slice(name);
        out.extend_from_slice(&super::suite::i2osp2(account.len()));
        out.extend_from_slice(account);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.guess_limit.to_be_bytes());
        out.extend_from_slice(&self.reset_key);
        out.extend_from_slice(&self.target.to_be_bytes());
        out.extend_from_slice(&super::suite::i2osp2(self.helpers.len()));
        for helper in &self.helpers {
            out.extend_from_slice(&helper.to_be_bytes());
        }
        out.extend_from_slice(&from.to_be_bytes());
        out.extend_from_slice(&to.to_be_bytes());
        out
    }

    /// The context of the piece dealt by helper `dealer` to helper `recipient`.
    pub fn piece(&self, dealer: u64, recipient: u64) -> Vec<u8> {
        self.encode(REPAIR_PIECE_LABEL, dealer, recipient)
    }

    /// The context of helper `from`'s sum, for the target.
    pub fn sum(&self, from: u64) -> Vec<u8> {
        self.encode(REPAIR_SUM_LABEL, from, self.target)
    }
}

/// Step 1, by the helper holding `share`: its weighted share split into one piece per
/// helper, each encrypted to that helper's key (`keys`, in the order of
/// `context.helpers`). Refuses if `share` is not one of the helpers'.
pub fn deal<R: RngCore + CryptoRng>(
    share: &KeyShare,
    context: &RepairContext,
    keys: &[P256PublicKey],
    rng: &mut R,
) -> Result<Vec<ShareCiphertext>, OprfError> {
    context.check()?;
    if keys.len() != context.helpers.len() {
        return Err(OprfError::WrongCount {
            what: "helper_keys",
            expected: context.helpers.len(),
            actual: keys.len(),
        });
    }
    let weight = weight_of(context, share.index())?;
    let weighted = Zeroizing::new(weight * share.secret());
    let mut rest = Zeroizing::new(*weighted);
    let mut pieces = Vec::with_capacity(keys.len());
    let last = context.helpers.len() - 1;
    for (at, (recipient, key)) in context.helpers.iter().zip(keys).enumerate() {
        let piece = if at == last {
            Zeroizing::new(*rest)
        } else {
            let piece = Zeroizing::new(Scalar::random(rng));
            *rest -= *piece;
            piece
        };
        let context = context.piece(share.index(), *recipient);
        pieces.push(seal_scalar(key, &piece.to_bytes(), &context, rng));
    }
    Ok(pieces)
}

/// Step 2, by helper `me`: the pieces addressed to it, one per helper of the context in its
/// order, opened with the ECDH secrets its token computed (`zs[i]` for `pieces[i]`) and
/// added up; the sum encrypted to the target's key.
pub fn combine_pieces<R: RngCore + CryptoRng>(
    me: (u64, &P256PublicKey),
    context: &RepairContext,
    pieces: &[ShareCiphertext],
    zs: &[Zeroizing<[u8; 32]>],
    target_key: &P256PublicKey,
    rng: &mut R,
) -> Result<ShareCiphertext, OprfError> {
    context.check()?;
    let (id, key) = me;
    if !context.helpers.contains(&id) {
        return Err(OprfError::NotAHelper { index: id });
    }
    if pieces.len() != context.helpers.len() || zs.len() != pieces.len() {
        return Err(OprfError::WrongCount {
            what: "pieces",
            expected: context.helpers.len(),
            actual: pieces.len(),
        });
    }
    let mut sum = Zeroizing::new(Scalar::ZERO);
    for ((dealer, piece), z) in context.helpers.iter().zip(pieces).zip(zs) {
        let plain = open_scalar(z, piece, key, &context.piece(*dealer, id))?;
        *sum += *parse_scalar(&plain, "repair_piece")?;
    }
    Ok(seal_scalar(
        target_key,
        &sum.to_bytes(),
        &context.sum(id),
        rng,
    ))
}

/// Step 3, by the target: the helpers' sums (one per helper, in the context's order)
/// opened with its token's ECDH secrets and added up into its share, kept only if it
/// matches `expected` (from [`repaired_commitment`]).
pub fn take_repaired(
    own_key: &P256PublicKey,
    context: &RepairContext,
    sums: &[ShareCiphertext],
    zs: &[Zeroizing<[u8; 32]>],
    expected: &Commitment,
) -> Result<KeyShare, OprfError> {
    context.check()?;
    if sums.len() != context.helpers.len() || zs.len() != sums.len() {
        return Err(OprfError::WrongCount {
            what: "sums",
            expected: context.helpers.len(),
            actual: sums.len(),
        });
    }
    let mut total = Zeroizing::new(Scalar::ZERO);
    for ((from, sum), z) in context.helpers.iter().zip(sums).zip(zs) {
        let plain = open_scalar(z, sum, own_key, &context.sum(*from))?;
        *total += *parse_scalar(&plain, "repair_sum")?;
    }
    let share = KeyShare::from_bytes(context.target, &total.to_bytes())?;
    if !super::share_matches(&share, expected) {
        return Err(OprfError::ShareMismatch);
    }
    Ok(share)
}

/// `K_j = Σ_{i in H} L_i(x_j) K_i`: the commitment of `target`'s share, from the helpers'
/// commitments `(x_i, K_i)` (public; every node computes it when it applies a repair).
pub fn repaired_commitment(
    helpers: &[(u64, Commitment)],
    target: u64,
) -> Result<Commitment, OprfError> {
    if helpers.is_empty() {
        return Err(OprfError::NoEvaluations);
    }
    check_indices(helpers.iter().map(|(x, _)| *x).chain([target]))?;
    let xs: Vec<Scalar> = helpers.iter().map(|(x, _)| Scalar::from(*x)).collect();
    let weights = lagrange(&xs, &Scalar::from(target));
    let point =
        RistrettoPoint::vartime_multiscalar_mul(&weights, helpers.iter().map(|(_, k)| k.point()));
    if point.is_identity() {
        return Err(OprfError::Identity { what: "commitment" });
    }
    Ok(Commitment::from_point(point))
}

/// `L_i(x_j)` over the context's helpers, for helper `index`.
fn weight_of(context: &RepairContext, index: u64) -> Result<Scalar, OprfError> {
    let at = context
        .helpers
        .iter()
        .position(|h| *h == index)
        .ok_or(OprfError::NotAHelper { index })?;
    let xs: Vec<Scalar> = context.helpers.iter().map(|x| Scalar::from(*x)).collect();
    Ok(lagrange(&xs, &Scalar::from(context.target))[at])
}

/// A canonical scalar (zero allowed: a piece or a sum is uniformly random).
fn parse_scalar(bytes: &[u8; 32], what: &'static str) -> Result<Zeroizing<Scalar>, OprfError> {
    Option::<Scalar>::from(Scalar::from_canonical_bytes(*bytes))
        .map(Zeroizing::new)
        .ok_or(OprfError::NonCanonicalScalar { what })
}

#[cfg(test)]
mod tests;
