//! The vault record inside an HSM-sealed blob: the OPAQUE password file, the client's
//! `sealed_key` and the guess limit, with a format-version byte, sealed with purpose `Record`
//! under [`Aad::record`].
//!
//! Plaintext layout (format 1): `version u8 = 1 || password_file (u32 len || bytes) ||
//! sealed_key (u32 len || bytes) || guess_limit u32`, big-endian.

use crate::ids::{AccountId, ClusterId, GuessLimit, RequestId};
use crate::opaque::{PasswordFile, ProtocolError};
use crate::protocol::codec::{DecodeError, Reader, Writer};
use crate::protocol::{MAX_SEALED_KEY_LEN, SealedKey};
use crate::seal::{Aad, SealPurpose, Sealer};

/// A record in clear, as it exists only in the node's memory between unsealing and use.
#[derive(Debug, Clone)]
pub struct RecordPlain {
    /// The OPAQUE password file (redacted in `Debug`).
    pub password_file: PasswordFile,
    /// K sealed by the client under its export key.
    pub sealed_key: SealedKey,
    /// Wrong guesses allowed before the record is destroyed.
    pub guess_limit: GuessLimit,
}

impl RecordPlain {
    /// The format written by [`RecordPlain::encode`].
    pub const FORMAT_VERSION: u8 = 1;

    /// The plaintext bytes, in a zeroizing buffer of exact size.
    pub fn encode(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let password_file = self.password_file.to_bytes();
        let sealed_key = self.sealed_key.as_bytes();
        let mut w = Writer::with_capacity(
            1 + Writer::bytes_len(password_file.len()) + Writer::bytes_len(sealed_key.len()) + 4,
        );
        w.u8(Self::FORMAT_VERSION)
            .bytes(&password_file)
            .bytes(sealed_key)
            .u32(self.guess_limit.get());
        w.finish()
    }

    /// Reads plaintext bytes written by [`RecordPlain::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let corrupt = |e: DecodeError| ProtocolError::Corrupt {
            what: "record",
            reason: match e {
                DecodeError::Truncated(what) | DecodeError::Invalid(what) => what,
                DecodeError::Trailing => "trailing bytes",
            },
        };
        let mut r = Reader::new(bytes);
        if r.u8("format version").map_err(corrupt)? != Self::FORMAT_VERSION {
            return Err(corrupt(DecodeError::Invalid("format version")));
        }
        let password_file = PasswordFile::from_bytes(
            r.bytes(PasswordFile::LEN, "password_file")
                .map_err(corrupt)?,
        )?;
        let sealed_key = SealedKey::parse(
            r.bytes(MAX_SEALED_KEY_LEN, "sealed_key")
                .map_err(corrupt)?
                .to_vec(),
        )
        .map_err(|_| corrupt(DecodeError::Invalid("sealed_key")))?;
        let guess_limit = GuessLimit::parse_max(r.u32("guess_limit").map_err(corrupt)?)
            .map_err(|_| corrupt(DecodeError::Invalid("guess_limit")))?;
        r.finish().map_err(corrupt)?;
        Ok(Self {
            password_file,
            sealed_key,
            guess_limit,
        })
    }
}

/// Seals a record for `Command::Stage` (purpose `Record`, AAD [`Aad::record`]).
pub async fn seal_record<S: Sealer>(
    sealer: &S,
    cluster: &ClusterId,
    account: &AccountId,
    request_id: &RequestId,
    record: &RecordPlain,
) -> Result<Vec<u8>, ProtocolError> {
    let plain = record.encode();
    let aad = Aad::record(cluster, account, request_id);
    Ok(sealer.seal(SealPurpose::Record, &aad, &plain).await?)
}

/// Unseals a record sealed by [`seal_record`] for the same cluster, account and request id.
pub async fn unseal_record<S: Sealer>(
    sealer: &S,
    cluster: &ClusterId,
    account: &AccountId,
    request_id: &RequestId,
    sealed: &[u8],
) -> Result<RecordPlain, ProtocolError> {
    let aad = Aad::record(cluster, account, request_id);
    let plain = sealer.unseal(SealPurpose::Record, &aad, sealed).await?;
    RecordPlain::decode(&plain)
}
