//! What a worker does in its session: seal and unseal under the cluster key, make and find
//! keys, compute check values, wrap and unwrap the cluster key for the enrollment ceremony.
//! Everything runs on the worker thread that owns the session.

use std::sync::PoisonError;

use bkv_core::{SealError, SealPurpose};
use cryptoki::error::RvError;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use zeroize::Zeroizing;

use crate::blob::{HEADER_LEN, Header, IV_LEN, TAG_LEN};
use crate::error::rv_of;
use crate::spki::{self, RsaPublic};
use crate::template::{self, CLUSTER_KEY_LABEL, ENROLLMENT_KEY_LABEL, PENDING_CLUSTER_KEY_LABEL};
use crate::worker::{ClusterKeyHandle, SealingKey, Worker};
use crate::{ClusterKeyInfo, EnrollmentKey, HsmError, WrappedClusterKey};

/// Largest plaintext `seal` accepts (the vault seals records and tickets of a few KiB).
pub const MAX_PLAINTEXT: usize = 1 << 20;
/// Largest `random` request.
pub const MAX_RANDOM: usize = 1 << 16;

/// Refuses plaintexts larger than [`MAX_PLAINTEXT`].
pub(crate) fn check_plaintext(plaintext: &[u8]) -> Result<(), SealError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(HsmError::InvalidRequest("plaintext larger than 1 MiB").into());
    }
    Ok(())
}

/// Both halves of a key pair, or neither; one half alone is [`HsmError::KeyMissing`] naming
/// the other (`names`: private, public).
pub(crate) fn both_halves(
    private: Option<ObjectHandle>,
    public: Option<ObjectHandle>,
    names: [&'static str; 2],
) -> Result<Option<(ObjectHandle, ObjectHandle)>, HsmError> {
    match (private, public) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(HsmError::KeyMissing(names[0])),
        (Some(_), None) => Err(HsmError::KeyMissing(names[1])),
        (Some(private), Some(public)) => Ok(Some((private, public))),
    }
}

/// RSA-OAEP with SHA-1 and MGF1-SHA-1, no label: the only OAEP SoftHSM 2.6 offers.
fn oaep() -> Mechanism<'static> {
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA1,
        PkcsMgfType::MGF1_SHA1,
        PkcsOaepSource::empty(),
    ))
}

impl Worker {
    /// Random bytes from the token (C_GenerateRandom), at most [`MAX_RANDOM`].
    pub(crate) fn random(&self, len: usize) -> Result<Vec<u8>, HsmError> {
        if len > MAX_RANDOM {
            return Err(HsmError::InvalidRequest("more than 64 KiB of random bytes"));
        }
        let mut out = vec![0u8; len];
        self.session
            .generate_random_slice(&mut out)
            .map_err(HsmError::at("C_GenerateRandom"))?;
        Ok(out)
    }

    /// Finds one object by template: `None` if absent, an error if several match.
    pub(crate) fn find_one(
        &self,
        template: &[Attribute],
        what: &'static str,
    ) -> Result<Option<ObjectHandle>, HsmError> {
        let found = self
            .session
            .find_objects(template)
            .map_err(HsmError::at("C_FindObjects"))?;
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            _ => Err(HsmError::DuplicateKey(what)),
        }
    }

    /// The cluster key, looked up once and cached until keys change.
    pub(crate) fn cluster_key(&mut self) -> Result<Option<ClusterKeyHandle>, HsmError> {
        if let Some(key) = self.cached_cluster_key() {
            return Ok(Some(key));
        }
        let Some(found) = self.find_sealing_key(CLUSTER_KEY_LABEL, "cluster key")? else {
            return Ok(None);
        };
        let key = ClusterKeyHandle {
            handle: found.handle,
            info: ClusterKeyInfo {
                key_id: found.key_id,
                key_check_value: self.check_value(found.handle)?,
            },
        };
        self.cache_cluster_key(key);
        Ok(Some(key))
    }

    /// The secret key labelled `label` with its 8-byte id, if the token holds it.
    pub(crate) fn find_sealing_key(
        &self,
        label: &str,
        what: &'static str,
    ) -> Result<Option<SealingKey>, HsmError> {
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(label.into()),
        ];
        let Some(handle) = self.find_one(&template, what)? else {
            return Ok(None);
        };
        Ok(Some(SealingKey {
            handle,
            key_id: self.key_id(handle)?,
        }))
    }

    /// The 8-byte CKA_ID of a sealing key (the cluster key or the share-sealing key).
    fn key_id(&self, handle: ObjectHandle) -> Result<[u8; 8], HsmError> {
        let attrs = self
            .session
            .get_attributes(handle, &[AttributeType::Id])
            .map_err(HsmError::at("C_GetAttributeValue"))?;
        match attrs.as_slice() {
            [Attribute::Id(id)] => <[u8; 8]>::try_from(id.as_slice())
                .map_err(|_| HsmError::KeyMissing("8-byte CKA_ID of a sealing key")),
            _ => Err(HsmError::KeyMissing("8-byte CKA_ID of a sealing key")),
        }
    }

    /// Key check value: AES-ECB of a zero block in the token, first 3 bytes.
    fn check_value(&self, handle: ObjectHandle) -> Result<[u8; 3], HsmError> {
        let block = self
            .session
            .encrypt(&Mechanism::AesEcb, handle, &[0u8; 16])
            .map_err(HsmError::at("C_Encrypt"))?;
        let mut kcv = [0u8; 3];
        kcv.copy_from_slice(block.get(..3).ok_or(HsmError::Pkcs11 {
            call: "C_Encrypt",
            rv: "short output".into(),
        })?);
        Ok(kcv)
    }

    /// Generates the cluster key (AES-256) unless one exists.
    pub(crate) fn generate_cluster_key(&mut self) -> Result<ClusterKeyInfo, HsmError> {
        let token = self.token.clone();
        let _keys = token.keys.lock().unwrap_or_else(PoisonError::into_inner);
        self.forget_keys();
        if self.cluster_key()?.is_some() {
            return Err(HsmError::ClusterKeyExists);
        }
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&self.random(8)?);
        self.session
            .generate_key(
                &Mechanism::AesKeyGen,
                &template::cluster_key_generate(key_id),
            )
            .map_err(HsmError::at("C_GenerateKey"))?;
        self.keys_changed();
        self.cluster_key()?
            .map(|k| k.info)
            .ok_or(HsmError::KeyMissing("cluster key after generation"))
    }

    /// Seals `plaintext` under the cluster key. Shares are never sealed under it.
    pub(crate) fn seal(
        &mut self,
        purpose: SealPurpose,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        if purpose == SealPurpose::OprfShare {
            return Err(SealError::WrongPurpose);
        }
        check_plaintext(plaintext)?;
        let key = self.cluster_key()?.ok_or(SealError::NoClusterKey)?;
        self.seal_with(key.sealing(), purpose, aad, plaintext)
    }

    /// Checks and opens a blob made by [`Worker::seal`].
    pub(crate) fn unseal(
        &mut self,
        purpose: SealPurpose,
        aad: &[u8],
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if purpose == SealPurpose::OprfShare {
            return Err(SealError::WrongPurpose);
        }
        let (header, body) = Header::open(blob, purpose, aad)?;
        let key = self.cluster_key()?.ok_or(SealError::NoClusterKey)?;
        self.open_with(key.sealing(), &header, aad, body)
    }

    /// AES-256-GCM in the token under `key`, with a fresh random IV: the blob is the header
    /// (naming `key`) followed by ciphertext and tag.
    pub(crate) fn seal_with(
        &mut self,
        key: SealingKey,
        purpose: SealPurpose,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let mut iv = [0u8; IV_LEN];
        if let Err(e) = self.session.generate_random_slice(&mut iv) {
            return Err(HsmError::p11("C_GenerateRandom", e).into());
        }
        let header = Header::new(purpose, key.key_id, aad, iv);
        let gcm_aad = header.gcm_aad(aad);
        let mut iv_param = iv;
        let params = GcmParams::new(&mut iv_param, &gcm_aad, (8 * TAG_LEN as u64).into())
            .map_err(|e| SealError::from(HsmError::p11("C_EncryptInit", e)))?;
        let sealed = self
            .session
            .encrypt(&Mechanism::AesGcm(params), key.handle, plaintext);
        match sealed {
            Ok(ct) => {
                let mut blob = Vec::with_capacity(HEADER_LEN + ct.len());
                blob.extend_from_slice(&header.encode());
                blob.extend_from_slice(&ct);
                Ok(blob)
            }
            Err(e) => {
                self.forget_keys();
                Err(HsmError::p11("C_Encrypt", e).into())
            }
        }
    }

    /// Opens the body of a blob whose header has been checked, if the header names `key`.
    pub(crate) fn open_with(
        &mut self,
        key: SealingKey,
        header: &Header,
        aad: &[u8],
        body: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if header.key_id != key.key_id {
            return Err(SealError::UnknownKey);
        }
        let gcm_aad = header.gcm_aad(aad);
        let mut iv = header.iv;
        let params = GcmParams::new(&mut iv, &gcm_aad, (8 * TAG_LEN as u64).into())
            .map_err(|e| SealError::from(HsmError::p11("C_DecryptInit", e)))?;
        let opened = self
            .session
            .decrypt(&Mechanism::AesGcm(params), key.handle, body);
        match opened {
            Ok(pt) => Ok(Zeroizing::new(pt)),
            // A GCM tag mismatch: SoftHSM 2.6 reports CKR_GENERAL_ERROR, the standard says
            // CKR_ENCRYPTED_DATA_INVALID. The header was checked and the key found, so the
            // blob itself is at fault. Never retried.
            Err(e)
                if matches!(
                    rv_of(&e),
                    Some(
                        RvError::EncryptedDataInvalid
                            | RvError::EncryptedDataLenRange
                            | RvError::GeneralError
                    )
                ) =>
            {
                Err(SealError::Rejected)
            }
            Err(e) => {
                self.forget_keys();
                Err(HsmError::p11("C_Decrypt", e).into())
            }
        }
    }

    /// This token's enrollment key, if it has been made.
    pub(crate) fn find_enrollment_key(&self) -> Result<Option<EnrollmentKey>, HsmError> {
        let label = Attribute::Label(ENROLLMENT_KEY_LABEL.into());
        let private = self.find_one(
            &[Attribute::Class(ObjectClass::PRIVATE_KEY), label.clone()],
            "enrollment private key",
        )?;
        let public = self.find_one(
            &[Attribute::Class(ObjectClass::PUBLIC_KEY), label],
            "enrollment public key",
        )?;
        match both_halves(
            private,
            public,
            ["enrollment private key", "enrollment public key"],
        )? {
            None => Ok(None),
            Some((_, public)) => {
                let attrs = self
                    .session
                    .get_attributes(
                        public,
                        &[AttributeType::Modulus, AttributeType::PublicExponent],
                    )
                    .map_err(HsmError::at("C_GetAttributeValue"))?;
                let (mut n, mut e) = (None, None);
                for attr in attrs {
                    match attr {
                        Attribute::Modulus(v) => n = Some(v),
                        Attribute::PublicExponent(v) => e = Some(v),
                        _ => {}
                    }
                }
                let (Some(n), Some(e)) = (n, e) else {
                    return Err(HsmError::KeyMissing("enrollment public key values"));
                };
                let spki_der = RsaPublic::new(&n, &e).to_spki_der();
                let fingerprint = spki::fingerprint(&spki_der);
                Ok(Some(EnrollmentKey {
                    spki_der,
                    fingerprint,
                }))
            }
        }
    }

    /// This token's enrollment key, made on first call (RSA-3072, private part sensitive,
    /// non-extractable, with CKA_UNWRAP_TEMPLATE).
    pub(crate) fn enrollment_key(&mut self) -> Result<EnrollmentKey, HsmError> {
        let token = self.token.clone();
        let _keys = token.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(key) = self.find_enrollment_key()? {
            return Ok(key);
        }
        let inner = template::enrollment_unwrap_template();
        let private = template::enrollment_private(&inner);
        self.session
            .generate_key_pair(
                &Mechanism::RsaPkcsKeyPairGen,
                &template::enrollment_public(),
                private.attrs(),
            )
            .map_err(HsmError::at("C_GenerateKeyPair"))?;
        self.find_enrollment_key()?
            .ok_or(HsmError::KeyMissing("enrollment key after generation"))
    }

    /// The imported enrollment public key of a peer, by fingerprint bytes, trusted or not
    /// (the token decides what it may wrap for).
    pub(crate) fn find_peer(
        &self,
        fingerprint: [u8; 32],
    ) -> Result<Option<ObjectHandle>, HsmError> {
        self.find_one(&template::peer_lookup(fingerprint), "peer enrollment key")
    }

    /// The imported enrollment public key of a peer, only if it is marked trusted.
    pub(crate) fn find_trusted_peer(
        &self,
        fingerprint: [u8; 32],
    ) -> Result<Option<ObjectHandle>, HsmError> {
        self.find_one(
            &template::peer_lookup_trusted(fingerprint),
            "trusted peer enrollment key",
        )
    }

    /// Wraps the cluster key under a peer's trusted enrollment key. The token itself
    /// refuses if that key is not trusted (CKA_WRAP_WITH_TRUSTED).
    pub(crate) fn wrap_cluster_key_for(
        &mut self,
        fingerprint: &str,
    ) -> Result<WrappedClusterKey, HsmError> {
        let fp = spki::parse_fingerprint(fingerprint).ok_or(HsmError::UnknownPeer)?;
        let peer = self.find_peer(fp)?.ok_or(HsmError::UnknownPeer)?;
        let key = self
            .cluster_key()?
            .ok_or(HsmError::KeyMissing("cluster key"))?;
        let wrapped = match self.session.wrap_key(&oaep(), peer, key.handle) {
            Ok(w) => w,
            Err(e) if rv_of(&e) == Some(RvError::KeyNotWrappable) => {
                return Err(HsmError::NotTrusted);
            }
            Err(e) => {
                self.forget_keys();
                return Err(HsmError::p11("C_WrapKey", e));
            }
        };
        Ok(WrappedClusterKey {
            wrapped,
            key_id: key.info.key_id,
            key_check_value: key.info.key_check_value,
        })
    }

    /// Unwraps a cluster key wrapped for this token's enrollment key, checks its check
    /// value, and only then gives it the cluster key's label.
    pub(crate) fn unwrap_cluster_key(
        &mut self,
        wrapped: &WrappedClusterKey,
    ) -> Result<ClusterKeyInfo, HsmError> {
        let token = self.token.clone();
        let _keys = token.keys.lock().unwrap_or_else(PoisonError::into_inner);
        self.forget_keys();
        if let Some(existing) = self.cluster_key()? {
            return if existing.info.key_id == wrapped.key_id
                && existing.info.key_check_value == wrapped.key_check_value
            {
                Ok(existing.info)
            } else {
                Err(HsmError::ClusterKeyExists)
            };
        }
        // Leftovers of an unwrap that was interrupted before its check.
        let pending = self
            .session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(PENDING_CLUSTER_KEY_LABEL.into()),
            ])
            .map_err(HsmError::at("C_FindObjects"))?;
        for handle in pending {
            self.session
                .destroy_object(handle)
                .map_err(HsmError::at("C_DestroyObject"))?;
        }
        let private = self
            .find_one(
                &[
                    Attribute::Class(ObjectClass::PRIVATE_KEY),
                    Attribute::Label(ENROLLMENT_KEY_LABEL.into()),
                ],
                "enrollment private key",
            )?
            .ok_or(HsmError::KeyMissing("enrollment private key"))?;
        let handle = self
            .session
            .unwrap_key(
                &oaep(),
                private,
                &wrapped.wrapped,
                &template::cluster_key_unwrap(wrapped.key_id),
            )
            .map_err(HsmError::at("C_UnwrapKey"))?;
        let verified = self.verify_unwrapped(handle, wrapped);
        if let Err(e) = verified {
            // Best effort: the object is unusable (pending label) even if this fails.
            let _ = self.session.destroy_object(handle);
            return Err(e);
        }
        self.session
            .update_attributes(handle, &[Attribute::Label(CLUSTER_KEY_LABEL.into())])
            .map_err(HsmError::at("C_SetAttributeValue"))?;
        self.keys_changed();
        Ok(ClusterKeyInfo {
            key_id: wrapped.key_id,
            key_check_value: wrapped.key_check_value,
        })
    }

    /// An unwrapped key must be AES (the template says so) of 32 bytes where the token
    /// records the length, with the announced check value.
    fn verify_unwrapped(
        &self,
        handle: ObjectHandle,
        wrapped: &WrappedClusterKey,
    ) -> Result<(), HsmError> {
        let attrs = self
            .session
            .get_attributes(handle, &[AttributeType::ValueLen])
            .map_err(HsmError::at("C_GetAttributeValue"))?;
        // SoftHSM 2.6 leaves CKA_VALUE_LEN at 0 on unwrapped keys; the check value is then
        // what identifies the key.
        let len_ok = matches!(
            attrs.as_slice(),
            [Attribute::ValueLen(len)] if matches!(usize::from(*len), 0 | 32)
        );
        if !len_ok || self.check_value(handle)? != wrapped.key_check_value {
            return Err(HsmError::KcvMismatch);
        }
        Ok(())
    }
}
