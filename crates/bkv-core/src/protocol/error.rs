//! Errors of the shared byte formats. They carry lengths only, never key material.

/// Why bytes of a shared format could not be made or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Too short to hold a nonce, a tag and a plaintext.
    #[error("too short: at least {min} bytes needed, got {actual}")]
    TooShort {
        /// Smallest allowed length.
        min: usize,
        /// Length received.
        actual: usize,
    },
    /// Longer than allowed.
    #[error("too large: at most {max} bytes allowed, got {actual}")]
    TooLarge {
        /// Largest allowed length.
        max: usize,
        /// Length received.
        actual: usize,
    },
    /// Not of the one length this value has.
    #[error("must be {expected} bytes, got {actual}")]
    WrongLength {
        /// The required length.
        expected: usize,
        /// The length received.
        actual: usize,
    },
    /// AES-GCM authentication failed: another key, another AAD, or altered bytes.
    #[error("authentication failed")]
    Rejected,
    /// A primitive failed where no input should make it fail (a bug, not an attack).
    #[error("internal cryptographic failure: {0}")]
    Internal(&'static str),
}
