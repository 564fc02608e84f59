//! RSA public keys as DER SubjectPublicKeyInfo (rsaEncryption, NULL parameters), the form in
//! which nodes exchange enrollment keys. Encoding is canonical DER; parsing accepts exactly
//! that form and nothing else, so a key has one encoding and one fingerprint.

use sha2::{Digest, Sha256};

use crate::HsmError;

/// DER of AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }.
const RSA_ALG_ID: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

/// Smallest accepted modulus, in bits.
pub const MIN_MODULUS_BITS: usize = 3072;
/// Largest accepted modulus, in bits.
pub const MAX_MODULUS_BITS: usize = 8192;

/// An RSA public key: big-endian modulus and public exponent without leading zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsaPublic {
    /// The modulus n.
    pub modulus: Vec<u8>,
    /// The public exponent e.
    pub exponent: Vec<u8>,
}

impl RsaPublic {
    /// From the big-endian values PKCS#11 returns (leading zeros allowed).
    pub fn new(modulus: &[u8], exponent: &[u8]) -> Self {
        Self {
            modulus: strip_zeros(modulus).to_vec(),
            exponent: strip_zeros(exponent).to_vec(),
        }
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn to_spki_der(&self) -> Vec<u8> {
        let mut rsa_key = Vec::new();
        push_uint(&mut rsa_key, &self.modulus);
        push_uint(&mut rsa_key, &self.exponent);
        let rsa_key = tlv(0x30, &rsa_key);
        let mut bits = Vec::with_capacity(rsa_key.len() + 1);
        bits.push(0); // no unused bits
        bits.extend_from_slice(&rsa_key);
        let mut body = RSA_ALG_ID.to_vec();
        body.extend_from_slice(&tlv(0x03, &bits));
        tlv(0x30, &body)
    }

    /// Parses a DER SubjectPublicKeyInfo holding an RSA key of an accepted size.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, HsmError> {
        let bad = HsmError::BadPublicKey;
        let mut outer = Reader(der);
        let spki = outer.expect(0x30)?;
        outer.end()?;
        let mut spki = Reader(spki);
        let alg = spki.expect(0x30)?;
        if tlv(0x30, alg) != RSA_ALG_ID {
            return Err(bad("not an rsaEncryption key"));
        }
        let bits = spki.expect(0x03)?;
        spki.end()?;
        let (&unused, rsa_key) = bits.split_first().ok_or(bad("empty bit string"))?;
        if unused != 0 {
            return Err(bad("bit string with unused bits"));
        }
        let mut rsa_key = Reader(rsa_key);
        let mut ints = Reader(rsa_key.expect(0x30)?);
        rsa_key.end()?;
        let modulus = ints.uint()?;
        let exponent = ints.uint()?;
        ints.end()?;
        let bits = modulus.len() * 8 - modulus[0].leading_zeros() as usize;
        if !(MIN_MODULUS_BITS..=MAX_MODULUS_BITS).contains(&bits) {
            return Err(bad("modulus size out of range"));
        }
        if modulus[modulus.len() - 1] & 1 == 0 {
            return Err(bad("even modulus"));
        }
        if exponent.len() > 8 || exponent[exponent.len() - 1] & 1 == 0 || exponent == [1] {
            return Err(bad("unacceptable public exponent"));
        }
        let key = Self {
            modulus: modulus.to_vec(),
            exponent: exponent.to_vec(),
        };
        // Belt and braces: only the canonical encoding is accepted.
        if key.to_spki_der() != der {
            return Err(bad("not canonical DER"));
        }
        Ok(key)
    }
}

/// SHA-256 of the DER, lower-case hex: the key's fingerprint.
pub fn fingerprint(spki_der: &[u8]) -> String {
    hex::encode(Sha256::digest(spki_der))
}

/// Parses a fingerprint (64 hex digits, any case) into its 32 bytes.
pub fn parse_fingerprint(fp: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(fp.trim(), &mut out).ok()?;
    Some(out)
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

/// Appends a DER INTEGER for a non-negative big-endian magnitude.
fn push_uint(out: &mut Vec<u8>, magnitude: &[u8]) {
    let magnitude = strip_zeros(magnitude);
    let mut body = Vec::with_capacity(magnitude.len() + 1);
    if magnitude.first().is_none_or(|&b| b & 0x80 != 0) {
        body.push(0);
    }
    body.extend_from_slice(magnitude);
    out.extend_from_slice(&tlv(0x02, &body));
}

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    out.push(tag);
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let lead = bytes
            .iter()
            .position(|&x| x != 0)
            .unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - lead) as u8);
        out.extend_from_slice(&bytes[lead..]);
    }
    out.extend_from_slice(body);
    out
}

/// A strict DER reader over a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// Reads one element with `tag` and returns its body.
    fn expect(&mut self, tag: u8) -> Result<&'a [u8], HsmError> {
        let bad = HsmError::BadPublicKey;
        let (&t, rest) = self.0.split_first().ok_or(bad("truncated"))?;
        if t != tag {
            return Err(bad("unexpected DER tag"));
        }
        let (&l, rest) = rest.split_first().ok_or(bad("truncated"))?;
        let (len, rest) = if l < 0x80 {
            (l as usize, rest)
        } else {
            let n = (l & 0x7f) as usize;
            if n == 0 || n > 2 || rest.len() < n || rest[0] == 0 {
                return Err(bad("bad DER length"));
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | b as usize);
            if len < 0x80 {
                return Err(bad("non-minimal DER length"));
            }
            (len, &rest[n..])
        };
        if rest.len() < len {
            return Err(bad("truncated"));
        }
        let (body, rest) = rest.split_at(len);
        self.0 = rest;
        Ok(body)
    }

    /// Reads a positive INTEGER in minimal encoding; returns its magnitude.
    fn uint(&mut self) -> Result<&'a [u8], HsmError> {
        let bad = HsmError::BadPublicKey;
        let body = self.expect(0x02)?;
        match body {
            [] => Err(bad("empty integer")),
            [b, ..] if b & 0x80 != 0 => Err(bad("negative integer")),
            [0] => Err(bad("zero")),
            [0, b, ..] if b & 0x80 == 0 => Err(bad("non-minimal integer")),
            [0, rest @ ..] => Ok(rest),
            all => Ok(all),
        }
    }

    /// Errors unless everything has been read.
    fn end(&self) -> Result<(), HsmError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(HsmError::BadPublicKey("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> RsaPublic {
        let mut n = vec![0xC3u8; 384]; // 3072 bits, top bit set
        n[383] |= 1;
        RsaPublic::new(&n, &[0x01, 0x00, 0x01])
    }

    #[test]
    fn spki_round_trips() {
        let k = key();
        let der = k.to_spki_der();
        assert_eq!(RsaPublic::from_spki_der(&der).expect("parses"), k);
        assert_eq!(fingerprint(&der).len(), 64);
        assert_eq!(
            parse_fingerprint(&fingerprint(&der).to_uppercase()),
            Some(<[u8; 32]>::from(Sha256::digest(&der)))
        );
        assert_eq!(parse_fingerprint("abc"), None);
    }

    #[test]
    fn leading_zeros_from_pkcs11_do_not_change_the_encoding() {
        let k = key();
        let mut padded = vec![0u8, 0];
        padded.extend_from_slice(&k.modulus);
        assert_eq!(RsaPublic::new(&padded, &[0, 1, 0, 1]), k);
    }

    #[test]
    fn rejects_small_odd_and_trailing() {
        let small = RsaPublic::new(&[0xC3; 256], &[1, 0, 1]);
        assert!(RsaPublic::from_spki_der(&small.to_spki_der()).is_err());
        let mut der = key().to_spki_der();
        der.push(0);
        assert!(RsaPublic::from_spki_der(&der).is_err());
        let even_e = RsaPublic::new(&key().modulus, &[2]);
        assert!(RsaPublic::from_spki_der(&even_e.to_spki_der()).is_err());
        assert!(RsaPublic::from_spki_der(&[]).is_err());
        assert!(RsaPublic::from_spki_der(&[0x30, 0x82, 0xff, 0xff]).is_err());
    }
}
