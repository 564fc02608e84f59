//! One voter's share `k_i = f(x_i)` of an account's OPRF key, with its index `x_i` (the
//! voter's node id).

use std::fmt;

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::suite::parse_nonzero_scalar;
use super::{Commitment, OprfError, SCALAR_LEN};

/// A key share: index `x_i` (>= 1) and secret scalar `k_i` (nonzero; zeroized on drop,
/// redacted in `Debug`). Its encoding, inside a [`super::ShareCiphertext`] and in a node's
/// sealed store, is the scalar alone: 32 bytes little-endian canonical; the index travels
/// beside it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct KeyShare {
    index: u64,
    secret: Scalar,
}

impl KeyShare {
    /// A share from its index and its 32-byte encoding. Refuses index 0, a non-canonical
    /// scalar and zero.
    pub fn from_bytes(index: u64, bytes: &[u8]) -> Result<Self, OprfError> {
        if index == 0 {
            return Err(OprfError::ZeroIndex);
        }
        let secret = parse_nonzero_scalar(bytes, "key_share")?;
        Ok(Self { index, secret })
    }

    /// A share computed by [`super::split`]: `index` nonzero, `secret` nonzero.
    pub(crate) fn new(index: u64, secret: Scalar) -> Self {
        Self { index, secret }
    }

    /// The 32-byte encoding of the secret scalar.
    pub fn to_bytes(&self) -> Zeroizing<[u8; SCALAR_LEN]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// The share index `x_i` (the voter's node id).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The share's commitment `K_i = k_i * G`.
    pub fn commitment(&self) -> Commitment {
        // Nonzero scalar times the basepoint: never the identity.
        Commitment::from_point(RistrettoPoint::mul_base(&self.secret))
    }

    /// The secret scalar.
    pub(crate) fn secret(&self) -> &Scalar {
        &self.secret
    }
}

impl fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyShare(index {}, <redacted>)", self.index)
    }
}
