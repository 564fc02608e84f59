//! A token PIN: read from a file or an environment variable (never from a command-line flag,
//! which `ps` would show), held in a zeroizing secret with a redacted `Debug`.

use std::fmt;
use std::path::Path;

use cryptoki::types::AuthPin;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::HsmError;

/// Longest PIN accepted (SoftHSM's limit is 255 bytes).
const MAX_PIN_LEN: usize = 255;

/// A PKCS#11 PIN. `Debug` prints `Pin(<redacted>)`; the bytes are wiped on drop.
#[derive(Clone)]
pub struct Pin(SecretString);

impl Pin {
    /// Reads a PIN from a file, dropping one trailing newline (`\n` or `\r\n`). Errors name
    /// the path, never the content.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, HsmError> {
        let path = path.as_ref();
        let err = |reason: String| HsmError::PinSource {
            source_name: format!("file {}", path.display()),
            reason,
        };
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| err(e.kind().to_string()))?);
        let mut text = std::str::from_utf8(&bytes).map_err(|_| err("not UTF-8".into()))?;
        if let Some(t) = text.strip_suffix('\n') {
            text = t.strip_suffix('\r').unwrap_or(t);
        }
        Self::checked(text).map_err(|reason| err(reason.into()))
    }

    /// Reads a PIN from an environment variable. Errors name the variable, never the value.
    pub fn from_env(var: &str) -> Result<Self, HsmError> {
        let err = |reason: &str| HsmError::PinSource {
            source_name: format!("environment variable {var}"),
            reason: reason.into(),
        };
        let value = Zeroizing::new(std::env::var(var).map_err(|e| match e {
            std::env::VarError::NotPresent => err("not set"),
            std::env::VarError::NotUnicode(_) => err("not UTF-8"),
        })?);
        Self::checked(&value).map_err(err)
    }

    /// Wraps a PIN that the program made itself (a generated test PIN, a prompt). Not for
    /// PINs taken from command-line arguments.
    pub fn from_secret(secret: SecretString) -> Self {
        Self(secret)
    }

    /// Checks the PIN's shape and copies it into an exactly sized secret, so that no
    /// reallocation leaves an unwiped copy behind.
    fn checked(text: &str) -> Result<Self, &'static str> {
        if text.is_empty() {
            return Err("empty");
        }
        if text.len() > MAX_PIN_LEN {
            return Err("longer than 255 bytes");
        }
        if text.contains(['\n', '\r', '\0']) {
            return Err("contains a line break or NUL");
        }
        let mut exact = String::with_capacity(text.len());
        exact.push_str(text);
        // `into_boxed_str` does not reallocate: capacity equals length.
        let secret = SecretString::from(exact);
        Ok(Self(secret))
    }

    /// The PIN as cryptoki wants it.
    pub(crate) fn auth(&self) -> &AuthPin {
        &self.0
    }

    /// The PIN bytes, for tests that scan token files for them.
    #[cfg(feature = "testing")]
    pub(crate) fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Length in bytes (for checks that must not see the content).
    pub fn len(&self) -> usize {
        self.0.expose_secret().len()
    }

    /// Whether the PIN is empty (never true for a PIN built by this type).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_pin_drops_one_newline_and_hides_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("user.pin");
        std::fs::write(&path, "s3cret-pin\n\n").expect("write");
        // Two newlines: only one is dropped, the second makes the PIN invalid.
        let err = Pin::from_file(&path).expect_err("inner newline refused");
        let msg = err.to_string();
        assert!(msg.contains("user.pin"), "{msg}");
        assert!(!msg.contains("s3cret"), "{msg}");

        std::fs::write(&path, "s3cret-pin\r\n").expect("write");
        let pin = Pin::from_file(&path).expect("pin");
        assert_eq!(pin.0.expose_secret(), "s3cret-pin");
        assert_eq!(format!("{pin:?}"), "Pin(<redacted>)");
    }

    #[test]
    fn missing_file_and_empty_pin_name_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nope.pin");
        let msg = Pin::from_file(&path).expect_err("missing").to_string();
        assert!(msg.contains("nope.pin"), "{msg}");
        std::fs::write(&path, "\n").expect("write");
        let msg = Pin::from_file(&path).expect_err("empty").to_string();
        assert!(msg.contains("empty"), "{msg}");
    }

    #[test]
    fn env_pin_errors_name_the_variable() {
        let msg = Pin::from_env("BKV_HSM_TEST_SURELY_UNSET_VAR")
            .expect_err("unset")
            .to_string();
        assert!(msg.contains("BKV_HSM_TEST_SURELY_UNSET_VAR"), "{msg}");
        // Cargo sets CARGO_PKG_NAME for the tests it runs.
        if std::env::var_os("CARGO_PKG_NAME").is_some() {
            let pin = Pin::from_env("CARGO_PKG_NAME").expect("set by cargo");
            assert_eq!(pin.0.expose_secret(), "bkv-hsm");
        }
    }
}
