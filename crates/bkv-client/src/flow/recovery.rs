//! Client side of recovery (protocol v2): blind the OPRF input, check and combine the share
//! evaluations into the hardened password, finish OPAQUE on it (the client learns here
//! whether the password was right), sign the reset, then open the transported key and the
//! sealed key.

use std::collections::BTreeSet;
use std::fmt;

use bkv_core::ids::{AccountId, ChargeNumber, RecordVersion};
use bkv_core::opaque::Suite;
use bkv_core::oprf::{self, Blind, Commitment, DleqProof, EvaluatedElement, OprfInput};
use bkv_core::protocol::{
    self, BackupKey, CONTEXT, CREDENTIAL_RESPONSE_LEN, ExportKey, KsfParams, SessionKey,
};
use bkv_core::reset::reset_message;
use opaque_ke::errors::ProtocolError as OpaqueError;
use opaque_ke::{ClientLogin, ClientLoginFinishParameters, CredentialResponse};
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};

use super::parse_server_message;
use crate::ClientError;

/// A recovery in progress before the evaluations: holds the OPRF input and its blind.
/// `Debug` shows nothing of it.
pub struct Recovery {
    input: OprfInput,
    blind: Blind,
}

/// One share evaluation as `RecoverStart` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareEvaluation {
    /// The share-holder.
    pub node_id: u64,
    /// Its commitment `K_i`.
    pub commitment: Vec<u8>,
    /// `Z_i`.
    pub evaluated_element: Vec<u8>,
    /// DLEQ proof.
    pub proof: Vec<u8>,
}

impl From<&bkv_proto::v1::ShareEvaluation> for ShareEvaluation {
    fn from(e: &bkv_proto::v1::ShareEvaluation) -> Self {
        Self {
            node_id: e.node_id,
            commitment: e.commitment.clone(),
            evaluated_element: e.evaluated_element.clone(),
            proof: e.proof.clone(),
        }
    }
}

/// A recovery with its hardened password, between `RecoverLogin` and its answer.
pub struct Login {
    state: ClientLogin<Suite>,
    hardened: oprf::HardenedPassword,
}

/// A login that verified on the client's side: the keys to open what `RecoverFinish`
/// returns. `Debug` shows the account only.
pub struct RecoverySession {
    account: AccountId,
    export_key: ExportKey,
    session_key: SessionKey,
}

impl Recovery {
    /// Starts a recovery: blinds the OPRF input of `account` and `password`; returns the
    /// state and `blinded_element` for `RecoverStart`.
    pub fn start(
        account: &AccountId,
        password: SecretString,
    ) -> Result<(Self, Vec<u8>), ClientError> {
        let input = oprf::oprf_input(account, password.expose_secret().as_bytes())
            .map_err(|_| ClientError::PasswordTooLong)?;
        let (blind, blinded) = Blind::start(&input, &mut OsRng)
            .map_err(|_| ClientError::Internal("blinding the password"))?;
        Ok((Self { input, blind }, blinded.as_bytes().to_vec()))
    }

    /// Checks `threshold` evaluations (distinct holders, each proof against its commitment),
    /// combines them, unblinds, and starts OPAQUE login on the hardened password: returns the
    /// state and `credential_request` for `RecoverLogin`.
    pub fn harden(
        self,
        blinded_element: &[u8],
        threshold: u32,
        evaluations: &[ShareEvaluation],
    ) -> Result<(Login, Vec<u8>), ClientError> {
        let blinded = oprf::BlindedElement::parse(blinded_element)
            .map_err(|_| ClientError::Internal("own blinded element"))?;
        if threshold == 0 || evaluations.len() != threshold as usize {
            return Err(ClientError::BadEvaluations(
                "not exactly `threshold` evaluations",
            ));
        }
        let holders: BTreeSet<u64> = evaluations.iter().map(|e| e.node_id).collect();
        if holders.len() != evaluations.len() || holders.contains(&0) {
            return Err(ClientError::BadEvaluations(
                "a share-holder is named twice, or as 0",
            ));
        }
        let mut points = Vec::with_capacity(evaluations.len());
        for e in evaluations {
            let commitment = Commitment::parse(&e.commitment)
                .map_err(|_| ClientError::BadEvaluations("a commitment does not parse"))?;
            let element = EvaluatedElement::parse(&e.evaluated_element)
                .map_err(|_| ClientError::BadEvaluations("an evaluation does not parse"))?;
            let proof = DleqProof::parse(&e.proof)
                .map_err(|_| ClientError::BadEvaluations("a proof does not parse"))?;
            oprf::verify_evaluation(&commitment, &blinded, &element, &proof)
                .map_err(|_| ClientError::BadEvaluations("a proof does not verify"))?;
            points.push((e.node_id, element));
        }
        let combined = oprf::combine(&points)
            .map_err(|_| ClientError::BadEvaluations("the evaluations do not combine"))?;
        let hardened = self.blind.finish(&self.input, &combined);
        let start = ClientLogin::<Suite>::start(&mut OsRng, hardened.expose())
            .map_err(|_| ClientError::Internal("login start"))?;
        let request = start.message.serialize().to_vec();
        Ok((
            Login {
                state: start.state,
                hardened,
            },
            request,
        ))
    }
}

/// What `RecoverFinish` sends, besides the ticket.
pub struct LoginFinished {
    /// OPAQUE `CredentialFinalization`.
    pub credential_finalization: Vec<u8>,
    /// The reset signature.
    pub reset_signature: [u8; 64],
    /// The keys that open `RecoverFinish`'s answer.
    pub session: RecoverySession,
}

impl Login {
    /// Finishes OPAQUE with the server's `credential_response`, running Argon2id with `ksf`
    /// (the parameters `RecoverStart` returned from the record), and signs the reset of
    /// `charge` on `version`. With a wrong password returns [`ClientError::WrongPassword`]
    /// and there is nothing to send.
    pub fn finish(
        self,
        credential_response: &[u8],
        account: &AccountId,
        ksf: &KsfParams,
        cluster_name: &str,
        version: RecordVersion,
        charge: ChargeNumber,
    ) -> Result<LoginFinished, ClientError> {
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
                self.hardened.expose(),
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
        let credential_finalization = finish.message.serialize().to_vec();
        let export_key = ExportKey::take_from(finish.export_key.as_mut_slice())
            .map_err(|_| ClientError::Internal("export key length"))?;
        let session_key = SessionKey::take_from(finish.session_key.as_mut_slice())
            .map_err(|_| ClientError::Internal("session key length"))?;
        let reset_signature = oprf::ResetKey::derive(&export_key).sign(&reset_message(
            cluster_name,
            account,
            version,
            charge,
        ));
        Ok(LoginFinished {
            credential_finalization,
            reset_signature,
            session: RecoverySession {
                account: account.clone(),
                export_key,
                session_key,
            },
        })
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

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Login(<redacted>)")
    }
}

impl fmt::Debug for LoginFinished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginFinished").finish_non_exhaustive()
    }
}

impl fmt::Debug for RecoverySession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoverySession")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}
