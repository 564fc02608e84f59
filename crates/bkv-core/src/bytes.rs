//! Byte strings for serde (`#[serde(with = "bkv_core::bytes")]`).
//!
//! serde sees a `Vec<u8>` as a sequence of `u8` and serializes it one element at a time. In
//! postcard, a byte string and a sequence of `u8` are the same bytes (a varint length, then
//! the bytes), so serializing through `serialize_bytes` changes nothing on disk or on the
//! wire, only the speed: a snapshot of a million accounts is hundreds of MB of sealed records,
//! which element by element took most of the time of building and loading a snapshot
//! (docs/benchmarks-history.md §4). The reader still accepts a sequence, as formats without
//! byte strings (JSON) write one.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};

/// Serializes a byte slice as one byte string.
pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

/// Deserializes a byte string (or a sequence of bytes) into a `Vec<u8>`.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    deserializer.deserialize_byte_buf(ByteBuf)
}

/// Fixed-size byte arrays (`#[serde(with = "bkv_core::bytes::array")]`), for arrays longer
/// than serde's own impls reach (32): written as one byte string, read back only at exactly
/// their length.
pub mod array {
    use serde::de::Error as _;
    use serde::{Deserializer, Serializer};

    /// Serializes an array as one byte string.
    pub fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    /// Deserializes a byte string of exactly `N` bytes.
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        deserializer: D,
    ) -> Result<[u8; N], D::Error> {
        let bytes = super::deserialize(deserializer)?;
        let len = bytes.len();
        bytes
            .try_into()
            .map_err(|_| D::Error::invalid_length(len, &"a byte string of the array's length"))
    }
}

struct ByteBuf;

impl<'de> Visitor<'de> for ByteBuf {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        // The length hint comes from the input: cap what it may reserve.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct AsSeq {
        a: u32,
        b: Vec<u8>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct AsBytes {
        a: u32,
        #[serde(with = "super")]
        b: Vec<u8>,
    }

    proptest! {
        /// Same postcard bytes as a sequence of u8, both ways: data written by earlier builds
        /// reads back, and what this build writes reads in earlier builds.
        #[test]
        fn postcard_bytes_equal_a_sequence(a in any::<u32>(), b in proptest::collection::vec(any::<u8>(), 0..600)) {
            let seq = postcard::to_stdvec(&AsSeq { a, b: b.clone() }).unwrap();
            let bytes = postcard::to_stdvec(&AsBytes { a, b: b.clone() }).unwrap();
            prop_assert_eq!(&seq, &bytes);
            prop_assert_eq!(postcard::from_bytes::<AsBytes>(&seq).unwrap(), AsBytes { a, b: b.clone() });
            prop_assert_eq!(postcard::from_bytes::<AsSeq>(&bytes).unwrap(), AsSeq { a, b });
        }

        /// Hostile input: a truncated or garbled encoding is an error, never a panic.
        #[test]
        fn garbage_never_panics(input in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = postcard::from_bytes::<AsBytes>(&input);
        }
    }

    #[test]
    fn json_reads_back() {
        let v = AsBytes {
            a: 7,
            b: vec![1, 2, 255],
        };
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, r#"{"a":7,"b":[1,2,255]}"#);
        assert_eq!(serde_json::from_str::<AsBytes>(&json).unwrap(), v);
    }
}
