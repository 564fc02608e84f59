//! The client's protocol v2 flows, without I/O: each step takes the server's bytes and gives
//! the bytes to send next.
//!
//! Registration: [`Registration::start`] (a fresh OPRF key hardens the password) ->
//! `RegisterStart` -> [`Registration::finish`] (checks the signed share map, splits the OPRF
//! key over it) -> `RegisterFinish` (then `Activate`). Recovery: [`Recovery::start`] (blinds)
//! -> `RecoverStart` -> [`Recovery::harden`] (checks and combines the share evaluations) ->
//! `RecoverLogin` -> [`Login::finish`] (fails with [`crate::ClientError::WrongPassword`]
//! before anything more is sent) -> `RecoverFinish` -> [`RecoverySession::open`] gives the
//! [`crate::BackupKey`].
//!
//! OPAQUE identifiers and context are those of [`bkv_core::protocol`]; the threshold OPRF is
//! [`bkv_core::oprf`].

mod recovery;
mod registration;

pub use recovery::{Login, LoginFinished, Recovery, RecoverySession, ShareEvaluation};
pub use registration::{
    ClusterTrust, RegisterStarted, RegisterUpload, Registration, ShareUpload, check_share_map,
};

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
