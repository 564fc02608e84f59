//! The two client-visible AES-256-GCM layers: K sealed under the export key (`sealed_key`),
//! and `sealed_key` transported under the session key (`transported_key`).
//!
//! Layout of both: `nonce(12) || ciphertext || tag(16)`. Secret plaintexts are encrypted and
//! decrypted in place in buffers that are zeroized, so no stray copy of K is left behind.

use aes_gcm::aead::{AeadInOut, KeyInit, Nonce};
use aes_gcm::{Aes256Gcm, Tag};
use hkdf::Hkdf;
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::Sha512;
use zeroize::Zeroizing;

use super::{
    AEAD_OVERHEAD, BACKUP_KEY_INFO, BackupKey, ExportKey, FormatError, MAX_SEALED_KEY_LEN,
    MAX_TRANSPORTED_KEY_LEN, NONCE_LEN, SealedKey, SessionKey, TAG_LEN, TRANSPORT_INFO,
};
use crate::ids::{AccountId, RecordVersion};

/// Seals K for the vault: `nonce || AES-256-GCM(HKDF-SHA512(export_key, "bkv/backup-key/v1"),
/// K, aad = account)`.
pub fn seal_backup_key(
    export_key: &ExportKey,
    account: &AccountId,
    key: &BackupKey,
) -> Result<SealedKey, FormatError> {
    let cipher = cipher(export_key.expose(), BACKUP_KEY_INFO)?;
    let sealed = encrypt(&cipher, account.as_bytes(), key.expose())?;
    SealedKey::parse(sealed)
}

/// Opens a `sealed_key` made by [`seal_backup_key`] with the same export key and account.
pub fn open_backup_key(
    export_key: &ExportKey,
    account: &AccountId,
    sealed_key: &[u8],
) -> Result<BackupKey, FormatError> {
    check_len(sealed_key, MAX_SEALED_KEY_LEN)?;
    let cipher = cipher(export_key.expose(), BACKUP_KEY_INFO)?;
    let plain = decrypt(&cipher, account.as_bytes(), sealed_key)?;
    BackupKey::from_slice(&plain)
}

/// Encrypts `sealed_key` for the client of one login: `nonce || AES-256-GCM(
/// HKDF-SHA512(session_key, "bkv/transport/v1"), sealed_key, aad = account || version)`.
pub fn seal_for_transport(
    session_key: &SessionKey,
    account: &AccountId,
    version: crate::ids::RecordVersion,
    sealed_key: &SealedKey,
) -> Result<Vec<u8>, FormatError> {
    let cipher = cipher(session_key.expose(), TRANSPORT_INFO)?;
    encrypt(
        &cipher,
        &transport_aad(account, version),
        sealed_key.as_bytes(),
    )
}

/// Opens a `transported_key` made by [`seal_for_transport`]: gives the `sealed_key` back.
pub fn open_transported(
    session_key: &SessionKey,
    account: &AccountId,
    version: RecordVersion,
    transported_key: &[u8],
) -> Result<SealedKey, FormatError> {
    check_len(transported_key, MAX_TRANSPORTED_KEY_LEN)?;
    let cipher = cipher(session_key.expose(), TRANSPORT_INFO)?;
    let plain = decrypt(&cipher, &transport_aad(account, version), transported_key)?;
    SealedKey::parse(plain.to_vec())
}

pub(crate) fn transport_aad(account: &AccountId, version: RecordVersion) -> Vec<u8> {
    let mut aad = Vec::with_capacity(account.as_bytes().len() + 8);
    aad.extend_from_slice(account.as_bytes());
    aad.extend_from_slice(&version.get().to_be_bytes());
    aad
}

fn check_len(bytes: &[u8], max: usize) -> Result<(), FormatError> {
    if bytes.len() > max {
        return Err(FormatError::TooLarge {
            max,
            actual: bytes.len(),
        });
    }
    if bytes.len() < AEAD_OVERHEAD {
        return Err(FormatError::TooShort {
            min: AEAD_OVERHEAD,
            actual: bytes.len(),
        });
    }
    Ok(())
}

/// AES-256-GCM under `HKDF-SHA512(ikm, info)` (no salt).
fn cipher(ikm: &[u8], info: &[u8]) -> Result<Aes256Gcm, FormatError> {
    let mut okm = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha512>::new(None, ikm)
        .expand(info, okm.as_mut())
        .map_err(|_| FormatError::Internal("hkdf expand"))?;
    Aes256Gcm::new_from_slice(okm.as_ref()).map_err(|_| FormatError::Internal("aes key length"))
}

/// `nonce || ciphertext || tag` with a random nonce, encrypting in the output buffer itself.
fn encrypt(cipher: &Aes256Gcm, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, FormatError> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    encrypt_with(cipher, nonce, aad, plaintext)
}

/// [`seal_backup_key`] (`info` [`BACKUP_KEY_INFO`], `aad` the account) or
/// [`seal_for_transport`] (`info` [`TRANSPORT_INFO`], `aad` account and version) with a
/// given nonce, for the test vectors.
#[cfg(test)]
pub(crate) fn seal_with_nonce(
    ikm: &[u8],
    info: &[u8],
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, FormatError> {
    encrypt_with(&cipher(ikm, info)?, nonce, aad, plaintext)
}

/// `nonce || ciphertext || tag`, encrypting in the output buffer itself.
fn encrypt_with(
    cipher: &Aes256Gcm,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::with_capacity(plaintext.len() + AEAD_OVERHEAD);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_inout_detached(
            &Nonce::<Aes256Gcm>::from(nonce),
            aad,
            (&mut out[NONCE_LEN..]).into(),
        )
        .map_err(|_| FormatError::Internal("aes-gcm encrypt"))?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Checks and decrypts `nonce || ciphertext || tag` into a zeroizing buffer. The caller has
/// checked that `sealed` holds at least a nonce and a tag.
fn decrypt(
    cipher: &Aes256Gcm,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, FormatError> {
    let too_short = || FormatError::TooShort {
        min: AEAD_OVERHEAD,
        actual: sealed.len(),
    };
    let (nonce, rest) = sealed.split_at_checked(NONCE_LEN).ok_or_else(too_short)?;
    let body_len = rest.len().checked_sub(TAG_LEN).ok_or_else(too_short)?;
    let (body, tag) = rest.split_at(body_len);
    let nonce = Nonce::<Aes256Gcm>::try_from(nonce).map_err(|_| too_short())?;
    let tag = Tag::try_from(tag).map_err(|_| too_short())?;
    let mut plain = Zeroizing::new(body.to_vec());
    cipher
        .decrypt_inout_detached(&nonce, aad, plain.as_mut_slice().into(), &tag)
        .map_err(|_| FormatError::Rejected)?;
    Ok(plain)
}
