//! A large reproducible byte stream for tests of streaming code: generated as it is read,
//! never stored, so that a test of constant memory does not itself hold the data.

use std::io::{self, Read};

/// `len` pseudo-random bytes (xorshift64*), the same every time: cheap enough that the code
/// under test, not the generator, sets the pace. Read it twice to compare a round trip.
#[derive(Debug, Clone)]
pub struct GeneratedStream {
    state: u64,
    left: u64,
    /// The word being handed out, and how much of it is.
    word: [u8; 8],
    used: usize,
}

impl GeneratedStream {
    /// The stream of `len` bytes.
    pub fn new(len: u64) -> Self {
        Self {
            state: 0x9e37_79b9_7f4a_7c15,
            left: len,
            word: [0; 8],
            used: 8,
        }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> u64 {
        self.left
    }

    fn next_word(&mut self) -> [u8; 8] {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes()
    }

    /// Reads exactly `want.len()` bytes and says whether they equal `want`; false when the
    /// stream ends first.
    pub fn matches(&mut self, want: &[u8]) -> bool {
        let mut buf = [0u8; 8192];
        let mut rest = want;
        while !rest.is_empty() {
            let n = rest.len().min(buf.len());
            if self.read_exact(&mut buf[..n]).is_err() || buf[..n] != rest[..n] {
                return false;
            }
            rest = &rest[n..];
        }
        true
    }
}

impl Read for GeneratedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let out = &mut buf[..n];
        // The rest of the current word, then whole words, then the start of a new one.
        let head = out.len().min(8 - self.used);
        out[..head].copy_from_slice(&self.word[self.used..self.used + head]);
        self.used += head;
        let mut words = out[head..].chunks_exact_mut(8);
        for w in &mut words {
            w.copy_from_slice(&self.next_word());
        }
        let tail = words.into_remainder();
        if !tail.is_empty() {
            self.word = self.next_word();
            tail.copy_from_slice(&self.word[..tail.len()]);
            self.used = tail.len();
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_the_same_however_it_is_read() {
        let mut whole = Vec::new();
        GeneratedStream::new(1003).read_to_end(&mut whole).unwrap();
        assert_eq!(whole.len(), 1003);
        let mut pieces = Vec::new();
        let mut s = GeneratedStream::new(1003);
        let mut buf = [0u8; 24];
        loop {
            let n = s.read(&mut buf[..1 + pieces.len() % 23]).unwrap();
            if n == 0 {
                break;
            }
            pieces.extend_from_slice(&buf[..n]);
        }
        assert_eq!(pieces, whole);
        let mut s = GeneratedStream::new(1003);
        assert!(s.matches(&whole[..500]));
        assert!(!s.matches(&whole[..8]));
        assert!(!GeneratedStream::new(4).matches(&whole[..8]));
        assert_ne!(whole[..8], whole[8..16]);
    }
}
