//! The two 64-byte secrets OPAQUE gives bkv: the export key (client only, seals K) and the
//! session key (both sides, transports the sealed K).

use std::fmt;

use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox};
use zeroize::Zeroize;

use super::FormatError;

/// Length of OPAQUE's export and session keys with SHA-512.
pub const OPAQUE_KEY_LEN: usize = 64;

macro_rules! secret_key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name(SecretBox<[u8; OPAQUE_KEY_LEN]>);

        impl $name {
            /// Copies the key out of an OPAQUE output and zeroizes that output.
            pub fn take_from(output: &mut [u8]) -> Result<Self, FormatError> {
                if output.len() != OPAQUE_KEY_LEN {
                    let actual = output.len();
                    output.zeroize();
                    return Err(FormatError::WrongLength {
                        expected: OPAQUE_KEY_LEN,
                        actual,
                    });
                }
                let mut key = SecretBox::new(Box::new([0u8; OPAQUE_KEY_LEN]));
                key.expose_secret_mut().copy_from_slice(output);
                output.zeroize();
                Ok(Self(key))
            }

            /// The key bytes, for HKDF.
            pub fn expose(&self) -> &[u8; OPAQUE_KEY_LEN] {
                self.0.expose_secret()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(<redacted>)", stringify!($name))
            }
        }
    };
}

secret_key!(
    /// OPAQUE's export key: known to the client only, after registration or login. Seals K.
    ExportKey
);
secret_key!(
    /// OPAQUE's session key of one login: known to the client and to the server that
    /// finished the login. Transports `sealed_key`.
    SessionKey
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_from_copies_and_wipes_the_source() {
        let mut out = [9u8; 64];
        let key = SessionKey::take_from(&mut out);
        assert!(out.iter().all(|b| *b == 0));
        assert_eq!(key.map(|k| k.expose()[0]).ok(), Some(9));
        let mut short = [1u8; 10];
        assert!(ExportKey::take_from(&mut short).is_err());
        assert!(short.iter().all(|b| *b == 0));
        let key = ExportKey::take_from(&mut [5u8; 64]);
        assert_eq!(
            key.map(|k| format!("{k:?}")).ok().as_deref(),
            Some("ExportKey(<redacted>)")
        );
    }
}
