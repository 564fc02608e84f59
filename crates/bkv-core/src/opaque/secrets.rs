//! The cluster's OPAQUE server secrets (`ServerSetup`: OPRF seed and the server's static key
//! pair), and how they are sealed by the HSM for the `Bootstrap` command.

use std::fmt;

use opaque_ke::ServerSetup;
use rand::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::{ProtocolError, Suite};
use crate::ids::ClusterId;
use crate::seal::{Aad, SealPurpose, Sealer};

/// The cluster's one OPAQUE `ServerSetup`. Its secret parts (OPRF seed, private key) are
/// zeroized on drop by opaque-ke's own types; `Debug` shows nothing.
pub struct ServerSecrets(ServerSetup<Suite>);

impl ServerSecrets {
    /// Makes fresh server secrets (at `bkv admin init`).
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self(ServerSetup::new(rng))
    }

    /// The serialized setup, in a zeroizing buffer.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut array = self.0.serialize();
        let bytes = Zeroizing::new(array.to_vec());
        array.as_mut_slice().zeroize();
        bytes
    }

    /// Reads a serialized setup.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let corrupt = |reason| ProtocolError::Corrupt {
            what: "server setup",
            reason,
        };
        let setup = ServerSetup::<Suite>::deserialize(bytes).map_err(|_| corrupt("encoding"))?;
        let secrets = Self(setup);
        // One encoding only: no trailing bytes.
        if !bool::from(secrets.to_bytes().as_slice().ct_eq(bytes)) {
            return Err(corrupt("not_canonical"));
        }
        Ok(secrets)
    }

    /// Seals the setup for `Command::Bootstrap` (purpose `ServerSetup`, bound to the
    /// cluster).
    pub async fn seal<S: Sealer>(
        &self,
        sealer: &S,
        cluster: &ClusterId,
    ) -> Result<Vec<u8>, ProtocolError> {
        let plain = self.to_bytes();
        let aad = Aad::server_setup(cluster);
        Ok(sealer.seal(SealPurpose::ServerSetup, &aad, &plain).await?)
    }

    /// Unseals the setup of `cluster` (at node start).
    pub async fn unseal<S: Sealer>(
        sealer: &S,
        cluster: &ClusterId,
        sealed: &[u8],
    ) -> Result<Self, ProtocolError> {
        let aad = Aad::server_setup(cluster);
        let plain = sealer
            .unseal(SealPurpose::ServerSetup, &aad, sealed)
            .await?;
        Self::from_bytes(&plain)
    }

    /// The OPAQUE `ServerSetup` itself (what a node serves logins with).
    pub fn setup(&self) -> &ServerSetup<Suite> {
        &self.0
    }
}

impl fmt::Debug for ServerSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerSecrets(<redacted>)")
    }
}
