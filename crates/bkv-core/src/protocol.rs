//! Formats that the client and the server of bkv share: the backup key K, how a client seals
//! K under its OPAQUE export key, how the server transports the sealed key under the login's
//! session key, the OPAQUE identifiers and context, and the size limits of every field.
//!
//! # OPAQUE parameters
//!
//! Both sides run OPAQUE with the suite [`crate::opaque::Suite`] (ristretto255 OPRF, 3DH,
//! SHA-512; Argon2id as the client's key-stretching function) and with:
//! - credential identifier (server side, OPRF key derivation): the account id's bytes;
//! - identifiers: client = the account id's bytes, server = the server's static public key
//!   (opaque-ke's default), so an envelope is bound to its account;
//! - context: the constant [`CONTEXT`] `"bkv/v2"`, bound into the 3DH transcript of every
//!   login, so a bkv login cannot be spliced with any other protocol's (nor with a login of
//!   protocol v1, which ran OPAQUE on the password itself);
//! - password: the hardened password of protocol v2 (the 64-byte threshold OPRF output,
//!   see [`crate::oprf`]), never the password itself.
//!
//! # Byte formats
//!
//! - `sealed_key = nonce(12) || AES-256-GCM(HKDF-SHA512(export_key, "bkv/backup-key/v1"), K,
//!   aad = account)` ([`seal_backup_key`], [`open_backup_key`]).
//! - `transported_key = nonce(12) || AES-256-GCM(HKDF-SHA512(session_key,
//!   "bkv/transport/v1"), sealed_key, aad = account || version as u64 big-endian)`
//!   ([`seal_for_transport`], [`open_transported`]).
//!
//! HKDF runs without salt (the input keys are uniformly random OPAQUE outputs); nonces are 12
//! random bytes from the OS.

mod backup_key;
pub(crate) mod codec;
mod error;
mod key_sealing;
mod keys;
mod ksf;
mod sealed_key;

use opaque_ke::Identifiers;
use opaque_ke::generic_array::typenum::Unsigned;
use sha2::{Digest, Sha256};

use crate::ids::AccountId;
use crate::opaque::Suite;

pub use backup_key::BackupKey;
pub use error::FormatError;
pub use key_sealing::{open_backup_key, open_transported, seal_backup_key, seal_for_transport};
pub use keys::{ExportKey, SessionKey};
pub use ksf::{KsfError, KsfParams};
pub use sealed_key::SealedKey;

/// The OPAQUE context both sides bind every login to.
pub const CONTEXT: &[u8] = b"bkv/v2";

/// HKDF info of the key that seals K under the export key.
pub const BACKUP_KEY_INFO: &[u8] = b"bkv/backup-key/v1";

/// HKDF info of the key that transports `sealed_key` under the session key.
pub const TRANSPORT_INFO: &[u8] = b"bkv/transport/v1";

/// Length of the backup key K, in bytes.
pub const BACKUP_KEY_LEN: usize = 32;

/// Length of an AES-GCM nonce as written in front of our ciphertexts.
pub const NONCE_LEN: usize = 12;

/// Length of an AES-GCM tag.
pub const TAG_LEN: usize = 16;

/// What AES-GCM adds to a plaintext in our formats: nonce and tag.
pub const AEAD_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Largest `sealed_key` the vault accepts.
pub const MAX_SEALED_KEY_LEN: usize = 1024;

/// Smallest `sealed_key` the vault accepts: nonce, tag and at least one byte.
pub const MIN_SEALED_KEY_LEN: usize = AEAD_OVERHEAD + 1;

/// Length of a `sealed_key` made by [`seal_backup_key`] (a 32-byte K).
pub const SEALED_BACKUP_KEY_LEN: usize = AEAD_OVERHEAD + BACKUP_KEY_LEN;

/// Largest `transported_key`.
pub const MAX_TRANSPORTED_KEY_LEN: usize = MAX_SEALED_KEY_LEN + AEAD_OVERHEAD;

/// Largest recovery ticket the vault accepts back from a client.
pub const MAX_TICKET_LEN: usize = 4096;

/// Length of a serialized OPAQUE `RegistrationRequest`.
pub const REGISTRATION_REQUEST_LEN: usize =
    <opaque_ke::RegistrationRequestLen<Suite> as Unsigned>::USIZE;

/// Length of a serialized OPAQUE `RegistrationResponse`.
pub const REGISTRATION_RESPONSE_LEN: usize =
    <opaque_ke::RegistrationResponseLen<Suite> as Unsigned>::USIZE;

/// Length of a serialized OPAQUE `RegistrationUpload` (also the password file's length).
pub const REGISTRATION_UPLOAD_LEN: usize =
    <opaque_ke::RegistrationUploadLen<Suite> as Unsigned>::USIZE;

/// Length of a serialized OPAQUE `CredentialRequest`.
pub const CREDENTIAL_REQUEST_LEN: usize =
    <opaque_ke::CredentialRequestLen<Suite> as Unsigned>::USIZE;

/// Length of a serialized OPAQUE `CredentialResponse`.
pub const CREDENTIAL_RESPONSE_LEN: usize =
    <opaque_ke::CredentialResponseLen<Suite> as Unsigned>::USIZE;

/// Length of a serialized OPAQUE `CredentialFinalization`.
pub const CREDENTIAL_FINALIZATION_LEN: usize =
    <opaque_ke::CredentialFinalizationLen<Suite> as Unsigned>::USIZE;

/// The OPAQUE identifiers of a login or registration for `account` (see the module doc).
pub fn identifiers(account: &AccountId) -> Identifiers<'_> {
    Identifiers {
        client: Some(account.as_bytes()),
        server: None,
    }
}

/// SHA-256 of a serialized credential request, as bound into `Command::ChargeGuess`.
///
/// The server hashes the bytes it received after [`crate::opaque::parse_credential_request`]
/// accepted them, which checks that they are the canonical encoding: two encodings of one
/// request cannot give two hashes.
pub fn credential_request_hash(credential_request: &[u8]) -> [u8; 32] {
    Sha256::digest(credential_request).into()
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;
