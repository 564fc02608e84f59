//! Identifiers and small bounded values of the vault, parsed once at the edge.
//!
//! Byte ids show as lowercase hex in `Display` and `Debug`; none of them is secret.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a value could not be parsed into one of the types here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The value is empty.
    #[error("is empty")]
    Empty,
    /// The value has the wrong length.
    #[error("must be {expected} bytes, got {actual}")]
    WrongLength {
        /// The required length.
        expected: usize,
        /// The length received.
        actual: usize,
    },
    /// The value is longer than allowed.
    #[error("is longer than {max} bytes")]
    TooLong {
        /// The largest length allowed.
        max: usize,
    },
    /// The value holds a byte outside the allowed set (its position is given, not the byte).
    #[error("has a character outside [A-Za-z0-9._:@+=-] at byte {position}")]
    BadCharacter {
        /// Byte offset of the first bad character.
        position: usize,
    },
    /// A number is out of its range.
    #[error("must be in {min}..={max}, got {actual}")]
    OutOfRange {
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
        /// What was received.
        actual: u64,
    },
}

/// An account id: 1 to 128 bytes of `[A-Za-z0-9._:@+=-]`.
///
/// The charset keeps account ids free of control characters, whitespace and anything that
/// would need escaping in logs or JSON.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    /// Longest account id, in bytes.
    pub const MAX_LEN: usize = 128;

    /// Parses an account id from text.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        Self::parse_bytes(s.as_bytes())
    }

    /// Parses an account id from raw bytes (for example a token claim or a request field).
    pub fn parse_bytes(b: &[u8]) -> Result<Self, IdError> {
        if b.is_empty() {
            return Err(IdError::Empty);
        }
        if b.len() > Self::MAX_LEN {
            return Err(IdError::TooLong { max: Self::MAX_LEN });
        }
        if let Some(position) = b.iter().position(|c| !Self::allowed(*c)) {
            return Err(IdError::BadCharacter { position });
        }
        // Every byte is ASCII (checked above), so this is valid UTF-8.
        let s = String::from_utf8(b.to_vec()).map_err(|e| IdError::BadCharacter {
            position: e.utf8_error().valid_up_to(),
        })?;
        Ok(Self(s))
    }

    fn allowed(c: u8) -> bool {
        c.is_ascii_alphanumeric() || b"._:@+=-".contains(&c)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as bytes (for AADs and hashes).
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl TryFrom<String> for AccountId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<AccountId> for String {
    fn from(a: AccountId) -> String {
        a.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({})", self.0)
    }
}

macro_rules! byte_id {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// Wraps raw bytes.
            pub const fn new(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// Parses from a byte slice of exactly [`Self::LEN`] bytes.
            pub fn parse(b: &[u8]) -> Result<Self, IdError> {
                let arr: [u8; $len] = b.try_into().map_err(|_| IdError::WrongLength {
                    expected: $len,
                    actual: b.len(),
                })?;
                Ok(Self(arr))
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), hex::encode(self.0))
            }
        }
    };
}

byte_id!(
    /// Identifies one recovery attempt: 16 random bytes chosen by the client. Retries of
    /// the same attempt carry the same id.
    AttemptId,
    16
);
byte_id!(
    /// Identifies one registration: 16 random bytes chosen by the client, so that a retried
    /// `RegisterFinish` stages nothing new.
    RequestId,
    16
);
byte_id!(
    /// Identifies a cluster: 16 random bytes made at `init`.
    ClusterId,
    16
);

macro_rules! number_id {
    ($(#[$doc:meta])* $name:ident, $ty:ty) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
        )]
        pub struct $name(pub $ty);

        impl $name {
            /// The number.
            pub const fn get(self) -> $ty {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

number_id!(
    /// A record version: the clock of the `Stage` command that created it in microseconds
    /// (the leader's when it proposed the entry), or one above the highest version issued
    /// before when that is not higher. Unique in the cluster and increasing, never reused,
    /// even after a delete; it does not count registrations.
    RecordVersion,
    u64
);
number_id!(
    /// The number of a guess charged on one record version, from 1, increasing.
    ChargeNumber,
    u64
);

/// Wrong guesses allowed before a record is destroyed: 1 up to the cluster's maximum.
///
/// Deserializing re-checks the range `1..=CEILING`, so a Raft entry or snapshot can never
/// carry a zero or oversized limit.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct GuessLimit(u32);

impl GuessLimit {
    /// The default when a registration asks for none.
    pub const DEFAULT: GuessLimit = GuessLimit(10);
    /// The largest maximum a cluster may be configured with.
    pub const CEILING: u32 = 1000;

    /// Parses a limit in `1..=max`.
    pub fn parse(n: u32, max: GuessLimit) -> Result<Self, IdError> {
        if n == 0 || n > max.0 {
            return Err(IdError::OutOfRange {
                min: 1,
                max: max.0.into(),
                actual: n.into(),
            });
        }
        Ok(Self(n))
    }

    /// Parses a cluster maximum in `1..=CEILING`.
    pub fn parse_max(n: u32) -> Result<Self, IdError> {
        Self::parse(n, GuessLimit(Self::CEILING))
    }

    /// The limit.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for GuessLimit {
    type Error = IdError;
    fn try_from(n: u32) -> Result<Self, IdError> {
        Self::parse_max(n)
    }
}

impl From<GuessLimit> for u32 {
    fn from(l: GuessLimit) -> u32 {
        l.0
    }
}

impl fmt::Display for GuessLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for GuessLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GuessLimit({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_parse_once_and_reject_bad_input() {
        assert_eq!(
            AccountId::parse("alice@example.com")
                .map(|a| a.to_string())
                .ok()
                .as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(AccountId::parse(""), Err(IdError::Empty));
        assert_eq!(
            AccountId::parse(&"a".repeat(129)),
            Err(IdError::TooLong { max: 128 })
        );
        assert!(AccountId::parse(&"a".repeat(128)).is_ok());
        assert_eq!(
            AccountId::parse("ab\ncd"),
            Err(IdError::BadCharacter { position: 2 })
        );
        assert_eq!(
            AccountId::parse("é"),
            Err(IdError::BadCharacter { position: 0 })
        );
        assert_eq!(
            AccountId::parse_bytes(b"a\xff"),
            Err(IdError::BadCharacter { position: 1 })
        );
        assert_eq!(
            AccountId::parse("a b"),
            Err(IdError::BadCharacter { position: 1 })
        );
    }

    #[test]
    fn account_id_serde_revalidates() {
        let bytes = postcard::to_stdvec(&"bad\u{7}".to_string()).unwrap_or_default();
        assert!(postcard::from_bytes::<AccountId>(&bytes).is_err());
    }

    #[test]
    fn byte_ids_need_exact_length() {
        assert!(AttemptId::parse(&[0u8; 16]).is_ok());
        assert_eq!(
            AttemptId::parse(&[0u8; 15]),
            Err(IdError::WrongLength {
                expected: 16,
                actual: 15
            })
        );
        assert_eq!(format!("{}", RequestId::new([0xab; 16])), "ab".repeat(16));
    }

    #[test]
    fn guess_limits_are_bounded() {
        let max = GuessLimit::parse_max(20).unwrap_or(GuessLimit::DEFAULT);
        assert!(GuessLimit::parse(0, max).is_err());
        assert!(GuessLimit::parse(21, max).is_err());
        assert_eq!(GuessLimit::parse(20, max).map(GuessLimit::get), Ok(20));
        assert!(GuessLimit::parse_max(GuessLimit::CEILING + 1).is_err());
    }

    #[test]
    fn guess_limit_serde_revalidates() {
        for bad in [0u32, GuessLimit::CEILING + 1] {
            let bytes = postcard::to_stdvec(&bad).unwrap_or_default();
            assert!(postcard::from_bytes::<GuessLimit>(&bytes).is_err(), "{bad}");
        }
        let bytes = postcard::to_stdvec(&7u32).unwrap_or_default();
        assert_eq!(
            postcard::from_bytes::<GuessLimit>(&bytes).map(GuessLimit::get),
            Ok(7)
        );
    }
}
