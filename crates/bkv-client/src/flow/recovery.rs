//! Client side of recovery: blind the password, finish OPAQUE (the client learns here
//! whether the password was right), then open the transported key and the sealed key.

use std::fmt;

use bkv_core::ids::{AccountId, RecordVersion};
use bkv_core::opaque::Suite;
use bkv_core::protocol::{
    self, BackupKey, CONTEXT, CREDENTIAL_RESPONSE_LEN, ExportKey, SessionKey,
};
use opaque_ke::errors::ProtocolError as OpaqueError;
use opaque_ke::{ClientLogin, ClientLoginFinishParameters, CredentialResponse};
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};

use super::parse_server_message;
use crate::{ClientError, KsfParams};

/// A recovery in progress: holds the password until [`Recovery::finish`]. `Debug` shows
/// nothing of it.
pub struct Recovery {
    state: ClientLogin<Suite>,
    password: SecretString,
}

/// A login that verified on the client's side: the keys to open what `RecoverFinish`
/// returns. `Debug` shows the account only.
pub struct RecoverySession {
    account: AccountId,
    export_key: ExportKey,
    session_key: SessionKey,
}

impl Recovery {
    /// Starts a recovery: returns the state and `credential_request` for `RecoverStart`.
    pub fn start(password: SecretString) -> Result<(Self, Vec<u8>), ClientError> {
        let start = ClientLogin::<Suite>::start(&mut OsRng, password.expose_secret().as_bytes())
            .map_err(|_| ClientError::Internal("login start"))?;
        let request = start.message.serialize().to_vec();
        Ok((
            Self {
                state: start.state,
                password,
            },
            request,
        ))
    }

    /// Finishes OPAQUE with the server's `credential_response`, running Argon2id with `ksf`
    /// (the parameters used at registration). On success returns `credential_finalization`
    /// for `RecoverFinish` and the session that opens its answer; with a wrong password
    /// returns [`ClientError::WrongPassword`] and there is nothing to send.
    pub fn finish(
        self,
        credential_response: &[u8],
        account: &AccountId,
        ksf: &KsfParams,
    ) -> Result<(Vec<u8>, RecoverySession), ClientError> {
        let response = parse_server_message(
            "credential_response",
            credential_response,
            CREDENTIAL_RESPONSE_LEN,
            CredentialResponse::<Suite>::deserialize,
        )?;
        let argon2 = ksf.argon2()?;
        let mut finish = self
            .state
            .finish(
                &mut OsRng,
                self.password.expose_secret().as_bytes(),
                response,
                ClientLoginFinishParameters::new(
                    Some(CONTEXT),
                    protocol::identifiers(account),
                    Some(&argon2),
                ),
            )
            .map_err(|e| match e {
                OpaqueError::InvalidLoginError => ClientError::WrongPassword,
                OpaqueError::ReflectedValueError => ClientError::Malformed {
                    field: "credential_response",
                    reason: "reflected",
                },
                _ => ClientError::Internal("login finish"),
            })?;
        let finalization = finish.message.serialize().to_vec();
        let export_key = ExportKey::take_from(finish.export_key.as_mut_slice())
            .map_err(|_| ClientError::Internal("export key length"))?;
        let session_key = SessionKey::take_from(finish.session_key.as_mut_slice())
            .map_err(|_| ClientError::Internal("session key length"))?;
        Ok((
            finalization,
            RecoverySession {
                account: account.clone(),
                export_key,
                session_key,
            },
        ))
    }
}

impl RecoverySession {
    /// Opens `RecoverFinish`'s `transported_key` for record `version` (from the same
    /// response) and then the `sealed_key` inside it: the backup key.
    pub fn open(
        &self,
        transported_key: &[u8],
        version: RecordVersion,
    ) -> Result<BackupKey, ClientError> {
        let sealed_key =
            protocol::open_transported(&self.session_key, &self.account, version, transported_key)
                .map_err(|_| ClientError::KeyRejected {
                    what: "transported_key",
                })?;
        protocol::open_backup_key(&self.export_key, &self.account, sealed_key.as_bytes())
            .map_err(|_| ClientError::KeyRejected { what: "sealed_key" })
    }

    /// The account this session recovers.
    pub fn account(&self) -> &AccountId {
        &self.account
    }

    #[cfg(test)]
    pub(crate) fn keys(&self) -> (&ExportKey, &SessionKey) {
        (&self.export_key, &self.session_key)
    }
}

impl fmt::Debug for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Recovery(<redacted>)")
    }
}

impl fmt::Debug for RecoverySession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoverySession")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}
