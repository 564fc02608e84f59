//! A cluster's voters in software (node id, share-receiving key), for the tests of share
//! repair and refresh, which encrypt to them and open with their keys.

use zeroize::Zeroizing;

use super::super::{P256PublicKey, ShareCiphertext, SoftwareShareKey};

/// Voters by node id, each with a software share-receiving key.
pub(crate) struct Voters(Vec<(u64, SoftwareShareKey)>);

impl Voters {
    /// Fresh keys for `ids`.
    pub(crate) fn new(ids: &[u64], r: &mut rand::rngs::StdRng) -> Self {
        Self(
            ids.iter()
                .map(|id| (*id, SoftwareShareKey::generate(r)))
                .collect(),
        )
    }

    /// The key of voter `id`.
    pub(crate) fn key(&self, id: u64) -> &SoftwareShareKey {
        &self.0.iter().find(|(i, _)| *i == id).expect("a voter").1
    }

    /// The public key of voter `id`.
    pub(crate) fn public(&self, id: u64) -> P256PublicKey {
        self.key(id).public()
    }

    /// The ECDH secrets voter `id`'s token would compute for `cts`.
    pub(crate) fn zs(&self, id: u64, cts: &[ShareCiphertext]) -> Vec<Zeroizing<[u8; 32]>> {
        cts.iter()
            .map(|c| {
                self.key(id)
                    .diffie_hellman(c.ephemeral_public())
                    .expect("ecdh")
            })
            .collect()
    }
}
