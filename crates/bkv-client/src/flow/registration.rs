//! Client side of registration: blind the password, then build the upload and seal K under
//! the export key.

use std::fmt;

use bkv_core::ids::AccountId;
use bkv_core::opaque::Suite;
use bkv_core::protocol::{self, BackupKey, ExportKey, REGISTRATION_RESPONSE_LEN};
use opaque_ke::errors::ProtocolError as OpaqueError;
use opaque_ke::{ClientRegistration, ClientRegistrationFinishParameters, RegistrationResponse};
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};

use super::parse_server_message;
use crate::{ClientError, KsfParams};

/// A registration in progress: holds the password until [`Registration::finish`]. `Debug`
/// shows nothing of it.
pub struct Registration {
    state: ClientRegistration<Suite>,
    password: SecretString,
}

/// What `RegisterFinish` sends, besides the client's `request_id` and guess limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterUpload {
    /// Serialized OPAQUE `RegistrationUpload`.
    pub registration_upload: Vec<u8>,
    /// K sealed under this registration's export key.
    pub sealed_key: Vec<u8>,
}

impl Registration {
    /// Starts a registration: returns the state and `registration_request` for
    /// `RegisterStart`.
    pub fn start(password: SecretString) -> Result<(Self, Vec<u8>), ClientError> {
        let start =
            ClientRegistration::<Suite>::start(&mut OsRng, password.expose_secret().as_bytes())
                .map_err(|_| ClientError::Internal("registration start"))?;
        let request = start.message.serialize().to_vec();
        Ok((
            Self {
                state: start.state,
                password,
            },
            request,
        ))
    }

    /// Finishes with the server's `registration_response`: runs Argon2id with `ksf`, builds
    /// the upload and seals `key` under the export key, bound to `account`.
    pub fn finish(
        self,
        registration_response: &[u8],
        account: &AccountId,
        key: &BackupKey,
        ksf: &KsfParams,
    ) -> Result<RegisterUpload, ClientError> {
        let response = parse_server_message(
            "registration_response",
            registration_response,
            REGISTRATION_RESPONSE_LEN,
            RegistrationResponse::<Suite>::deserialize,
        )?;
        let argon2 = ksf.argon2()?;
        let finish = self
            .state
            .finish(
                &mut OsRng,
                self.password.expose_secret().as_bytes(),
                response,
                ClientRegistrationFinishParameters::new(
                    protocol::identifiers(account),
                    Some(&argon2),
                ),
            )
            .map_err(|e| match e {
                OpaqueError::ReflectedValueError => ClientError::Malformed {
                    field: "registration_response",
                    reason: "reflected",
                },
                _ => ClientError::Internal("registration finish"),
            })?;
        let registration_upload = finish.message.serialize().to_vec();
        let mut export = finish.export_key;
        let export_key = ExportKey::take_from(export.as_mut_slice())
            .map_err(|_| ClientError::Internal("export key length"))?;
        let sealed_key = protocol::seal_backup_key(&export_key, account, key)
            .map_err(|_| ClientError::Internal("sealing the backup key"))?;
        Ok(RegisterUpload {
            registration_upload,
            sealed_key: sealed_key.into_bytes(),
        })
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Registration(<redacted>)")
    }
}
