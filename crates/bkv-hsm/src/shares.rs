//! What a worker does with this token's own share keys: the share-receiving P-256 key pair
//! (clients encrypt OPRF key shares to its public half; only the token computes ECDH with its
//! private half) and the share-sealing AES key (the node keeps its shares at rest under it).
//! Neither is the cluster key; neither is ever extractable or wrapped to anyone.

use std::sync::PoisonError;

use bkv_core::{SealError, SealPurpose};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use zeroize::{Zeroize, Zeroizing};

use crate::blob::Header;
use crate::ops::{both_halves, check_plaintext};
use crate::template::{self, SHARE_ECDH_SECRET_LEN, SHARE_RECEIVE_KEY_LABEL, SHARE_SEAL_KEY_LABEL};
use crate::worker::{SealingKey, Worker};
use crate::{HsmError, P256Point, ShareReceiveKey};

impl Worker {
    /// The private half of the share-receiving key pair, looked up once and cached.
    fn share_receive_private(&mut self) -> Result<Option<ObjectHandle>, HsmError> {
        if let Some(handle) = self.cached_share_receive_key() {
            return Ok(Some(handle));
        }
        let found = self.find_one(
            &template::share_receive_lookup(ObjectClass::PRIVATE_KEY),
            "share-receiving private key",
        )?;
        if let Some(handle) = found {
            self.cache_share_receive_key(handle);
        }
        Ok(found)
    }

    /// This token's share-receiving key, if it has been made: both halves must be there.
    pub(crate) fn find_share_receive_key(&mut self) -> Result<Option<ShareReceiveKey>, HsmError> {
        let private = self.share_receive_private()?;
        let public = self.find_one(
            &template::share_receive_lookup(ObjectClass::PUBLIC_KEY),
            "share-receiving public key",
        )?;
        match both_halves(
            private,
            public,
            ["share-receiving private key", "share-receiving public key"],
        )? {
            None => Ok(None),
            Some((_, public)) => {
                let attrs = self
                    .session
                    .get_attributes(public, &[AttributeType::EcPoint])
                    .map_err(HsmError::at("C_GetAttributeValue"))?;
                let point = match attrs.as_slice() {
                    [Attribute::EcPoint(value)] => P256Point::from_ec_point_attribute(value)?,
                    _ => return Err(HsmError::KeyMissing("CKA_EC_POINT of the share key")),
                };
                Ok(Some(ShareReceiveKey::new(&point)))
            }
        }
    }

    /// This token's share-receiving key, made on first call (CKM_EC_KEY_PAIR_GEN on P-256;
    /// the private half derives and does nothing else).
    pub(crate) fn share_receive_key(&mut self) -> Result<ShareReceiveKey, HsmError> {
        let token = self.token.clone();
        let _keys = token.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(key) = self.find_share_receive_key()? {
            return Ok(key);
        }
        self.session
            .generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &template::share_receive_public(),
                &template::share_receive_private(),
            )
            .map_err(HsmError::at("C_GenerateKeyPair"))?;
        self.find_share_receive_key()?
            .ok_or(HsmError::KeyMissing("share-receiving key after generation"))
    }

    /// ECDH of the share-receiving private key with `peer` (CKM_ECDH1_DERIVE, CKD_NULL):
    /// the token derives Z, the x-coordinate of d*peer, into a session object; Z is read and
    /// the object destroyed before this returns, whatever happens.
    pub(crate) fn share_ecdh(
        &mut self,
        peer: &P256Point,
    ) -> Result<Zeroizing<[u8; SHARE_ECDH_SECRET_LEN]>, HsmError> {
        let private = self
            .share_receive_private()?
            .ok_or(HsmError::KeyMissing("share-receiving private key"))?;
        // SoftHSM takes the raw SEC1 point here (and also its DER OCTET STRING).
        let params = Ecdh1DeriveParams::new(EcKdf::null(), peer.as_bytes());
        let derived = self.session.derive_key(
            &Mechanism::Ecdh1Derive(params),
            private,
            &template::share_ecdh_secret(),
        );
        let handle = match derived {
            Ok(handle) => handle,
            Err(e) => {
                self.forget_keys();
                return Err(HsmError::p11("C_DeriveKey", e));
            }
        };
        let object = SessionObject {
            session: &self.session,
            handle: Some(handle),
        };
        let z = object.read_value();
        let destroyed = object.destroy();
        let z = z?;
        destroyed?;
        Ok(z)
    }

    /// Destroys every share key object in the token (both halves of the share-receiving
    /// pair and the share-sealing key, by label, whatever their number): the node's shares,
    /// sealed under the one and encrypted to the other, can then never be opened again.
    /// Every worker drops its cached handles. Returns how many objects were destroyed.
    pub(crate) fn destroy_share_keys(&mut self) -> Result<usize, HsmError> {
        let token = self.token.clone();
        let _keys = token.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let mut destroyed = 0;
        for label in [SHARE_RECEIVE_KEY_LABEL, SHARE_SEAL_KEY_LABEL] {
            let found = self
                .session
                .find_objects(&[Attribute::Label(label.into())])
                .map_err(HsmError::at("C_FindObjects"))?;
            for handle in found {
                self.session
                    .destroy_object(handle)
                    .map_err(HsmError::at("C_DestroyObject"))?;
                destroyed += 1;
            }
        }
        self.keys_changed();
        Ok(destroyed)
    }

    /// The share-sealing key, if the token holds it; looked up once and cached.
    fn find_share_seal_key(&mut self) -> Result<Option<SealingKey>, HsmError> {
        if let Some(key) = self.cached_share_seal_key() {
            return Ok(Some(key));
        }
        let found = self.find_sealing_key(SHARE_SEAL_KEY_LABEL, "share-sealing key")?;
        if let Some(key) = found {
            self.cache_share_seal_key(key);
        }
        Ok(found)
    }

    /// The share-sealing key, made on first call (AES-256, never extractable).
    fn share_seal_key(&mut self) -> Result<SealingKey, HsmError> {
        if let Some(key) = self.find_share_seal_key()? {
            return Ok(key);
        }
        let token = self.token.clone();
        let _keys = token.keys.lock().unwrap_or_else(PoisonError::into_inner);
        // Another worker may have made it while this one waited for the lock.
        if let Some(key) = self.find_share_seal_key()? {
            return Ok(key);
        }
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&self.random(8)?);
        self.session
            .generate_key(
                &Mechanism::AesKeyGen,
                &template::share_seal_key_generate(key_id),
            )
            .map_err(HsmError::at("C_GenerateKey"))?;
        tracing::info!(key_id = %hex::encode(key_id), "share-sealing key generated");
        self.find_share_seal_key()?
            .ok_or(HsmError::KeyMissing("share-sealing key after generation"))
    }

    /// Seals an OPRF key share under the share-sealing key (made on first use).
    pub(crate) fn seal_share(
        &mut self,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        check_plaintext(plaintext)?;
        let key = self.share_seal_key()?;
        self.seal_with(key, SealPurpose::OprfShare, aad, plaintext)
    }

    /// Opens a blob made by [`Worker::seal_share`] on this token. A blob naming another key
    /// (the cluster key, another node's share key) is [`SealError::UnknownKey`]; one that
    /// names this key but does not authenticate under it is [`SealError::Rejected`].
    pub(crate) fn unseal_share(
        &mut self,
        aad: &[u8],
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let (header, body) = Header::open(blob, SealPurpose::OprfShare, aad)?;
        let key = self.find_share_seal_key()?.ok_or(SealError::UnknownKey)?;
        self.open_with(key, &header, aad, body)
    }
}

/// A session object that is destroyed when dropped, so that no path out of
/// [`Worker::share_ecdh`] (an error, a panic) leaves Z in the token; [`SessionObject::destroy`]
/// destroys it and reports failure.
struct SessionObject<'s> {
    session: &'s Session,
    handle: Option<ObjectHandle>,
}

impl SessionObject<'_> {
    /// Reads CKA_VALUE, which must be exactly [`SHARE_ECDH_SECRET_LEN`] bytes.
    fn read_value(&self) -> Result<Zeroizing<[u8; SHARE_ECDH_SECRET_LEN]>, HsmError> {
        let handle = self.handle.ok_or(HsmError::KeyMissing("ECDH result"))?;
        let attrs = self
            .session
            .get_attributes(handle, &[AttributeType::Value])
            .map_err(HsmError::at("C_GetAttributeValue"))?;
        let mut z = Zeroizing::new([0u8; SHARE_ECDH_SECRET_LEN]);
        let mut found = false;
        for attr in attrs {
            if let Attribute::Value(mut value) = attr {
                if value.len() == SHARE_ECDH_SECRET_LEN {
                    z.copy_from_slice(&value);
                    found = true;
                }
                value.zeroize();
            }
        }
        if found {
            Ok(z)
        } else {
            Err(HsmError::KeyMissing("32-byte ECDH result"))
        }
    }

    /// Destroys the object now.
    fn destroy(mut self) -> Result<(), HsmError> {
        match self.handle.take() {
            Some(handle) => self
                .session
                .destroy_object(handle)
                .map_err(HsmError::at("C_DestroyObject")),
            None => Ok(()),
        }
    }
}

impl Drop for SessionObject<'_> {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            // Best effort on a path that already failed; a session object also dies with
            // its session.
            let _ = self.session.destroy_object(handle);
        }
    }
}
