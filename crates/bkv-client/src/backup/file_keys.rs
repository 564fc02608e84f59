//! The keys of one backup file, derived from K and the file's salt with HKDF-SHA256
//! (docs/BACKUP_FORMAT.md §3): the header MAC key, the AES-256-GCM payload key and the
//! 7-byte nonce prefix; and the STREAM nonce of each chunk.

use std::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;
use bkv_core::protocol::BackupKey;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::header::{HEADER_MAC_LEN, SALT_LEN};

/// HKDF info of the per-file key material.
pub const FILE_KEYS_INFO: &[u8] = b"bkv/backup-file/v1";

/// Length of the nonce prefix.
pub const NONCE_PREFIX_LEN: usize = 7;

/// Length of a chunk nonce: prefix, 4-byte counter, last-chunk flag.
pub const NONCE_LEN: usize = NONCE_PREFIX_LEN + 4 + 1;

/// Length of the HKDF output: header key (32), payload key (32), nonce prefix (7).
pub const FILE_KEYS_LEN: usize = 32 + 32 + NONCE_PREFIX_LEN;

/// The keys of one file. Zeroized on drop (the AES key schedule through aes-gcm's
/// `zeroize` feature); `Debug` shows nothing.
pub struct FileKeys {
    header_key: Zeroizing<[u8; 32]>,
    cipher: Aes256Gcm,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
}

impl FileKeys {
    /// `okm = HKDF-SHA256(salt, ikm = K, info = "bkv/backup-file/v1", L = 71)`;
    /// header key `okm[0..32]`, payload key `okm[32..64]`, nonce prefix `okm[64..71]`.
    pub fn derive(key: &BackupKey, salt: &[u8; SALT_LEN]) -> Self {
        let okm = Self::material(key, salt);
        let mut header_key = Zeroizing::new([0u8; 32]);
        header_key.copy_from_slice(&okm[..32]);
        let mut payload_key = Zeroizing::new([0u8; 32]);
        payload_key.copy_from_slice(&okm[32..64]);
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        nonce_prefix.copy_from_slice(&okm[64..]);
        let cipher = Aes256Gcm::new(&(*payload_key).into());
        Self {
            header_key,
            cipher,
            nonce_prefix,
        }
    }

    /// The raw HKDF output (for the test vectors).
    pub fn material(key: &BackupKey, salt: &[u8; SALT_LEN]) -> Zeroizing<[u8; FILE_KEYS_LEN]> {
        let mut okm = Zeroizing::new([0u8; FILE_KEYS_LEN]);
        Hkdf::<Sha256>::new(Some(salt), key.expose())
            .expand(FILE_KEYS_INFO, okm.as_mut())
            // 71 bytes is far below HKDF-SHA256's limit of 255 * 32.
            .expect("HKDF-SHA256 expands 71 bytes");
        okm
    }

    /// `HMAC-SHA256(header_key, prefix)`.
    pub fn header_mac(&self, prefix: &[u8]) -> [u8; HEADER_MAC_LEN] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.header_key.as_ref())
            // HMAC takes keys of any length.
            .expect("HMAC key of any length");
        mac.update(prefix);
        mac.finalize().into_bytes().into()
    }

    /// Checks `tag` against the header MAC of `prefix`, in constant time.
    pub fn verify_header(&self, prefix: &[u8], tag: &[u8; HEADER_MAC_LEN]) -> bool {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.header_key.as_ref())
            // HMAC takes keys of any length.
            .expect("HMAC key of any length");
        mac.update(prefix);
        mac.verify_slice(tag).is_ok()
    }

    /// The AES-256-GCM payload cipher.
    pub fn cipher(&self) -> &Aes256Gcm {
        &self.cipher
    }

    /// The nonce of chunk `counter`: `prefix || counter (u32 BE) || last (0x01 or 0x00)`.
    pub fn nonce(&self, counter: u32, last: bool) -> [u8; NONCE_LEN] {
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..NONCE_PREFIX_LEN].copy_from_slice(&self.nonce_prefix);
        nonce[NONCE_PREFIX_LEN..NONCE_PREFIX_LEN + 4].copy_from_slice(&counter.to_be_bytes());
        nonce[NONCE_LEN - 1] = u8::from(last);
        nonce
    }
}

impl fmt::Debug for FileKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileKeys(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_key_and_salt_and_nonces_on_counter_and_flag() {
        let k = BackupKey::from_bytes([1; 32]);
        let a = FileKeys::material(&k, &[0; SALT_LEN]);
        let b = FileKeys::material(&k, &[1; SALT_LEN]);
        let c = FileKeys::material(&BackupKey::from_bytes([2; 32]), &[0; SALT_LEN]);
        assert_ne!(*a, *b);
        assert_ne!(*a, *c);
        let keys = FileKeys::derive(&k, &[0; SALT_LEN]);
        assert_eq!(keys.nonce(0, false)[..7], a[64..]);
        assert_eq!(keys.nonce(0x0102_0304, true)[7..], [1, 2, 3, 4, 1]);
        assert_eq!(keys.nonce(5, false)[7..], [0, 0, 0, 5, 0]);
        let mac = keys.header_mac(b"prefix");
        assert!(keys.verify_header(b"prefix", &mac));
        assert!(!keys.verify_header(b"prefiy", &mac));
        assert_eq!(format!("{keys:?}"), "FileKeys(<redacted>)");
    }
}
