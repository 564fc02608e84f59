//! Server side of OPAQUE registration: the stateless response, and the record made from the
//! client's upload.

use opaque_ke::{RegistrationRequest, RegistrationUpload, ServerRegistration};

use super::{PasswordFile, ProtocolError, ServerSecrets, Suite};
use crate::ids::{AccountId, GuessLimit};
use crate::protocol::SealedKey;
use crate::record::RecordPlain;

/// Answers `RegisterStart`: the serialized `RegistrationResponse` for `account` (the
/// credential identifier is the account's bytes). Stateless.
pub fn registration_start(
    secrets: &ServerSecrets,
    account: &AccountId,
    request: RegistrationRequest<Suite>,
) -> Result<Vec<u8>, ProtocolError> {
    let start = ServerRegistration::<Suite>::start(secrets.setup(), request, account.as_bytes())
        .map_err(|_| ProtocolError::Internal("registration start"))?;
    Ok(start.message.serialize().to_vec())
}

/// Builds the record of `RegisterFinish` from the parsed upload, `sealed_key` and the guess
/// limit the node resolved (the request's, or the cluster default). Seal it with
/// [`crate::record::seal_record`].
pub fn record_from_upload(
    upload: RegistrationUpload<Suite>,
    sealed_key: SealedKey,
    guess_limit: GuessLimit,
) -> RecordPlain {
    RecordPlain {
        password_file: PasswordFile(ServerRegistration::finish(upload)),
        sealed_key,
        guess_limit,
    }
}
