//! "Parse, don't validate": each client message becomes a typed OPAQUE value here, once,
//! before the node commits anything. Only the exact canonical encoding is accepted, so a
//! message has one byte string (which `Command::ChargeGuess` hashes).

use opaque_ke::{
    CredentialFinalization, CredentialRequest, RegistrationRequest, RegistrationUpload,
};

use super::{ProtocolError, Suite};
use crate::protocol::{
    CREDENTIAL_FINALIZATION_LEN, CREDENTIAL_REQUEST_LEN, FormatError, MAX_SEALED_KEY_LEN,
    REGISTRATION_REQUEST_LEN, REGISTRATION_UPLOAD_LEN, SealedKey,
};

/// Parses `registration_request` (`RegisterStartRequest`).
pub fn parse_registration_request(
    bytes: &[u8],
) -> Result<RegistrationRequest<Suite>, ProtocolError> {
    parse(
        "registration_request",
        bytes,
        REGISTRATION_REQUEST_LEN,
        RegistrationRequest::deserialize,
        |m| m.serialize().as_slice() == bytes,
    )
}

/// Parses `registration_upload` (`RegisterFinishRequest`).
pub fn parse_registration_upload(bytes: &[u8]) -> Result<RegistrationUpload<Suite>, ProtocolError> {
    parse(
        "registration_upload",
        bytes,
        REGISTRATION_UPLOAD_LEN,
        RegistrationUpload::deserialize,
        |m| m.serialize().as_slice() == bytes,
    )
}

/// Parses `credential_request` (`RecoverStartRequest`).
pub fn parse_credential_request(bytes: &[u8]) -> Result<CredentialRequest<Suite>, ProtocolError> {
    parse(
        "credential_request",
        bytes,
        CREDENTIAL_REQUEST_LEN,
        CredentialRequest::deserialize,
        |m| m.serialize().as_slice() == bytes,
    )
}

/// Parses `credential_finalization` (`RecoverFinishRequest`).
pub fn parse_credential_finalization(
    bytes: &[u8],
) -> Result<CredentialFinalization<Suite>, ProtocolError> {
    parse(
        "credential_finalization",
        bytes,
        CREDENTIAL_FINALIZATION_LEN,
        CredentialFinalization::deserialize,
        |m| m.serialize().as_slice() == bytes,
    )
}

/// Parses `sealed_key` (`RegisterFinishRequest`): only its size can be checked.
pub fn parse_sealed_key(bytes: Vec<u8>) -> Result<SealedKey, ProtocolError> {
    SealedKey::parse(bytes).map_err(|e| match e {
        FormatError::TooLarge { .. } => ProtocolError::TooLarge {
            field: "sealed_key",
            max: MAX_SEALED_KEY_LEN,
        },
        _ => ProtocolError::Malformed {
            field: "sealed_key",
            reason: "too_short",
        },
    })
}

fn parse<T>(
    field: &'static str,
    bytes: &[u8],
    len: usize,
    deserialize: impl FnOnce(&[u8]) -> Result<T, opaque_ke::errors::ProtocolError>,
    canonical: impl FnOnce(&T) -> bool,
) -> Result<T, ProtocolError> {
    if bytes.len() > len {
        return Err(ProtocolError::TooLarge { field, max: len });
    }
    if bytes.len() < len {
        return Err(ProtocolError::Malformed {
            field,
            reason: "wrong_length",
        });
    }
    let value = deserialize(bytes).map_err(|_| ProtocolError::Malformed {
        field,
        reason: "invalid_encoding",
    })?;
    if !canonical(&value) {
        return Err(ProtocolError::Malformed {
            field,
            reason: "not_canonical",
        });
    }
    Ok(value)
}
