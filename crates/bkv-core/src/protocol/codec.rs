//! A small binary codec for the plaintexts that bkv seals (records, tickets): fixed-width
//! big-endian integers and `u32`-length-prefixed byte strings, written into a zeroizing
//! buffer of the exact final size, so secret plaintexts are never reallocated or left behind.

use zeroize::Zeroizing;

/// Why a sealed plaintext could not be decoded. Names the part, never the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// The bytes end before `.0` is complete.
    #[error("truncated at {0}")]
    Truncated(&'static str),
    /// `.0` has a value that is not allowed.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// Bytes are left after the last part.
    #[error("trailing bytes")]
    Trailing,
}

/// Writes parts into a zeroizing buffer. Sized up front with [`Writer::with_capacity`].
pub(crate) struct Writer(Zeroizing<Vec<u8>>);

impl Writer {
    /// A writer whose buffer never grows past `capacity` without reallocating.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self(Zeroizing::new(Vec::with_capacity(capacity)))
    }

    /// Space a length-prefixed part of `len` bytes takes.
    pub(crate) const fn bytes_len(len: usize) -> usize {
        4 + len
    }

    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A length-prefixed byte string. Our parts are at most a few KiB, far below `u32::MAX`.
    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.0.extend_from_slice(b);
        self
    }

    pub(crate) fn finish(self) -> Zeroizing<Vec<u8>> {
        self.0
    }
}

/// Reads parts written by [`Writer`], each named for errors.
pub(crate) struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let (head, rest) = self
            .0
            .split_at_checked(n)
            .ok_or(DecodeError::Truncated(what))?;
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// A length-prefixed byte string of at most `max` bytes.
    pub(crate) fn bytes(
        &mut self,
        max: usize,
        what: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(self.u32(what)?).map_err(|_| DecodeError::Invalid(what))?;
        if len > max {
            return Err(DecodeError::Invalid(what));
        }
        self.take(len, what)
    }

    /// Checks that nothing is left.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip_and_truncation_is_named() {
        let mut w = Writer::with_capacity(1 + 4 + 8 + Writer::bytes_len(3));
        w.u8(1).u32(7).u64(9).bytes(b"abc");
        let buf = w.finish();
        assert_eq!(buf.len(), buf.capacity());
        let mut r = Reader::new(&buf);
        assert_eq!(r.u8("v"), Ok(1));
        assert_eq!(r.u32("a"), Ok(7));
        assert_eq!(r.u64("b"), Ok(9));
        assert_eq!(r.bytes(3, "c"), Ok(&b"abc"[..]));
        assert_eq!(r.finish(), Ok(()));

        let mut r = Reader::new(&buf[..buf.len() - 1]);
        assert_eq!(r.u8("v"), Ok(1));
        assert_eq!(r.u32("a"), Ok(7));
        assert_eq!(r.u64("b"), Ok(9));
        assert_eq!(r.bytes(3, "c"), Err(DecodeError::Truncated("c")));

        let mut r = Reader::new(&buf[13..]);
        assert_eq!(r.bytes(2, "c"), Err(DecodeError::Invalid("c")));
        assert_eq!(Reader::new(b"x").finish(), Err(DecodeError::Trailing));
    }
}
