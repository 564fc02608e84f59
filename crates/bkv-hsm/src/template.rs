//! Attribute templates of every key object bkv keeps in a token, in one place so that their
//! security properties can be read together:
//!
//! - every key object is a private token object (SoftHSM writes non-private objects to its
//!   files in plaintext), and every secret or private key is sensitive;
//! - only the cluster key is extractable, and only by wrapping under a key marked
//!   `CKA_TRUSTED` (`CKA_WRAP_WITH_TRUSTED`);
//! - the enrollment private key carries `CKA_UNWRAP_TEMPLATE`, so whatever it unwraps gets
//!   the cluster key's protections whatever the caller asks for;
//! - the share keys (the share-receiving P-256 key pair and the share-sealing AES key) belong
//!   to this token alone: never extractable, never wrapped, each good for one operation
//!   (ECDH derive; AES-GCM encrypt and decrypt).
//!
//! The one non-token object is the ECDH result ([`share_ecdh_secret`]): a session object
//! whose value is read once and destroyed at once.

use std::marker::PhantomData;

use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use cryptoki_sys::{CK_ATTRIBUTE, CK_ULONG};

/// Label of the cluster key.
pub const CLUSTER_KEY_LABEL: &str = "bkv-cluster-key";
/// Label an unwrapped cluster key carries until its check value has been verified.
pub const PENDING_CLUSTER_KEY_LABEL: &str = "bkv-cluster-key-unverified";
/// Label of this token's enrollment key pair.
pub const ENROLLMENT_KEY_LABEL: &str = "bkv-enrollment-key";
/// Label of peers' enrollment public keys (their CKA_ID is the SHA-256 fingerprint).
pub const PEER_KEY_LABEL: &str = "bkv-peer-enrollment-key";
/// Label of a peer key the SO has created (public, as SoftHSM requires of SO objects) and
/// the user has not yet copied to a private object.
pub const PENDING_PEER_KEY_LABEL: &str = "bkv-peer-enrollment-key-so";
/// Label of this token's share-receiving key pair (P-256, ECDH only).
pub const SHARE_RECEIVE_KEY_LABEL: &str = "bkv-share-receive-key";
/// Label of this token's share-sealing key (AES-256, never leaves the token).
pub const SHARE_SEAL_KEY_LABEL: &str = "bkv-share-seal-key";
/// Label of the short-lived session object an ECDH derive makes.
pub const SHARE_ECDH_SECRET_LABEL: &str = "bkv-share-ecdh-z";
/// DER of the OID prime256v1 (1.2.840.10045.3.1.7): CKA_EC_PARAMS of the share keys.
pub const P256_EC_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// Length of the ECDH shared secret Z on P-256 (its x-coordinate).
pub const SHARE_ECDH_SECRET_LEN: usize = 32;
/// Modulus size of enrollment keys.
pub const ENROLLMENT_KEY_BITS: CK_ULONG = 3072;

/// CKA_UNWRAP_TEMPLATE: CKF_ARRAY_ATTRIBUTE | 0x212. cryptoki 0.12 has no typed attribute
/// for it.
pub const CKA_UNWRAP_TEMPLATE: CK_ULONG = 0x4000_0212;

/// Attributes that every secret key holding the cluster key must have, whether generated
/// here or unwrapped from a peer.
fn cluster_key_protection() -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(true),
        Attribute::WrapWithTrusted(true),
    ]
}

/// What a sealing key (the cluster key, the share-sealing key) may do: AES-GCM encrypt and
/// decrypt, nothing else; and it cannot be copied into a weaker object.
fn seal_only() -> [Attribute; 8] {
    [
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Copyable(false),
    ]
}

/// Template of a freshly generated cluster key (C_GenerateKey, CKM_AES_KEY_GEN).
pub fn cluster_key_generate(key_id: [u8; 8]) -> Vec<Attribute> {
    let mut t = cluster_key_protection();
    t.extend(seal_only());
    t.extend([
        Attribute::ValueLen(32.into()),
        Attribute::Modifiable(false),
        Attribute::Id(key_id.to_vec()),
        Attribute::Label(CLUSTER_KEY_LABEL.into()),
    ]);
    t
}

/// Template of a cluster key unwrapped from a peer (C_UnwrapKey). It starts under a
/// pending label (so no sealing uses it) and is relabelled once its check value matches;
/// that relabel is why it stays modifiable.
pub fn cluster_key_unwrap(key_id: [u8; 8]) -> Vec<Attribute> {
    let mut t = cluster_key_protection();
    t.extend(seal_only());
    t.extend([
        Attribute::Id(key_id.to_vec()),
        Attribute::Label(PENDING_CLUSTER_KEY_LABEL.into()),
    ]);
    t
}

/// Public half of the enrollment key pair (C_GenerateKeyPair, CKM_RSA_PKCS_KEY_PAIR_GEN).
pub fn enrollment_public() -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::ModulusBits(ENROLLMENT_KEY_BITS.into()),
        Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
        Attribute::Encrypt(false),
        Attribute::Verify(false),
        Attribute::Wrap(false),
        Attribute::Modifiable(false),
        Attribute::Label(ENROLLMENT_KEY_LABEL.into()),
        Attribute::Id(ENROLLMENT_KEY_LABEL.into()),
    ]
}

/// The inner template of the enrollment key's CKA_UNWRAP_TEMPLATE. Kept alive by the
/// caller while the array attribute built from it is in use.
pub fn enrollment_unwrap_template() -> Vec<Attribute> {
    cluster_key_protection()
}

/// Private half of the enrollment key pair, with its CKA_UNWRAP_TEMPLATE.
pub fn enrollment_private(unwrap_template: &[Attribute]) -> PrivateTemplate<'_> {
    let attrs = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Unwrap(true),
        Attribute::Decrypt(false),
        Attribute::Sign(false),
        Attribute::Derive(false),
        Attribute::Copyable(false),
        Attribute::Modifiable(false),
        Attribute::Label(ENROLLMENT_KEY_LABEL.into()),
        Attribute::Id(ENROLLMENT_KEY_LABEL.into()),
        array_attribute(CKA_UNWRAP_TEMPLATE, unwrap_template),
    ];
    PrivateTemplate {
        attrs,
        _inner: PhantomData,
    }
}

/// A peer's enrollment public key as the security officer imports it: trusted, so that
/// the cluster key may be wrapped under it. SoftHSM refuses private objects in SO
/// sessions, so this one is public and short-lived: see [`peer_public_private_copy`].
pub fn peer_public_so(modulus: &[u8], exponent: &[u8], fingerprint: [u8; 32]) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Trusted(true),
        Attribute::Wrap(true),
        Attribute::Encrypt(false),
        Attribute::Verify(false),
        Attribute::Modulus(modulus.to_vec()),
        Attribute::PublicExponent(exponent.to_vec()),
        Attribute::Label(PENDING_PEER_KEY_LABEL.into()),
        Attribute::Id(fingerprint.to_vec()),
    ]
}

/// Finds the (private, final) copy of a peer's key.
pub fn peer_lookup(fingerprint: [u8; 32]) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::Label(PEER_KEY_LABEL.into()),
        Attribute::Id(fingerprint.to_vec()),
    ]
}

/// Finds the copy of a peer's key only if it is trusted.
pub fn peer_lookup_trusted(fingerprint: [u8; 32]) -> Vec<Attribute> {
    let mut t = peer_lookup(fingerprint);
    t.push(Attribute::Trusted(true));
    t
}

/// What the user changes when copying the SO's peer key (C_CopyObject keeps the rest,
/// CKA_TRUSTED included): private, final label, no longer modifiable.
pub fn peer_public_private_copy() -> Vec<Attribute> {
    vec![
        Attribute::Private(true),
        Attribute::Label(PEER_KEY_LABEL.into()),
    ]
}

/// Public half of the share-receiving key pair (C_GenerateKeyPair, CKM_EC_KEY_PAIR_GEN). A
/// private object like every key object, although the point itself is no secret.
pub fn share_receive_public() -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::EcParams(P256_EC_PARAMS.to_vec()),
        Attribute::Encrypt(false),
        Attribute::Verify(false),
        Attribute::Wrap(false),
        Attribute::Derive(false),
        Attribute::Modifiable(false),
        Attribute::Label(SHARE_RECEIVE_KEY_LABEL.into()),
        Attribute::Id(SHARE_RECEIVE_KEY_LABEL.into()),
    ]
}

/// Private half of the share-receiving key pair: ECDH derive and nothing else, never
/// extractable.
pub fn share_receive_private() -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Derive(true),
        Attribute::Sign(false),
        Attribute::SignRecover(false),
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Copyable(false),
        Attribute::Modifiable(false),
        Attribute::Label(SHARE_RECEIVE_KEY_LABEL.into()),
        Attribute::Id(SHARE_RECEIVE_KEY_LABEL.into()),
    ]
}

/// Finds one half of the share-receiving key pair: by class, label, key type and curve, so
/// that an object of another curve under the same label is never taken for it.
pub fn share_receive_lookup(class: ObjectClass) -> Vec<Attribute> {
    vec![
        Attribute::Class(class),
        Attribute::KeyType(KeyType::EC),
        Attribute::EcParams(P256_EC_PARAMS.to_vec()),
        Attribute::Label(SHARE_RECEIVE_KEY_LABEL.into()),
    ]
}

/// What CKM_ECDH1_DERIVE makes: a session object (never in the token files) holding Z,
/// readable once so that the caller can run its KDF on it, and then destroyed.
pub fn share_ecdh_secret() -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
        Attribute::ValueLen((SHARE_ECDH_SECRET_LEN as CK_ULONG).into()),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Label(SHARE_ECDH_SECRET_LABEL.into()),
    ]
}

/// Template of the share-sealing key (C_GenerateKey, CKM_AES_KEY_GEN): AES-256 for GCM in
/// the token, never extractable (so never wrapped to anyone), its 8-byte id written in the
/// header of every blob it seals.
pub fn share_seal_key_generate(key_id: [u8; 8]) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::ValueLen(32.into()),
        Attribute::Modifiable(false),
        Attribute::Id(key_id.to_vec()),
        Attribute::Label(SHARE_SEAL_KEY_LABEL.into()),
    ];
    t.extend(seal_only());
    t
}

/// A template that holds raw pointers into another template (an array attribute). The
/// lifetime ties it to that inner template, which must outlive every use of this one.
#[derive(Debug)]
pub struct PrivateTemplate<'a> {
    attrs: Vec<Attribute>,
    _inner: PhantomData<&'a [Attribute]>,
}

impl PrivateTemplate<'_> {
    /// The attributes, to pass to a PKCS#11 call.
    pub fn attrs(&self) -> &[Attribute] {
        &self.attrs
    }
}

// CK_ATTRIBUTE is { CK_ULONG type; void *pValue; CK_ULONG ulValueLen } with no padding on
// the platforms SoftHSM runs on; `array_attribute` writes it field by field.
const _: () = assert!(
    std::mem::size_of::<CK_ATTRIBUTE>()
        == 2 * std::mem::size_of::<CK_ULONG>() + std::mem::size_of::<usize>()
);

/// A PKCS#11 array attribute (CKF_ARRAY_ATTRIBUTE): the value is an array of CK_ATTRIBUTE
/// structs pointing into `inner`. Built without `unsafe`: the structs come from cryptoki's
/// own conversion and are laid out byte by byte. The pointers stay valid only while `inner`
/// is alive and unmoved, which [`PrivateTemplate`]'s lifetime enforces; the module copies
/// the values when the object is created.
fn array_attribute(attr_type: CK_ULONG, inner: &[Attribute]) -> Attribute {
    let mut bytes = Vec::with_capacity(inner.len() * std::mem::size_of::<CK_ATTRIBUTE>());
    for attr in inner {
        let raw = CK_ATTRIBUTE::from(attr);
        bytes.extend_from_slice(&raw.type_.to_ne_bytes());
        bytes.extend_from_slice(&(raw.pValue as usize).to_ne_bytes());
        bytes.extend_from_slice(&raw.ulValueLen.to_ne_bytes());
    }
    Attribute::VendorDefined((AttributeType::VendorDefined(attr_type), bytes))
}
