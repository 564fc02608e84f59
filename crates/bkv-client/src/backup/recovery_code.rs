//! The 64-digit recovery code: the other way to protect a backup key, written down by the
//! person instead of kept in the vault (docs/BACKUP_FORMAT.md §6).
//!
//! 62 random decimal digits and 2 check digits (ISO 7064 MOD 97-10, as in IBANs); the
//! backup key is derived from the code with HKDF-SHA256. The code holds
//! 62 · log2(10) ≈ 205.9 bits of entropy, which is then the backup key's strength: 64
//! decimal digits (212.6 bits at most) cannot carry a random 256-bit key, let alone with a
//! check.

use std::fmt;

use bkv_core::protocol::{BACKUP_KEY_LEN, BackupKey};
use hkdf::Hkdf;
use rand::Rng as _;
use rand::rngs::OsRng;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// Digits in a recovery code.
pub const RECOVERY_CODE_DIGITS: usize = 64;

/// Random digits in a code; the last two are check digits.
pub const RECOVERY_CODE_RANDOM_DIGITS: usize = RECOVERY_CODE_DIGITS - 2;

/// HKDF info of the backup key derived from a code.
pub const RECOVERY_CODE_INFO: &[u8] = b"bkv/recovery-code/v1";

/// Digits per group when a code is shown.
pub const RECOVERY_CODE_GROUP: usize = 4;

/// Why a typed recovery code was refused. Never shows the code's digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryCodeError {
    /// A character that is neither a digit nor a separator (space, tab, line break, `-`).
    #[error(
        "the recovery key has {found:?} at character {position}: only digits 0-9, spaces and dashes are allowed"
    )]
    InvalidCharacter {
        /// The character found.
        found: char,
        /// Its position in the text, from 1.
        position: usize,
    },
    /// Not 64 digits.
    #[error("a recovery key has 64 digits; this one has {digits}")]
    WrongLength {
        /// The digits found.
        digits: usize,
    },
    /// The check digits do not match: a digit is mistyped, or two are swapped.
    #[error(
        "the recovery key's check digits do not match: a digit is mistyped or two digits are swapped"
    )]
    CheckFailed,
}

/// A 64-digit recovery code. Zeroized on drop; `Debug` shows nothing.
pub struct RecoveryCode(Zeroizing<[u8; RECOVERY_CODE_DIGITS]>);

impl RecoveryCode {
    /// A fresh code: 62 uniformly random digits from the operating system's generator and
    /// their 2 check digits.
    pub fn generate() -> Self {
        let mut digits = Zeroizing::new([0u8; RECOVERY_CODE_DIGITS]);
        for d in digits.iter_mut().take(RECOVERY_CODE_RANDOM_DIGITS) {
            *d = b'0' + OsRng.gen_range(0..10u8);
        }
        let check = check_digits(&digits[..RECOVERY_CODE_RANDOM_DIGITS]);
        digits[RECOVERY_CODE_RANDOM_DIGITS..].copy_from_slice(&check);
        Self(digits)
    }

    /// Parses a typed code: 64 digits, with any spaces, tabs, line breaks or dashes between
    /// them; nothing else.
    pub fn parse(text: &str) -> Result<Self, RecoveryCodeError> {
        let mut digits = Zeroizing::new([0u8; RECOVERY_CODE_DIGITS]);
        let mut n = 0usize;
        for (i, c) in text.chars().enumerate() {
            match c {
                '0'..='9' => {
                    if let Some(slot) = digits.get_mut(n) {
                        *slot = c as u8;
                    }
                    n += 1;
                }
                ' ' | '\t' | '\r' | '\n' | '-' => {}
                found => {
                    return Err(RecoveryCodeError::InvalidCharacter {
                        found,
                        position: i + 1,
                    });
                }
            }
        }
        if n != RECOVERY_CODE_DIGITS {
            return Err(RecoveryCodeError::WrongLength { digits: n });
        }
        if mod97(&digits[..]) != 1 {
            return Err(RecoveryCodeError::CheckFailed);
        }
        Ok(Self(digits))
    }

    /// The 64 digits, without separators.
    pub fn digits(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.0[..]).expect("ASCII digits")
    }

    /// The code as shown to the person: 16 groups of 4 digits separated by spaces.
    pub fn grouped(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(
            RECOVERY_CODE_DIGITS + RECOVERY_CODE_DIGITS / RECOVERY_CODE_GROUP,
        ));
        for (i, group) in self
            .digits()
            .as_bytes()
            .chunks(RECOVERY_CODE_GROUP)
            .enumerate()
        {
            if i > 0 {
                out.push(' ');
            }
            // Only ASCII digits are ever stored.
            out.push_str(std::str::from_utf8(group).expect("ASCII digits"));
        }
        out
    }

    /// The backup key: `HKDF-SHA256(salt = none, ikm = the 64 ASCII digits,
    /// info = "bkv/recovery-code/v1", L = 32)`.
    pub fn backup_key(&self) -> BackupKey {
        let mut okm = Zeroizing::new([0u8; BACKUP_KEY_LEN]);
        Hkdf::<Sha256>::new(None, &self.0[..])
            .expand(RECOVERY_CODE_INFO, okm.as_mut())
            // 32 bytes is far below HKDF-SHA256's limit.
            .expect("HKDF-SHA256 expands 32 bytes");
        BackupKey::from_bytes(*okm)
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(<redacted>)")
    }
}

impl PartialEq for RecoveryCode {
    fn eq(&self, other: &Self) -> bool {
        self.0[..].ct_eq(&other.0[..]).into()
    }
}

impl Eq for RecoveryCode {}

/// The number formed by ASCII `digits`, modulo 97.
fn mod97(digits: &[u8]) -> u32 {
    digits
        .iter()
        .fold(0u32, |r, d| (r * 10 + u32::from(d - b'0')) % 97)
}

/// ISO 7064 MOD 97-10 check digits of `data`: `98 - (data · 100 mod 97)`, two ASCII digits,
/// so that `data || check` is 1 modulo 97.
fn check_digits(data: &[u8]) -> [u8; 2] {
    let check = 98 - (mod97(data) * 100) % 97;
    // `check` is in 1..=98.
    [b'0' + (check / 10) as u8, b'0' + (check % 10) as u8]
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE: &str = "1234567890123456789012345678901234567890123456789012345678901234";

    fn with_check(data: &str) -> String {
        let check = check_digits(data.as_bytes());
        format!("{data}{}", std::str::from_utf8(&check).unwrap())
    }

    #[test]
    fn generated_codes_parse_back_in_any_layout() {
        let code = RecoveryCode::generate();
        assert_eq!(code.digits().len(), 64);
        assert!(code.digits().bytes().all(|b| b.is_ascii_digit()));
        let grouped = code.grouped();
        assert_eq!(grouped.len(), 64 + 15);
        assert_eq!(grouped.split(' ').count(), 16);
        assert_eq!(RecoveryCode::parse(&grouped).unwrap(), code);
        let dashed = grouped.replace(' ', "-");
        assert_eq!(RecoveryCode::parse(&dashed).unwrap(), code);
        let lines = format!("  {}\r\n\t{}\n", &grouped[..39], &grouped[40..]);
        assert_eq!(RecoveryCode::parse(&lines).unwrap(), code);
        assert_eq!(
            RecoveryCode::parse(code.digits()).unwrap().backup_key(),
            code.backup_key()
        );
        assert_ne!(RecoveryCode::generate(), code);
        assert_eq!(format!("{code:?}"), "RecoveryCode(<redacted>)");
    }

    #[test]
    fn check_digits_follow_iso_7064_mod_97_10() {
        // The IBAN example of ISO 13616: GB82 WEST 1234 5698 7654 32 with letters as numbers
        // (W=32 E=14 S=28 T=29, G=16 B=11) and the check digits moved to the end.
        let data = "32142829123456987654321611";
        assert_eq!(&check_digits(data.as_bytes()), b"82");
        assert_eq!(mod97(format!("{data}82").as_bytes()), 1);
        let full = with_check(&CODE[..62]);
        assert_eq!(mod97(full.as_bytes()), 1);
        assert!(RecoveryCode::parse(&full).is_ok());
    }

    #[test]
    fn every_single_typo_and_neighbour_swap_is_caught() {
        for _ in 0..20 {
            let code = RecoveryCode::generate();
            let digits: Vec<u8> = code.digits().bytes().collect();
            for i in 0..64 {
                for d in b'0'..=b'9' {
                    if d == digits[i] {
                        continue;
                    }
                    let mut typo = digits.clone();
                    typo[i] = d;
                    let text = String::from_utf8(typo).unwrap();
                    assert_eq!(
                        RecoveryCode::parse(&text),
                        Err(RecoveryCodeError::CheckFailed)
                    );
                }
                for gap in [1, 2] {
                    if i + gap < 64 && digits[i] != digits[i + gap] {
                        let mut swapped = digits.clone();
                        swapped.swap(i, i + gap);
                        let text = String::from_utf8(swapped).unwrap();
                        assert_eq!(
                            RecoveryCode::parse(&text),
                            Err(RecoveryCodeError::CheckFailed)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn malformed_codes_get_clear_errors_without_their_digits() {
        let good = with_check(&CODE[..62]);
        assert_eq!(
            RecoveryCode::parse(&good[..63]),
            Err(RecoveryCodeError::WrongLength { digits: 63 })
        );
        assert_eq!(
            RecoveryCode::parse(&format!("{good}1")),
            Err(RecoveryCodeError::WrongLength { digits: 65 })
        );
        assert_eq!(
            RecoveryCode::parse(""),
            Err(RecoveryCodeError::WrongLength { digits: 0 })
        );
        let with_letter = format!("1234 O{}", &good[5..]);
        let e = RecoveryCode::parse(&with_letter).unwrap_err();
        assert_eq!(
            e,
            RecoveryCodeError::InvalidCharacter {
                found: 'O',
                position: 6
            }
        );
        // Other scripts' digits are not digits here.
        let e = RecoveryCode::parse(&format!("\u{0661}{}", &good[1..])).unwrap_err();
        assert!(matches!(
            e,
            RecoveryCodeError::InvalidCharacter { position: 1, .. }
        ));
        for e in [
            RecoveryCodeError::CheckFailed,
            RecoveryCodeError::WrongLength { digits: 63 },
        ] {
            assert!(!e.to_string().contains(&good[..8]));
        }
    }
}
