//! P-256 public points in the one form bkv exchanges them: SEC1 uncompressed,
//! `0x04 || X || Y` (65 bytes). Untrusted bytes become a [`P256Point`] here, once, and only a
//! point on the curve that is not the point at infinity gets through, before any token sees
//! it. Also reads the token's CKA_EC_POINT, which PKCS#11 defines as that point wrapped in a
//! DER OCTET STRING.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::HsmError;

/// Length of a SEC1 uncompressed P-256 point.
pub const P256_POINT_LEN: usize = 65;
/// SEC1 tag of an uncompressed point.
const UNCOMPRESSED: u8 = 0x04;
/// DER OCTET STRING header of a 65-byte value: what SoftHSM puts before the point in
/// CKA_EC_POINT.
const OCTET_STRING_65: [u8; 2] = [0x04, 0x41];

/// A valid P-256 point (on the curve, not the identity) in SEC1 uncompressed form. P-256
/// has cofactor 1, so every such point is in the prime-order group.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct P256Point([u8; P256_POINT_LEN]);

impl P256Point {
    /// Checks untrusted bytes: exactly 65 bytes, the uncompressed tag, a point on P-256 that
    /// is not the point at infinity. The error says which, never the bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, HsmError> {
        let bad = HsmError::InvalidRequest;
        let raw: [u8; P256_POINT_LEN] = bytes
            .try_into()
            .map_err(|_| bad("a P-256 point must be 65 bytes (SEC1 uncompressed)"))?;
        match raw[0] {
            UNCOMPRESSED => {}
            0x00 => return Err(bad("the point at infinity is not a P-256 public key")),
            0x02 | 0x03 => return Err(bad("compressed P-256 points are not accepted")),
            _ => return Err(bad("not a SEC1 point encoding")),
        }
        // Rejects coordinates >= p, points off the curve and the identity.
        p256::PublicKey::from_sec1_bytes(&raw).map_err(|_| bad("not a point on P-256"))?;
        Ok(Self(raw))
    }

    /// A point as the token gives it in CKA_EC_POINT: DER OCTET STRING around the 65 bytes
    /// (the PKCS#11 form), or the bare 65 bytes (what some modules return).
    pub(crate) fn from_ec_point_attribute(value: &[u8]) -> Result<Self, HsmError> {
        let inner = match value.len() {
            P256_POINT_LEN => value,
            len if len == P256_POINT_LEN + 2 && value[..2] == OCTET_STRING_65 => &value[2..],
            _ => return Err(HsmError::KeyMissing("a P-256 point in CKA_EC_POINT")),
        };
        Self::parse(inner).map_err(|_| HsmError::KeyMissing("a P-256 point in CKA_EC_POINT"))
    }

    /// The 65 bytes.
    pub fn to_bytes(&self) -> [u8; P256_POINT_LEN] {
        self.0
    }

    /// The 65 bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8; P256_POINT_LEN] {
        &self.0
    }

    /// SHA-256 of the 65 bytes, lower-case hex: what operators compare.
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(self.0))
    }
}

impl fmt::Debug for P256Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P256Point({})", hex::encode(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The P-256 base point G (FIPS 186-4, D.1.2.3).
    const G: [u8; 65] = {
        let x: [u8; 32] = [
            0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4,
            0x40, 0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45,
            0xd8, 0x98, 0xc2, 0x96,
        ];
        let y: [u8; 32] = [
            0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f,
            0x9e, 0x16, 0x2b, 0xce, 0x33, 0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68,
            0x37, 0xbf, 0x51, 0xf5,
        ];
        let mut p = [0u8; 65];
        p[0] = 0x04;
        let mut i = 0;
        while i < 32 {
            p[1 + i] = x[i];
            p[33 + i] = y[i];
            i += 1;
        }
        p
    };

    fn refusal(bytes: &[u8]) -> &'static str {
        match P256Point::parse(bytes) {
            Err(HsmError::InvalidRequest(why)) => why,
            other => panic!("accepted or wrong error: {other:?}"),
        }
    }

    #[test]
    fn the_base_point_parses_and_has_a_stable_fingerprint() {
        let p = P256Point::parse(&G).expect("G is on the curve");
        assert_eq!(p.to_bytes(), G);
        assert_eq!(p.fingerprint(), hex::encode(Sha256::digest(G)));
        let mut der = OCTET_STRING_65.to_vec();
        der.extend_from_slice(&G);
        assert_eq!(P256Point::from_ec_point_attribute(&der).expect("DER"), p);
        assert_eq!(P256Point::from_ec_point_attribute(&G).expect("raw"), p);
    }

    #[test]
    fn every_bad_point_is_refused_with_its_reason() {
        assert!(refusal(&G[..64]).contains("65 bytes"));
        assert!(refusal(&[G.as_slice(), &[0]].concat()).contains("65 bytes"));
        assert!(refusal(&[]).contains("65 bytes"));
        let mut off = G;
        off[64] ^= 1;
        assert!(refusal(&off).contains("not a point"));
        let mut compressed = [0u8; 65];
        compressed[0] = 0x02 | (G[64] & 1);
        compressed[1..33].copy_from_slice(&G[1..33]);
        assert!(refusal(&compressed).contains("compressed"));
        assert!(refusal(&[0u8; 65]).contains("infinity"));
        let mut hybrid = G;
        hybrid[0] = 0x06;
        assert!(refusal(&hybrid).contains("SEC1"));
        // x = p (not reduced), y = 0: not accepted as a coordinate.
        let mut unreduced = [0u8; 65];
        unreduced[0] = 0x04;
        unreduced[1..33].fill(0xff);
        unreduced[1..5].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        unreduced[5..9].copy_from_slice(&[0, 0, 0, 1]);
        unreduced[9..21].fill(0);
        assert!(refusal(&unreduced).contains("not a point"));
        let mut der = OCTET_STRING_65.to_vec();
        der.extend_from_slice(&off);
        assert!(P256Point::from_ec_point_attribute(&der).is_err());
        assert!(P256Point::from_ec_point_attribute(&der[..40]).is_err());
    }
}
