//! The client's OPAQUE flows, without I/O: each step takes the server's bytes and gives the
//! bytes to send next.
//!
//! Registration: [`Registration::start`] -> `RegisterStart` -> [`Registration::finish`] ->
//! `RegisterFinish` (then `Activate`). Recovery: [`Recovery::start`] -> `RecoverStart` ->
//! [`Recovery::finish`] (fails with [`crate::ClientError::WrongPassword`] before anything is
//! sent) -> `RecoverFinish` -> [`RecoverySession::open`] gives the [`crate::BackupKey`].
//!
//! OPAQUE identifiers and context are those of [`bkv_core::protocol`].

mod recovery;
mod registration;

pub use recovery::{Recovery, RecoverySession};
pub use registration::{RegisterUpload, Registration};

use crate::ClientError;

/// Parses a server message of a fixed length, mapping opaque-ke's errors to typed ones.
fn parse_server_message<T>(
    field: &'static str,
    bytes: &[u8],
    len: usize,
    deserialize: impl FnOnce(&[u8]) -> Result<T, opaque_ke::errors::ProtocolError>,
) -> Result<T, ClientError> {
    if bytes.len() != len {
        return Err(ClientError::Malformed {
            field,
            reason: "wrong_length",
        });
    }
    deserialize(bytes).map_err(|_| ClientError::Malformed {
        field,
        reason: "invalid_encoding",
    })
}

#[cfg(test)]
mod tests;
