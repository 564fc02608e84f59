//! The OPAQUE server of bkv, without I/O: it reaches the HSM only through [`Sealer`].
//!
//! The node calls, in order:
//! - `parse_*` on every client message before it commits anything, so a malformed message
//!   never burns a guess ([`parse_registration_request`], [`parse_registration_upload`],
//!   [`parse_sealed_key`], [`parse_credential_request`], [`parse_credential_finalization`]);
//! - [`registration_start`] (stateless) and [`record_from_upload`] then
//!   [`crate::record::seal_record`] for the `Stage` command;
//! - after `ChargeGuess` is committed, [`login_start`] with the [`ChargedRecord`];
//! - [`login_finish`] with the ticket, then commits `ResetGuesses` (or `Destroy` on
//!   [`ProtocolError::WrongPassword`] with no guess left) and releases `transported_key` only
//!   if the record is still live.
//!
//! OPAQUE identifiers and context are fixed in [`crate::protocol`].
//!
//! [`Sealer`]: crate::seal::Sealer

mod error;
mod login;
mod parse;
mod password_file;
mod registration;
mod secrets;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;

use opaque_ke::CipherSuite;

pub use error::ProtocolError;
pub use login::{ChargedRecord, LoginFinished, LoginStarted, login_finish, login_start};
pub use parse::{
    parse_credential_finalization, parse_credential_request, parse_registration_request,
    parse_registration_upload, parse_sealed_key,
};
pub use password_file::PasswordFile;
pub use registration::{record_from_upload, registration_start};
pub use secrets::ServerSecrets;

/// bkv's one OPAQUE cipher suite: ristretto255 OPRF, 3DH over ristretto255 with SHA-512, and
/// Argon2id as the client's key-stretching function (its parameters are the client's choice;
/// the server never runs it).
#[derive(Debug, Clone, Copy)]
pub struct Suite;

impl CipherSuite for Suite {
    type OprfCs = opaque_ke::Ristretto255;
    type KeyExchange = opaque_ke::TripleDh<opaque_ke::Ristretto255, sha2::Sha512>;
    type Ksf = argon2::Argon2<'static>;
}

#[cfg(test)]
mod tests;
