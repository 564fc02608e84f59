//! A key share encrypted to one voter's share-receiving key: ECIES over P-256 (the node's
//! token does P-256 ECDH, not X25519) with HKDF-SHA256 and AES-256-GCM.
//!
//! ```text
//! e random, E = e G                          (65 bytes, uncompressed SEC1)
//! Z = x-coordinate of e Pub                   (32 bytes; the node: of d E, in its token)
//! key = HKDF-SHA256(salt = E || Pub, ikm = Z, info = "bkv/v2/share-key" || context), 32 bytes
//! ct || tag = AES-256-GCM(key, nonce (12 random bytes), plaintext = k_i (32 bytes, LE),
//!                         aad = context)
//! ciphertext = E (65) || nonce (12) || ct (32) || tag (16) = 125 bytes
//! ```
//!
//! `context` is [`ShareContext::to_bytes`]. The node opens with `Z` from its token
//! ([`open_share`]) and accepts the share only if `k_i G` is the commitment in the context.

use std::fmt;

use aes_gcm::aead::{AeadInOut, KeyInit, Nonce};
use aes_gcm::{Aes256Gcm, Tag};
use hkdf::Hkdf;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::p256_key::parse_point;
use super::{
    Commitment, KeyShare, OprfError, P256_POINT_LEN, P256PublicKey, SCALAR_LEN,
    SHARE_CIPHERTEXT_LEN, SHARE_NONCE_LEN, SHARE_TAG_LEN, ShareContext,
};

/// The HKDF info label in front of the context.
pub const SHARE_KEY_INFO: &[u8] = b"bkv/v2/share-key";

const NONCE_AT: usize = P256_POINT_LEN;
const BODY_AT: usize = NONCE_AT + SHARE_NONCE_LEN;
const TAG_AT: usize = BODY_AT + SCALAR_LEN;

/// A share ciphertext: `E (65) || nonce (12) || ct (32) || tag (16)`, with `E` a valid
/// uncompressed P-256 point (checked at parse, so the token is never handed a bad point).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<u8>", into = "Vec<u8>")]
pub struct ShareCiphertext([u8; SHARE_CIPHERTEXT_LEN]);

impl ShareCiphertext {
    /// Length of the encoding, in bytes.
    pub const LEN: usize = SHARE_CIPHERTEXT_LEN;

    /// Parses a share ciphertext: exact length, and an ephemeral key on the curve.
    pub fn parse(bytes: &[u8]) -> Result<Self, OprfError> {
        let array: [u8; SHARE_CIPHERTEXT_LEN] =
            bytes.try_into().map_err(|_| OprfError::WrongLength {
                what: "share_ciphertext",
                expected: SHARE_CIPHERTEXT_LEN,
                actual: bytes.len(),
            })?;
        parse_point(&array[..P256_POINT_LEN], "ephemeral_public_key")?;
        Ok(Self(array))
    }

    /// The 125-byte encoding.
    pub const fn as_bytes(&self) -> &[u8; SHARE_CIPHERTEXT_LEN] {
        &self.0
    }

    /// The ephemeral public key `E`, for the node's token to do ECDH with.
    pub fn ephemeral_public(&self) -> &[u8; P256_POINT_LEN] {
        self.0
            .first_chunk()
            .expect("a share ciphertext is longer than a point")
    }
}

impl TryFrom<Vec<u8>> for ShareCiphertext {
    type Error = OprfError;
    fn try_from(bytes: Vec<u8>) -> Result<Self, OprfError> {
        Self::parse(&bytes)
    }
}

impl From<ShareCiphertext> for Vec<u8> {
    fn from(c: ShareCiphertext) -> Self {
        c.0.to_vec()
    }
}

impl fmt::Debug for ShareCiphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShareCiphertext({})", hex::encode(self.0))
    }
}

/// The client encrypts `share` to a voter's share-receiving key, bound to `context` (whose
/// `node_id` and `commitment` should be the share's; a mismatch makes the node refuse it).
pub fn encrypt_share<R: RngCore + CryptoRng>(
    recipient: &P256PublicKey,
    share: &KeyShare,
    context: &ShareContext,
    rng: &mut R,
) -> ShareCiphertext {
    let ephemeral = p256::SecretKey::random(rng);
    let mut nonce = [0u8; SHARE_NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    encrypt_share_with(recipient, share, &context.to_bytes(), &ephemeral, &nonce)
}

/// [`encrypt_share`] with a given ephemeral key and nonce (test vectors).
pub(crate) fn encrypt_share_with(
    recipient: &P256PublicKey,
    share: &KeyShare,
    context: &[u8],
    ephemeral: &p256::SecretKey,
    nonce: &[u8; SHARE_NONCE_LEN],
) -> ShareCiphertext {
    seal_scalar_with(recipient, &share.to_bytes(), context, ephemeral, nonce)
}

/// Encrypts a 32-byte scalar encoding to `recipient` under `context`, with a fresh ephemeral
/// key and nonce: the layout of a share ciphertext, for any scalar a node sends another
/// (the pieces of a share repair).
pub(crate) fn seal_scalar<R: RngCore + CryptoRng>(
    recipient: &P256PublicKey,
    plaintext: &[u8; SCALAR_LEN],
    context: &[u8],
    rng: &mut R,
) -> ShareCiphertext {
    let ephemeral = p256::SecretKey::random(rng);
    let mut nonce = [0u8; SHARE_NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    seal_scalar_with(recipient, plaintext, context, &ephemeral, &nonce)
}

fn seal_scalar_with(
    recipient: &P256PublicKey,
    plaintext: &[u8; SCALAR_LEN],
    context: &[u8],
    ephemeral: &p256::SecretKey,
    nonce: &[u8; SHARE_NONCE_LEN],
) -> ShareCiphertext {
    let mut out = [0u8; SHARE_CIPHERTEXT_LEN];
    let e_public = ephemeral.public_key().to_encoded_point(false);
    // The uncompressed encoding of a point that is not the identity is 65 bytes.
    out[..NONCE_AT].copy_from_slice(e_public.as_bytes());
    let e_scalar = Zeroizing::new(ephemeral.to_nonzero_scalar());
    let shared = p256::ecdh::diffie_hellman(&*e_scalar, recipient.key().as_affine());
    let mut z = Zeroizing::new([0u8; 32]);
    z.copy_from_slice(shared.raw_secret_bytes());
    let ephemeral_bytes: [u8; P256_POINT_LEN] = out[..NONCE_AT]
        .try_into()
        .expect("the first 65 bytes are the point");
    let cipher = cipher(&z, &ephemeral_bytes, recipient.as_bytes(), context);
    out[NONCE_AT..BODY_AT].copy_from_slice(nonce);
    out[BODY_AT..TAG_AT].copy_from_slice(plaintext);
    // AES-GCM fails only for a plaintext or AAD beyond 2^36 bytes.
    let tag = cipher
        .encrypt_inout_detached(
            &Nonce::<Aes256Gcm>::from(*nonce),
            context,
            (&mut out[BODY_AT..TAG_AT]).into(),
        )
        .expect("32 bytes of plaintext");
    out[TAG_AT..].copy_from_slice(&tag);
    ShareCiphertext(out)
}

/// The node opens its share with `z`, the x-coordinate of `d * E` that its token computed
/// (see [`ShareCiphertext::ephemeral_public`]), its own public key and the context it
/// expects. It gets the share only if the ciphertext authenticates under that context and
/// the share matches `context.commitment` ([`share_matches`]).
pub fn open_share(
    z: &[u8; 32],
    ciphertext: &ShareCiphertext,
    recipient: &P256PublicKey,
    context: &ShareContext,
) -> Result<KeyShare, OprfError> {
    let share = open_share_with(
        z,
        ciphertext,
        recipient,
        &context.to_bytes(),
        context.node_id,
    )?;
    if !share_matches(&share, &context.commitment) {
        return Err(OprfError::ShareMismatch);
    }
    Ok(share)
}

/// [`open_share`] on context bytes, without the commitment check.
pub(crate) fn open_share_with(
    z: &[u8; 32],
    ciphertext: &ShareCiphertext,
    recipient: &P256PublicKey,
    context: &[u8],
    node_id: u64,
) -> Result<KeyShare, OprfError> {
    let plain = open_scalar(z, ciphertext, recipient, context)?;
    KeyShare::from_bytes(node_id, plain.as_ref())
}

/// Opens a ciphertext made by [`seal_scalar`] (or [`encrypt_share`]) under `context`: the
/// 32 plaintext bytes, only if it authenticates.
pub(crate) fn open_scalar(
    z: &[u8; 32],
    ciphertext: &ShareCiphertext,
    recipient: &P256PublicKey,
    context: &[u8],
) -> Result<Zeroizing<[u8; SCALAR_LEN]>, OprfError> {
    let bytes = ciphertext.as_bytes();
    let cipher = cipher(
        z,
        ciphertext.ephemeral_public(),
        recipient.as_bytes(),
        context,
    );
    let nonce: [u8; SHARE_NONCE_LEN] = bytes[NONCE_AT..BODY_AT].try_into().expect("fixed layout");
    let tag = Tag::try_from(&bytes[TAG_AT..]).expect("fixed layout");
    let mut plain = Zeroizing::new([0u8; SCALAR_LEN]);
    plain.copy_from_slice(&bytes[BODY_AT..TAG_AT]);
    cipher
        .decrypt_inout_detached(
            &Nonce::<Aes256Gcm>::from(nonce),
            context,
            plain.as_mut_slice().into(),
            &tag,
        )
        .map_err(|_| OprfError::ShareRejected)?;
    Ok(plain)
}

/// Whether `k_i * G` is `commitment` (constant-time comparison).
pub fn share_matches(share: &KeyShare, commitment: &Commitment) -> bool {
    share
        .commitment()
        .as_bytes()
        .ct_eq(commitment.as_bytes())
        .into()
}

/// AES-256-GCM under [`share_key`].
fn cipher(
    z: &[u8; 32],
    ephemeral: &[u8; P256_POINT_LEN],
    recipient: &[u8; P256_POINT_LEN],
    context: &[u8],
) -> Aes256Gcm {
    let key = share_key(z, ephemeral, recipient, context);
    Aes256Gcm::new(&(*key).into())
}

/// `HKDF-SHA256(salt = E || Pub, ikm = Z, info = "bkv/v2/share-key" || context)`, 32 bytes.
pub(crate) fn share_key(
    z: &[u8; 32],
    ephemeral: &[u8; P256_POINT_LEN],
    recipient: &[u8; P256_POINT_LEN],
    context: &[u8],
) -> Zeroizing<[u8; 32]> {
    let mut salt = [0u8; 2 * P256_POINT_LEN];
    salt[..P256_POINT_LEN].copy_from_slice(ephemeral);
    salt[P256_POINT_LEN..].copy_from_slice(recipient);
    let mut key = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's limit of 255 * 32.
    Hkdf::<Sha256>::new(Some(&salt), z)
        .expand_multi_info(&[SHARE_KEY_INFO, context], key.as_mut())
        .expect("32 bytes of output");
    key
}

const _: () = assert!(SHARE_CIPHERTEXT_LEN == TAG_AT + SHARE_TAG_LEN);
