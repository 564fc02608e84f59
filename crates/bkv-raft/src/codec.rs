//! Binary encoding of everything bkv-raft writes to disk or to the wire: postcard, strict.
//!
//! Decoding is the edge where untrusted or possibly corrupt bytes become typed values: it
//! rejects trailing bytes and never panics.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// postcard refused the bytes (truncated, wrong variant, bad length, ...).
    #[error("malformed encoding: {0}")]
    Malformed(#[from] postcard::Error),
    /// A value decoded but bytes were left over.
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
    /// The bytes are longer than allowed for this message.
    #[error("{len} bytes exceed the limit of {max}")]
    TooLarge {
        /// Length received.
        len: usize,
        /// Largest allowed.
        max: usize,
    },
}

/// Encodes a value with postcard.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(postcard::to_stdvec(value)?)
}

/// Decodes a whole byte string into one value; leftover bytes are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, rest) = postcard::take_from_bytes::<T>(bytes)?;
    if !rest.is_empty() {
        return Err(CodecError::Trailing(rest.len()));
    }
    Ok(value)
}

/// Decodes like [`decode`], refusing inputs longer than `max` bytes first.
pub fn decode_bounded<T: DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, CodecError> {
    if bytes.len() > max {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    decode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let v: (u64, String) = (7, "x".into());
        let b = encode(&v).expect("encode");
        assert_eq!(decode::<(u64, String)>(&b).expect("decode"), v);

        let mut long = b.clone();
        long.push(0);
        assert!(matches!(
            decode::<(u64, String)>(&long),
            Err(CodecError::Trailing(1))
        ));
        assert!(matches!(
            decode::<(u64, String)>(&b[..1]),
            Err(CodecError::Malformed(_))
        ));
        assert!(matches!(
            decode_bounded::<(u64, String)>(&b, 1),
            Err(CodecError::TooLarge { .. })
        ));
    }
}
