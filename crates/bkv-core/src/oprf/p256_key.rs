//! A node's share-receiving public key: a P-256 point in uncompressed SEC1 form (the node's
//! token holds the private half and does the ECDH), and, for tests and tools, the same ECDH
//! in software.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{OprfError, P256_POINT_LEN};

/// SEC1 tag of an uncompressed point.
const UNCOMPRESSED: u8 = 0x04;

/// A P-256 public key: `0x04 || x || y`, 65 bytes, coordinates canonical and on the curve
/// (so never the point at infinity, which has no such encoding).
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "Vec<u8>", into = "Vec<u8>")]
pub struct P256PublicKey {
    key: p256::PublicKey,
    bytes: [u8; P256_POINT_LEN],
}

impl P256PublicKey {
    /// Length of the encoding, in bytes.
    pub const LEN: usize = P256_POINT_LEN;

    /// Parses a share-receiving public key.
    pub fn parse(bytes: &[u8]) -> Result<Self, OprfError> {
        parse_point(bytes, "p256_public_key")
    }

    /// The 65-byte encoding.
    pub const fn as_bytes(&self) -> &[u8; P256_POINT_LEN] {
        &self.bytes
    }

    /// The parsed point.
    pub(crate) fn key(&self) -> &p256::PublicKey {
        &self.key
    }

    #[cfg(any(test, feature = "test-support"))]
    pub(crate) fn from_key(key: p256::PublicKey) -> Self {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let encoded = key.to_encoded_point(false);
        let mut bytes = [0u8; P256_POINT_LEN];
        // An uncompressed encoding of a point that is not the identity is 65 bytes.
        bytes.copy_from_slice(encoded.as_bytes());
        Self { key, bytes }
    }
}

/// Parses an uncompressed P-256 point named `what`: length 65, tag 0x04, both coordinates
/// below p, on the curve.
pub(crate) fn parse_point(bytes: &[u8], what: &'static str) -> Result<P256PublicKey, OprfError> {
    let array: [u8; P256_POINT_LEN] = bytes.try_into().map_err(|_| OprfError::WrongLength {
        what,
        expected: P256_POINT_LEN,
        actual: bytes.len(),
    })?;
    if array[0] != UNCOMPRESSED {
        return Err(OprfError::NotUncompressed {
            what,
            tag: array[0],
        });
    }
    let key =
        p256::PublicKey::from_sec1_bytes(&array).map_err(|_| OprfError::NotOnCurve { what })?;
    Ok(P256PublicKey { key, bytes: array })
}

impl TryFrom<Vec<u8>> for P256PublicKey {
    type Error = OprfError;
    fn try_from(bytes: Vec<u8>) -> Result<Self, OprfError> {
        Self::parse(&bytes)
    }
}

impl From<P256PublicKey> for Vec<u8> {
    fn from(k: P256PublicKey) -> Self {
        k.bytes.to_vec()
    }
}

impl PartialEq for P256PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for P256PublicKey {}

impl fmt::Debug for P256PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P256PublicKey({})", hex::encode(self.bytes))
    }
}

/// A share-receiving key pair in software: what a node's token does, for tests and tools
/// (zeroized on drop, redacted in `Debug`).
#[cfg(any(test, feature = "test-support"))]
pub struct SoftwareShareKey(p256::SecretKey);

#[cfg(any(test, feature = "test-support"))]
impl SoftwareShareKey {
    /// A fresh key pair.
    pub fn generate<R: rand::RngCore + rand::CryptoRng>(rng: &mut R) -> Self {
        Self(p256::SecretKey::random(rng))
    }

    /// A key from its 32-byte big-endian scalar (test vectors).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OprfError> {
        p256::SecretKey::from_slice(bytes)
            .map(Self)
            .map_err(|_| OprfError::NonCanonicalScalar {
                what: "p256_secret_key",
            })
    }

    /// The public key to publish in the share map.
    pub fn public(&self) -> P256PublicKey {
        P256PublicKey::from_key(self.0.public_key())
    }

    /// ECDH with a ciphertext's ephemeral key `E`: the x-coordinate of `d * E`, as the
    /// token's `CKM_ECDH1_DERIVE` with `CKD_NULL` gives it.
    pub fn diffie_hellman(
        &self,
        ephemeral: &[u8; P256_POINT_LEN],
    ) -> Result<zeroize::Zeroizing<[u8; 32]>, OprfError> {
        let e = parse_point(ephemeral, "ephemeral_public_key")?;
        let d = zeroize::Zeroizing::new(self.0.to_nonzero_scalar());
        let shared = p256::ecdh::diffie_hellman(&*d, e.key().as_affine());
        let mut z = zeroize::Zeroizing::new([0u8; 32]);
        z.copy_from_slice(shared.raw_secret_bytes());
        Ok(z)
    }
}

#[cfg(any(test, feature = "test-support"))]
impl fmt::Debug for SoftwareShareKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SoftwareShareKey(<redacted>)")
    }
}
