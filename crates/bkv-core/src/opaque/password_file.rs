//! The OPAQUE password file of one registration, as the server keeps it inside a record.

use std::fmt;

use opaque_ke::ServerRegistration;
use zeroize::{Zeroize, Zeroizing};

use super::{ProtocolError, Suite};
use crate::protocol::REGISTRATION_UPLOAD_LEN;

/// An OPAQUE password file (`ServerRegistration`): the client's public key, masking key and
/// envelope. About as sensitive as a password hash, so it only leaves the node sealed by the
/// HSM, and `Debug` shows nothing of it.
#[derive(Clone)]
pub struct PasswordFile(pub(crate) ServerRegistration<Suite>);

impl PasswordFile {
    /// Length of the serialized file.
    pub const LEN: usize = REGISTRATION_UPLOAD_LEN;

    /// The serialized file, in a zeroizing buffer.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut array = self.0.serialize();
        let bytes = Zeroizing::new(array.to_vec());
        array.as_mut_slice().zeroize();
        bytes
    }

    /// Reads a serialized file (from an unsealed record).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProtocolError> {
        if bytes.len() != Self::LEN {
            return Err(ProtocolError::Corrupt {
                what: "record",
                reason: "password_file length",
            });
        }
        ServerRegistration::deserialize(bytes)
            .map(Self)
            .map_err(|_| ProtocolError::Corrupt {
                what: "record",
                reason: "password_file",
            })
    }
}

impl fmt::Debug for PasswordFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordFile(<redacted>)")
    }
}
