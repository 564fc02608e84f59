//! The threshold OPRF of protocol v2, without I/O: the client hardens its password with an
//! OPRF whose key is Shamir-shared over the voters, so that testing a password needs `t`
//! nodes, each answering only for a guess it has counted itself.
//!
//! Everything here is the wire contract of a third-party client, byte for byte; the file
//! `testdata/vectors/oprf-v2.json` at the repository root gives every derivation computed
//! from fixed inputs, and a test holds this code to it.
//!
//! 1. **Suite.** RFC 9497 OPRF with ciphersuite ristretto255-SHA512.
//!    `contextString(mode) = "OPRFV1-" || I2OSP(mode, 1) || "-ristretto255-SHA512"`: mode
//!    0x00 (OPRF) for blind, evaluate and finalize; mode 0x01 (VOPRF) for the evaluation
//!    proofs. Elements are 32-byte ristretto255 encodings, scalars 32 bytes little-endian
//!    canonical (`SerializeElement`, `SerializeScalar`). See [`suite`].
//! 2. **Input and hardened password.** `input = I2OSP(len(account), 2) || account ||
//!    password` ([`oprf_input`]); the hardened password is RFC 9497's OPRF output under the
//!    account's key `k`: `y = SHA-512(I2OSP(len(input), 2) || input || I2OSP(32, 2) ||
//!    SerializeElement(k * HashToGroup(input)) || "Finalize")`, 64 bytes
//!    ([`HardenedPassword`]). Registration computes it directly ([`evaluate_directly`]);
//!    recovery through a blind ([`Blind`]); both give the same `y`.
//! 3. **Share indices.** A voter's share index is its node id `x_i` (u64, >= 1), as the
//!    scalar `x_i`.
//! 4. **Shamir split** ([`split`]): `k_i = f(x_i)` for a random polynomial `f` of degree
//!    `t - 1` with `f(0) = k`; commitment `K_i = k_i * G` ([`Commitment`]). Combining `t`
//!    evaluations `Z_i = k_i * B` with the Lagrange coefficients at 0,
//!    `λ_i = Π_{j != i} x_j / (x_j - x_i)`, gives `k * B` ([`combine`]).
//! 5. **Commitment consistency** ([`check_commitments`]): indices distinct and nonzero,
//!    commitments valid and not the identity, and every commitment after the first `t` lies
//!    on the polynomial those `t` define.
//! 6. **Evaluation proof** ([`evaluate_share`], [`verify_evaluation`]): RFC 9497 §2.2.1
//!    `GenerateProof(k_i, A = G, B = K_i, C = [B], D = [Z_i])` in VOPRF mode, serialized
//!    `c || s`, 64 bytes ([`DleqProof`]).
//! 7. **Share transport** ([`encrypt_share`], [`open_share`]): ECIES over P-256 to the node's
//!    share-receiving key (which lives in its token), 125 bytes ([`ShareCiphertext`]), bound
//!    to a [`ShareContext`].
//! 8. **Reset authorization** ([`ResetKey`], [`reset_message`], [`verify_reset`]): an
//!    Ed25519 key derived from the OPAQUE export key signs `(cluster, account, version,
//!    charge)`.
//!
//! Secrets (`k`, `k_i`, blinds, ECDH outputs, derived keys, the reset seed) live in types
//! that zeroize on drop and redact `Debug`. Every byte string from the network has a parse
//! function that refuses wrong lengths, non-canonical encodings and the identity element
//! with an [`OprfError`] naming the field.

mod blind;
mod dleq;
mod element;
mod error;
mod hardened;
mod input;
mod key;
mod p256_key;
mod refresh;
mod repair;
mod reset;
mod shamir;
mod share;
mod share_ciphertext;
mod share_context;
pub mod suite;

pub use crate::reset::reset_message;
pub use blind::Blind;
pub use dleq::{DleqProof, evaluate_share, verify_evaluation};
pub use element::{BlindedElement, Commitment, EvaluatedElement};
pub use error::OprfError;
pub use hardened::HardenedPassword;
pub use input::{OprfInput, oprf_input};
pub use key::{OprfKey, evaluate_directly};
pub use p256_key::P256PublicKey;
#[cfg(any(test, feature = "test-support"))]
pub use p256_key::SoftwareShareKey;
pub use refresh::{
    REFRESH_PIECE_LABEL, RefreshContext, apply_refresh, check_refresh, deal_refresh,
};
pub use repair::{
    REPAIR_PIECE_LABEL, REPAIR_SUM_LABEL, RepairContext, combine_pieces, deal, repaired_commitment,
    take_repaired,
};
pub use reset::{ResetKey, ResetPublicKey, verify_reset};
pub use shamir::{check_commitments, combine, split};
pub use share::KeyShare;
pub use share_ciphertext::{ShareCiphertext, encrypt_share, open_share, share_matches};
pub use share_context::ShareContext;

/// Length of a ristretto255 element and of a scalar, in bytes.
pub const ELEMENT_LEN: usize = 32;
/// Length of a scalar, in bytes.
pub const SCALAR_LEN: usize = 32;
/// Length of a [`DleqProof`]: `c || s`.
pub const PROOF_LEN: usize = 2 * SCALAR_LEN;
/// Length of a [`HardenedPassword`] (a SHA-512 output).
pub const HARDENED_PASSWORD_LEN: usize = 64;
/// Length of an uncompressed SEC1 P-256 point: `0x04 || x || y`.
pub const P256_POINT_LEN: usize = 65;
/// Length of an AES-256-GCM nonce in a [`ShareCiphertext`].
pub const SHARE_NONCE_LEN: usize = 12;
/// Length of an AES-256-GCM tag.
pub const SHARE_TAG_LEN: usize = 16;
/// Length of a [`ShareCiphertext`]: `E (65) || nonce (12) || ct (32) || tag (16)`.
pub const SHARE_CIPHERTEXT_LEN: usize =
    P256_POINT_LEN + SHARE_NONCE_LEN + SCALAR_LEN + SHARE_TAG_LEN;
/// Length of a reset public key (Ed25519).
pub const RESET_PUBLIC_KEY_LEN: usize = 32;
/// Length of a reset signature (Ed25519).
pub const RESET_SIGNATURE_LEN: usize = 64;

/// The threshold of `voters` voters: `floor(voters / 2) + 1` (2 of 3, 3 of 5), the smallest
/// number that any two sets of share-holders answering must have a node in common.
pub fn threshold_for(voters: usize) -> usize {
    voters / 2 + 1
}

#[cfg(test)]
mod tests;
