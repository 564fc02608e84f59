//! [`Partition`]: a node's handle on its HSM token. Cheap to clone, usable from tokio; every
//! PKCS#11 call runs on the worker pool or, for the security-officer step, on a blocking
//! thread with the workers quiesced.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use bkv_core::{SealError, SealPurpose, Sealer};
use cryptoki::context::Pkcs11;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::slot::Slot;
use zeroize::Zeroizing;

use crate::module::{self, TokenState};
use crate::officer::as_security_officer;
use crate::spki::{self, RsaPublic};
use crate::template;
use crate::worker::{Pool, Worker};
use crate::{
    ClusterKeyInfo, EnrollmentKey, HsmConfig, HsmError, P256Point, Pin, ShareReceiveKey,
    WrappedClusterKey,
};

/// An open HSM partition: one token, logged in as user, with a pool of worker sessions.
#[derive(Clone)]
pub struct Partition {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Pkcs11,
    slot: Slot,
    label: String,
    token: Arc<TokenState>,
    user_pin: Pin,
    so_pin: Option<Pin>,
    pool: Pool,
}

impl fmt::Debug for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Partition")
            .field("token_label", &self.inner.label)
            .field("workers", &self.inner.pool.workers())
            .finish_non_exhaustive()
    }
}

impl Partition {
    /// Loads the module (once per process), finds the token by label, logs in as user and
    /// starts the workers.
    pub async fn open(cfg: HsmConfig) -> Result<Self, HsmError> {
        blocking(move || {
            let ctx = module::context(&cfg.module)?;
            let slot = module::find_token(&ctx, &cfg.token_label)?;
            let token = module::token_state(&cfg.module, &cfg.token_label);
            let pool = Pool::spawn(&ctx, slot, &token, &cfg.user_pin, cfg.workers)?;
            tracing::info!(token = %cfg.token_label, workers = pool.workers(), "HSM partition open");
            Ok(Self {
                inner: Arc::new(Inner {
                    ctx,
                    slot,
                    label: cfg.token_label,
                    token,
                    user_pin: cfg.user_pin,
                    so_pin: cfg.so_pin,
                    pool,
                }),
            })
        })
        .await
    }

    /// The token's label.
    pub fn token_label(&self) -> &str {
        &self.inner.label
    }

    /// Runs `f` on a worker.
    async fn run<T, F>(&self, f: F) -> Result<T, HsmError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Worker) -> T + Send + 'static,
    {
        self.inner.pool.run(f).await
    }

    /// The cluster key's id and check value, if the token holds it.
    pub async fn cluster_key(&self) -> Result<Option<ClusterKeyInfo>, HsmError> {
        self.run(|w| Ok(w.cluster_key()?.map(|k| k.info))).await?
    }

    /// Generates the cluster key (AES-256, sensitive, extractable only under a trusted
    /// key). Errors with [`HsmError::ClusterKeyExists`] if there is one.
    pub async fn generate_cluster_key(&self) -> Result<ClusterKeyInfo, HsmError> {
        let info = self.run(Worker::generate_cluster_key).await??;
        tracing::info!(token = %self.inner.label, key = %info, "cluster key generated");
        Ok(info)
    }

    /// Seals `plaintext` for `purpose`, bound to `aad`, under the cluster key. Refuses
    /// [`SealPurpose::OprfShare`] with [`SealError::WrongPurpose`]: shares are sealed only
    /// under the node's own key ([`Partition::seal_share`]).
    pub async fn seal(
        &self,
        purpose: SealPurpose,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let aad = aad.to_vec();
        let plaintext = Zeroizing::new(plaintext.to_vec());
        self.run(move |w| {
            #[cfg(feature = "failpoints")]
            bkv_failpoints::hit_blocking("hsm_seal").map_err(|e| SealError::Hsm(e.to_string()))?;
            w.seal(purpose, &aad, &plaintext)
        })
        .await?
    }

    /// Opens a blob made by [`Partition::seal`] with the same purpose and AAD.
    pub async fn unseal(
        &self,
        purpose: SealPurpose,
        aad: &[u8],
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let aad = aad.to_vec();
        let blob = blob.to_vec();
        self.run(move |w| {
            #[cfg(feature = "failpoints")]
            bkv_failpoints::hit_blocking("hsm_unseal")
                .map_err(|e| SealError::Hsm(e.to_string()))?;
            w.unseal(purpose, &aad, &blob)
        })
        .await?
    }

    /// `len` random bytes from the token (at most 64 KiB).
    pub async fn random(&self, len: usize) -> Result<Vec<u8>, HsmError> {
        self.run(move |w| w.random(len)).await?
    }

    /// The value of the private data object `label`, if the token holds one.
    pub async fn read_data(&self, label: &str) -> Result<Option<Zeroizing<Vec<u8>>>, HsmError> {
        let label = label.to_string();
        self.run(move |w| w.read_data(&label)).await?
    }

    /// The values of every private data object `label`: more than one when a stop came
    /// between the two halves of [`Partition::write_data`].
    pub async fn read_data_all(&self, label: &str) -> Result<Vec<Zeroizing<Vec<u8>>>, HsmError> {
        let label = label.to_string();
        self.run(move |w| w.read_data_all(&label)).await?
    }

    /// What a stop inside [`Partition::write_data`] leaves: a new data object `label` beside
    /// the old ones. For tests of the readers.
    #[cfg(feature = "testing")]
    pub async fn write_data_without_replacing(
        &self,
        label: &str,
        value: &[u8],
    ) -> Result<(), HsmError> {
        let label = label.to_string();
        let value = Zeroizing::new(value.to_vec());
        self.run(move |w| w.create_data(&label, &value)).await?
    }

    /// Writes the private data object `label` (at most 4 KiB), replacing any old value.
    pub async fn write_data(&self, label: &str, value: &[u8]) -> Result<(), HsmError> {
        let label = label.to_string();
        let value = Zeroizing::new(value.to_vec());
        self.run(move |w| w.write_data(&label, &value)).await?
    }

    /// Destroys the private data object `label`, if any.
    pub async fn delete_data(&self, label: &str) -> Result<(), HsmError> {
        let label = label.to_string();
        self.run(move |w| w.delete_data(&label)).await?
    }

    /// This token's enrollment key, made on first call.
    pub async fn enrollment_key(&self) -> Result<EnrollmentKey, HsmError> {
        self.run(Worker::enrollment_key).await?
    }

    /// This token's enrollment key if it has been made; never makes one.
    pub async fn find_enrollment_key(&self) -> Result<Option<EnrollmentKey>, HsmError> {
        self.run(|w| w.find_enrollment_key()).await?
    }

    /// This token's share-receiving key (P-256, ECDH only), made on first call.
    pub async fn share_receive_key(&self) -> Result<ShareReceiveKey, HsmError> {
        let key = self.run(Worker::share_receive_key).await??;
        tracing::debug!(token = %self.inner.label, key = %key.fingerprint, "share-receiving key");
        Ok(key)
    }

    /// Destroys this token's share keys (the share-receiving pair and the share-sealing
    /// key): every share this node held becomes unreadable, in the records' ciphertexts and
    /// in its ledgers alike. For a node leaving the cluster; a later call for the
    /// share-receiving key makes a new pair. Returns how many key objects were destroyed.
    pub async fn destroy_share_keys(&self) -> Result<usize, HsmError> {
        let destroyed = self.run(Worker::destroy_share_keys).await??;
        tracing::warn!(token = %self.inner.label, destroyed, "share keys destroyed");
        Ok(destroyed)
    }

    /// This token's share-receiving key if it has been made; never makes one.
    pub async fn find_share_receive_key(&self) -> Result<Option<ShareReceiveKey>, HsmError> {
        self.run(Worker::find_share_receive_key).await?
    }

    /// ECDH in the token between the share-receiving private key and a client's ephemeral
    /// public point (SEC1 uncompressed): returns Z, the x-coordinate of the shared point,
    /// which is as secret as the share it protects. A point that is not on P-256 (or is the
    /// point at infinity, or compressed) is refused with [`HsmError::InvalidRequest`] before
    /// the token sees it; no share-receiving key is [`HsmError::KeyMissing`].
    pub async fn share_ecdh(
        &self,
        ephemeral_public: &[u8; 65],
    ) -> Result<Zeroizing<[u8; 32]>, HsmError> {
        let peer = P256Point::parse(ephemeral_public)?;
        self.run(move |w| w.share_ecdh(&peer)).await?
    }

    /// Seals one of this node's OPRF key shares, bound to `aad`, under this token's
    /// share-sealing key (made on first use; never the cluster key). Same blob format as
    /// [`Partition::seal`], purpose [`SealPurpose::OprfShare`].
    pub async fn seal_share(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let aad = aad.to_vec();
        let plaintext = Zeroizing::new(plaintext.to_vec());
        self.run(move |w| w.seal_share(&aad, &plaintext)).await?
    }

    /// Opens a blob made by [`Partition::seal_share`] on this token with the same AAD. A blob
    /// under another key (the cluster key, another token's share key) is refused with
    /// [`SealError::UnknownKey`], an altered one with [`SealError::Rejected`].
    pub async fn unseal_share(
        &self,
        aad: &[u8],
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let aad = aad.to_vec();
        let blob = blob.to_vec();
        self.run(move |w| w.unseal_share(&aad, &blob)).await?
    }

    /// Imports a peer's enrollment public key as trusted (security-officer step) and
    /// returns its fingerprint. Importing the same key twice is a no-op.
    pub async fn trust_enrollment_key(&self, spki_der: &[u8]) -> Result<String, HsmError> {
        let key = RsaPublic::from_spki_der(spki_der)?;
        let fingerprint = spki::fingerprint(spki_der);
        let fp = spki::parse_fingerprint(&fingerprint).ok_or(HsmError::UnknownPeer)?;
        // SO sessions cannot see private objects: look for an earlier import as user.
        if self.run(move |w| w.find_trusted_peer(fp)).await??.is_some() {
            return Ok(fingerprint);
        }
        let inner = self.inner.clone();
        blocking(move || {
            let so_pin = inner.so_pin.as_ref().ok_or(HsmError::SoPinMissing)?;
            let pending = [
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::Label(template::PENDING_PEER_KEY_LABEL.into()),
            ];
            as_security_officer(
                &inner.ctx,
                inner.slot,
                &inner.token,
                (so_pin, &inner.user_pin),
                |session| {
                    // Leftovers of an interrupted import.
                    for h in session
                        .find_objects(&pending)
                        .map_err(HsmError::at("C_FindObjects"))?
                    {
                        session
                            .destroy_object(h)
                            .map_err(HsmError::at("C_DestroyObject"))?;
                    }
                    session
                        .create_object(&template::peer_public_so(&key.modulus, &key.exponent, fp))
                        .map_err(HsmError::at("C_CreateObject"))
                },
                |session, public| {
                    // A concurrent import of the same key may have finished first.
                    let existing = session
                        .find_objects(&template::peer_lookup_trusted(fp))
                        .map_err(HsmError::at("C_FindObjects"))?;
                    let copied = if existing.is_empty() {
                        session
                            .copy_object(public, &template::peer_public_private_copy())
                            .map(|_| ())
                            .map_err(HsmError::at("C_CopyObject"))
                    } else {
                        Ok(())
                    };
                    // Remove the public original whatever happened to the copy.
                    let destroyed = session
                        .destroy_object(public)
                        .map_err(HsmError::at("C_DestroyObject"));
                    copied?;
                    destroyed
                },
            )
        })
        .await?;
        tracing::info!(token = %self.inner.label, peer = %fingerprint, "peer enrollment key trusted");
        Ok(fingerprint)
    }

    /// Wraps the cluster key under the trusted enrollment key with this fingerprint.
    pub async fn wrap_cluster_key_for(
        &self,
        fingerprint: &str,
    ) -> Result<WrappedClusterKey, HsmError> {
        let fp = fingerprint.to_string();
        let wrapped = self.run(move |w| w.wrap_cluster_key_for(&fp)).await??;
        tracing::info!(token = %self.inner.label, peer = %fingerprint, "cluster key wrapped for peer");
        Ok(wrapped)
    }

    /// Unwraps a cluster key wrapped for this token, checks its check value and installs
    /// it. Refuses if a different cluster key is present; the same one is a no-op.
    pub async fn unwrap_cluster_key(
        &self,
        wrapped: &WrappedClusterKey,
    ) -> Result<ClusterKeyInfo, HsmError> {
        let wrapped = wrapped.clone();
        let result = self.run(move |w| w.unwrap_cluster_key(&wrapped)).await?;
        match &result {
            Ok(info) => {
                tracing::info!(token = %self.inner.label, key = %info, "cluster key installed")
            }
            Err(e) => {
                tracing::warn!(token = %self.inner.label, error = %e, "cluster key not installed")
            }
        }
        result
    }

    /// Runs `f` on a worker with its raw session: for test support only.
    #[cfg(feature = "testing")]
    pub(crate) async fn with_session<T, F>(&self, f: F) -> Result<T, HsmError>
    where
        T: Send + 'static,
        F: FnOnce(&cryptoki::session::Session) -> T + Send + 'static,
    {
        self.run(move |w| f(&w.session)).await
    }
}

impl Sealer for Partition {
    fn seal(
        &self,
        purpose: SealPurpose,
        aad: &[u8],
        plaintext: &[u8],
    ) -> impl Future<Output = Result<Vec<u8>, SealError>> + Send {
        let this = self.clone();
        let aad = aad.to_vec();
        let plaintext = Zeroizing::new(plaintext.to_vec());
        async move { Partition::seal(&this, purpose, &aad, &plaintext).await }
    }

    fn unseal(
        &self,
        purpose: SealPurpose,
        aad: &[u8],
        blob: &[u8],
    ) -> impl Future<Output = Result<Zeroizing<Vec<u8>>, SealError>> + Send {
        let this = self.clone();
        let aad = aad.to_vec();
        let blob = blob.to_vec();
        async move { Partition::unseal(&this, purpose, &aad, &blob).await }
    }
}

/// Runs blocking PKCS#11 work off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, HsmError> + Send + 'static,
) -> Result<T, HsmError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| HsmError::WorkerGone)?
}
