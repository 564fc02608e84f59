//! Software share-holders for the in-memory replica: a P-256 share-receiving key and an
//! AES-256-GCM share-sealing key in process memory, ledgers in a map. They run the node's own
//! share-holder rules (`bkv_vault::holder`); only the keys and the disk are stand-ins.
//!
//! NOT a node's token: for tests and benchmarks of the layers above.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use bkv_core::ledger::ShareLedger;
use bkv_core::oprf::P256PublicKey;
use bkv_core::{AccountId, RecordVersion, VaultState};
use bkv_vault::VaultError;
use bkv_vault::holder::{AppliedState, LedgerStore, ShareHolder, ShareId, ShareKeys};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use rand::RngCore as _;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use crate::replica::Applied;

/// A software share-holder of a [`MemoryReplica`].
pub type SoftHolder = ShareHolder<SoftKeys, MemoryLedgers, ReplicaState>;

/// Share keys in process memory.
pub struct SoftKeys {
    receive: p256::SecretKey,
    seal: Aes256Gcm,
}

impl std::fmt::Debug for SoftKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SoftKeys(<redacted>)")
    }
}

impl SoftKeys {
    /// Fresh random keys.
    pub fn generate() -> Self {
        let mut seal_key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(seal_key.as_mut());
        Self {
            receive: p256::SecretKey::random(&mut OsRng),
            seal: Aes256Gcm::new(<&aes_gcm::Key<Aes256Gcm>>::from(&*seal_key)),
        }
    }

    /// The share-receiving public key, SEC1 uncompressed.
    pub fn receive_public(&self) -> [u8; 65] {
        let point = self.receive.public_key().to_encoded_point(false);
        let mut out = [0u8; 65];
        out.copy_from_slice(point.as_bytes());
        out
    }

    /// The share-receiving public key, parsed.
    pub fn receive_key(&self) -> P256PublicKey {
        // Our own point: always on the curve.
        P256PublicKey::parse(&self.receive_public()).expect("a P-256 public key parses")
    }
}

fn internal(what: &str) -> VaultError {
    VaultError::Internal(format!("software share key: {what}"))
}

impl ShareKeys for SoftKeys {
    async fn ecdh(&self, ephemeral: &[u8; 65]) -> Result<Zeroizing<[u8; 32]>, VaultError> {
        let peer = p256::PublicKey::from_sec1_bytes(ephemeral)
            .map_err(|_| VaultError::invalid("ephemeral", "not a P-256 point"))?;
        let shared = p256::ecdh::diffie_hellman(self.receive.to_nonzero_scalar(), peer.as_affine());
        let mut z = Zeroizing::new([0u8; 32]);
        z.copy_from_slice(shared.raw_secret_bytes());
        Ok(z)
    }

    async fn seal_share(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let mut out = nonce.to_vec();
        let sealed = self
            .seal
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| internal("seal"))?;
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    async fn unseal_share(
        &self,
        aad: &[u8],
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        if blob.len() < 12 {
            return Err(internal("short blob"));
        }
        let (nonce, sealed) = blob.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| internal("nonce"))?;
        self.seal
            .decrypt(&Nonce::from(nonce), Payload { msg: sealed, aad })
            .map(Zeroizing::new)
            .map_err(|_| internal("blob rejected"))
    }
}

/// Ledgers in a map, with each record's latest: nothing is durable, so flushing does
/// nothing.
#[derive(Debug, Clone, Default)]
pub struct MemoryLedgers(Arc<Mutex<Ledgers>>);

#[derive(Debug, Default)]
struct Ledgers {
    by_id: BTreeMap<ShareId, ShareLedger>,
    latest: BTreeMap<(AccountId, RecordVersion), ShareId>,
}

impl MemoryLedgers {
    fn lock(&self) -> std::sync::MutexGuard<'_, Ledgers> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl LedgerStore for MemoryLedgers {
    fn load(&self, id: &ShareId) -> Result<Option<ShareLedger>, VaultError> {
        Ok(self.lock().by_id.get(id).cloned())
    }

    fn save(&self, id: &ShareId, ledger: &ShareLedger) -> Result<(), VaultError> {
        let mut ledgers = self.lock();
        ledgers.by_id.insert(*id, ledger.clone());
        if !ledger.is_erased() {
            ledgers
                .latest
                .insert((ledger.account.clone(), ledger.version), *id);
        }
        Ok(())
    }

    fn latest(
        &self,
        account: &AccountId,
        version: RecordVersion,
    ) -> Result<Option<ShareId>, VaultError> {
        Ok(self.lock().latest.get(&(account.clone(), version)).copied())
    }

    async fn flush(&self) -> Result<(), VaultError> {
        Ok(())
    }

    fn scan(
        &self,
        after: Option<ShareId>,
        limit: usize,
    ) -> Result<Vec<(ShareId, ShareLedger)>, VaultError> {
        let ledgers = self.lock();
        let map = &ledgers.by_id;
        let range = match after {
            Some(a) => map.range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => map.range::<ShareId, _>(..),
        };
        Ok(range.take(limit).map(|(id, l)| (*id, l.clone())).collect())
    }
}

/// The replica's applied state, as a holder reads it.
#[derive(Clone)]
pub struct ReplicaState(pub(crate) Arc<Mutex<Applied>>);

impl std::fmt::Debug for ReplicaState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplicaState")
    }
}

impl AppliedState for ReplicaState {
    fn read<R>(&self, f: impl FnOnce(&VaultState) -> R) -> R {
        f(&self.0.lock().unwrap_or_else(PoisonError::into_inner).state)
    }

    async fn changed(&self) {
        // Every command is applied before its commit returns: nothing is ever pending.
        tokio::task::yield_now().await;
    }
}
