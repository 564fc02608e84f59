//! The three public ristretto255 elements that travel: a share's [`Commitment`] `K_i`, the
//! client's [`BlindedElement`] `B` and a node's (or the combined) [`EvaluatedElement`] `Z`.
//!
//! Encoding of each: RFC 9497 `SerializeElement`, the 32-byte canonical ristretto255
//! encoding. Parsing refuses any other length, any non-canonical encoding and the identity
//! (all zeros). Each value keeps its decoded point, so it is decompressed once, at the edge.

use std::fmt;
use std::hash::{Hash, Hasher};

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::traits::IsIdentity;
use serde::{Deserialize, Serialize};

use super::{ELEMENT_LEN, OprfError};

/// Decodes a non-identity element named `what`.
fn decode(bytes: &[u8], what: &'static str) -> Result<RistrettoPoint, OprfError> {
    let compressed =
        CompressedRistretto::from_slice(bytes).map_err(|_| OprfError::WrongLength {
            what,
            expected: ELEMENT_LEN,
            actual: bytes.len(),
        })?;
    let point = compressed
        .decompress()
        .ok_or(OprfError::NotRistretto { what })?;
    if point.is_identity() {
        return Err(OprfError::Identity { what });
    }
    Ok(point)
}

macro_rules! element {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Serialize, Deserialize)]
        #[serde(try_from = "[u8; 32]", into = "[u8; 32]")]
        pub struct $name {
            point: RistrettoPoint,
            bytes: [u8; ELEMENT_LEN],
        }

        impl $name {
            /// Length of the encoding, in bytes.
            pub const LEN: usize = ELEMENT_LEN;
            /// The field name in errors.
            pub const WHAT: &'static str = $what;

            /// Parses the 32-byte canonical encoding; refuses the identity.
            pub fn parse(bytes: &[u8]) -> Result<Self, OprfError> {
                let point = decode(bytes, $what)?;
                let mut array = [0u8; ELEMENT_LEN];
                array.copy_from_slice(bytes);
                Ok(Self { point, bytes: array })
            }

            /// The encoding.
            pub const fn as_bytes(&self) -> &[u8; ELEMENT_LEN] {
                &self.bytes
            }

            /// A computed element. The caller guarantees it is not the identity (a nonzero
            /// scalar times a non-identity element of a prime-order group never is).
            pub(crate) fn from_point(point: RistrettoPoint) -> Self {
                debug_assert!(!point.is_identity());
                Self {
                    bytes: point.compress().to_bytes(),
                    point,
                }
            }

            /// The decoded point.
            pub(crate) const fn point(&self) -> &RistrettoPoint {
                &self.point
            }
        }

        impl TryFrom<[u8; ELEMENT_LEN]> for $name {
            type Error = OprfError;
            fn try_from(bytes: [u8; ELEMENT_LEN]) -> Result<Self, OprfError> {
                Self::parse(&bytes)
            }
        }

        impl From<$name> for [u8; ELEMENT_LEN] {
            fn from(e: $name) -> Self {
                e.bytes
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                // Canonical encodings: equal points have equal bytes.
                self.bytes == other.bytes
            }
        }

        impl Eq for $name {}

        impl Hash for $name {
            fn hash<H: Hasher>(&self, state: &mut H) {
                self.bytes.hash(state);
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), hex::encode(self.bytes))
            }
        }
    };
}

element!(
    /// A share's public commitment `K_i = k_i * G` (G the ristretto255 basepoint), kept in
    /// the record: nodes check a registration's commitments against each other, clients
    /// check each evaluation proof against it.
    Commitment,
    "commitment"
);
element!(
    /// The client's blinded element `B = r * HashToGroup(input)` (RFC 9497 `Blind`, OPRF
    /// mode), sent to the nodes in a recovery.
    BlindedElement,
    "blinded_element"
);
element!(
    /// An evaluated element: a node's `Z_i = k_i * B`, or their combination `Z = k * B`.
    EvaluatedElement,
    "evaluated_element"
);
