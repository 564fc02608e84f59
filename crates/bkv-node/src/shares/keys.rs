//! The node's token as a share-holder's keys: ECDH with its share-receiving key, and its own
//! share-sealing key, each operation timed and counted like the other HSM operations.

use std::time::Instant;

use bkv_vault::VaultError;
use bkv_vault::holder::ShareKeys;
use zeroize::Zeroizing;

use crate::sealer::MeteredSealer;

fn hsm(e: impl std::fmt::Display) -> VaultError {
    VaultError::Internal(format!("HSM: {e}"))
}

impl ShareKeys for MeteredSealer {
    async fn ecdh(&self, ephemeral: &[u8; 65]) -> Result<Zeroizing<[u8; 32]>, VaultError> {
        let started = Instant::now();
        let result = self.hsm().share_ecdh(ephemeral).await;
        self.metrics()
            .hsm_call("share_ecdh", started.elapsed(), result.is_err());
        result.map_err(hsm)
    }

    async fn seal_share(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
        let started = Instant::now();
        let result = self.hsm().seal_share(aad, plaintext).await;
        self.metrics()
            .hsm_call("seal_share", started.elapsed(), result.is_err());
        result.map_err(hsm)
    }

    async fn unseal_share(
        &self,
        aad: &[u8],
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let started = Instant::now();
        let result = self.hsm().unseal_share(aad, blob).await;
        self.metrics()
            .hsm_call("unseal_share", started.elapsed(), result.is_err());
        result.map_err(hsm)
    }
}
