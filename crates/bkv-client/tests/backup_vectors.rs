//! bkv's test vectors of the backup format, for anyone writing a reader or writer of their
//! own: `testdata/vectors/backup-v1.json` at the repository root holds the recovery-code
//! derivation, the per-file keys and two whole backups from fixed inputs. This test
//! recomputes every derivation from docs/BACKUP_FORMAT.md with the primitives directly
//! (HKDF, HMAC, AES-256-GCM), checks that bkv-client's backup module writes the very same
//! bytes and reads them back, and compares the result with the committed file byte for
//! byte; `BKV_WRITE_VECTORS=1 cargo test -p bkv-client --test backup_vectors` rewrites it.

use std::io::Write as _;
use std::path::PathBuf;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use bkv_client::backup::{
    BackupKey, ChunkSize, Encryptor, FILE_KEYS_INFO, HEADER_LEN, RECOVERY_CODE_INFO, RecoveryCode,
    SALT_LEN, StreamSealer, decrypt,
};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::{CryptoRng, RngCore};
use serde::Serialize;
use sha2::Sha256;

/// Gives out the bytes it holds, in order: the salt of a vector.
struct Salt([u8; SALT_LEN]);

impl RngCore for Salt {
    fn next_u32(&mut self) -> u32 {
        unimplemented!("the sealer takes its salt with fill_bytes")
    }
    fn next_u64(&mut self) -> u64 {
        unimplemented!("the sealer takes its salt with fill_bytes")
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.copy_from_slice(&self.0[..dest.len()]);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Salt {}

/// The per-file key material, straight from the document (§3).
fn okm(key: &[u8; 32], salt: &[u8; SALT_LEN]) -> [u8; 71] {
    let mut okm = [0u8; 71];
    Hkdf::<Sha256>::new(Some(salt), key)
        .expand(FILE_KEYS_INFO, &mut okm)
        .expect("71 bytes");
    okm
}

/// The nonce of a chunk (§4).
fn nonce(prefix: &[u8], counter: u32, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// ISO 7064 MOD 97-10 check digits (§6), computed on the decimal number.
fn check_digits(digits: &str) -> String {
    let r = digits
        .bytes()
        .fold(0u32, |r, d| (r * 10 + u32::from(d - b'0')) % 97);
    format!("{:02}", 98 - (r * 100) % 97)
}

#[derive(Serialize)]
struct File {
    description: &'static str,
    recovery_code: RecoveryCodeVector,
    file_keys: FileKeysVector,
    backups: Vec<BackupVector>,
}

#[derive(Serialize)]
struct RecoveryCodeVector {
    description: &'static str,
    random_digits: String,
    check_digits: String,
    code_grouped: String,
    info: String,
    backup_key: String,
}

#[derive(Serialize)]
struct FileKeysVector {
    description: &'static str,
    backup_key: String,
    salt: String,
    info: String,
    okm: String,
    header_key: String,
    payload_key: String,
    nonce_prefix: String,
}

#[derive(Serialize)]
struct BackupVector {
    description: &'static str,
    backup_key: String,
    salt: String,
    chunk_size: u32,
    plaintext: String,
    header_prefix: String,
    header_mac: String,
    chunks: Vec<ChunkVector>,
    file: String,
}

#[derive(Serialize)]
struct ChunkVector {
    counter: u32,
    last: bool,
    nonce: String,
    plaintext: String,
    sealed: String,
}

/// 62 digits of pi after the point: the random part of the vector's recovery code.
const CODE_DIGITS: &str = "14159265358979323846264338327950288419716939937510582097494459";

fn backup_vector(
    description: &'static str,
    key: &[u8; 32],
    salt: [u8; SALT_LEN],
    chunk_size: u32,
    plaintext: &[u8],
) -> BackupVector {
    // From the document.
    let okm = okm(key, &salt);
    let mut prefix = b"BKVB\x01\x01".to_vec();
    prefix.extend_from_slice(&chunk_size.to_be_bytes());
    prefix.extend_from_slice(&salt);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&okm[..32]).expect("any key length");
    mac.update(&prefix);
    let mac = mac.finalize().into_bytes().to_vec();
    let cipher = Aes256Gcm::new_from_slice(&okm[32..64]).expect("32 bytes");
    let size = chunk_size as usize;
    let n = plaintext.len().div_ceil(size).max(1);
    let mut file = [prefix.clone(), mac.clone()].concat();
    let chunks: Vec<ChunkVector> = (0..n)
        .map(|i| {
            let counter = u32::try_from(i).expect("few chunks");
            let last = i + 1 == n;
            let nonce = nonce(&okm[64..], counter, last);
            let plain = &plaintext[i * size..plaintext.len().min((i + 1) * size)];
            let sealed = cipher
                .encrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: plain,
                        aad: b"",
                    },
                )
                .expect("seals");
            file.extend_from_slice(&sealed);
            ChunkVector {
                counter,
                last,
                nonce: hex::encode(nonce),
                plaintext: hex::encode(plain),
                sealed: hex::encode(sealed),
            }
        })
        .collect();

    // The module writes the same bytes and reads them back.
    let backup_key = BackupKey::from_bytes(*key);
    let size = ChunkSize::new(chunk_size).expect("valid chunk size");
    let sealer = StreamSealer::with_rng(&backup_key, size, &mut Salt(salt));
    let mut enc = Encryptor::from_sealer(sealer, Vec::new()).expect("writes to a Vec");
    enc.write_all(plaintext).expect("writes to a Vec");
    let written = enc.finish().expect("writes to a Vec");
    assert_eq!(hex::encode(&written), hex::encode(&file), "{description}");
    assert_eq!(written.len(), HEADER_LEN + plaintext.len() + 16 * n);
    let mut out = Vec::new();
    decrypt(&backup_key, written.as_slice(), &mut out).expect("decrypts");
    assert_eq!(out, plaintext);

    BackupVector {
        description,
        backup_key: hex::encode(key),
        salt: hex::encode(salt),
        chunk_size,
        plaintext: hex::encode(plaintext),
        header_prefix: hex::encode(&prefix),
        header_mac: hex::encode(&mac),
        chunks,
        file: hex::encode(&file),
    }
}

fn vectors() -> File {
    let check = check_digits(CODE_DIGITS);
    let code_text = format!("{CODE_DIGITS}{check}");
    let code = RecoveryCode::parse(&code_text).expect("the vector's code is valid");
    let mut code_key = [0u8; 32];
    Hkdf::<Sha256>::new(None, code_text.as_bytes())
        .expand(RECOVERY_CODE_INFO, &mut code_key)
        .expect("32 bytes");
    assert_eq!(code.backup_key().expose(), &code_key);
    let key: [u8; 32] = std::array::from_fn(|i| i as u8);
    let salt: [u8; SALT_LEN] = std::array::from_fn(|i| 0xa0 + i as u8);
    let okm = okm(&key, &salt);
    let text = b"Backup of the chat history, 40 bytes...!";
    assert_eq!(text.len(), 40);
    File {
        description: "Test vectors of the bkv backup format, version 1 (docs/BACKUP_FORMAT.md), \
                      computed from the document with HKDF-SHA256, HMAC-SHA256 and AES-256-GCM \
                      and checked against bkv-client's backup module. Byte strings are \
                      lowercase hex; integers in byte strings are big-endian.",
        recovery_code: RecoveryCodeVector {
            description: "§6: check_digits = 98 - (random_digits * 100 mod 97), two digits \
                          (ISO 7064 MOD 97-10); backup_key = HKDF-SHA256(salt = none, ikm = \
                          the 64 ASCII digits, info, L = 32)",
            random_digits: CODE_DIGITS.into(),
            check_digits: check,
            code_grouped: code.grouped().to_string(),
            info: hex::encode(RECOVERY_CODE_INFO),
            backup_key: hex::encode(code_key),
        },
        file_keys: FileKeysVector {
            description: "§3: okm = HKDF-SHA256(salt, ikm = backup_key, info, L = 71); \
                          header_key = okm[0..32], payload_key = okm[32..64], nonce_prefix = \
                          okm[64..71]",
            backup_key: hex::encode(key),
            salt: hex::encode(salt),
            info: hex::encode(FILE_KEYS_INFO),
            okm: hex::encode(okm),
            header_key: hex::encode(&okm[..32]),
            payload_key: hex::encode(&okm[32..64]),
            nonce_prefix: hex::encode(&okm[64..]),
        },
        backups: vec![
            backup_vector(
                "§2-4: 40 bytes in 16-byte chunks: two full chunks and a final one of 8 bytes. \
                 header_mac = HMAC-SHA256(header_key, header_prefix); nonce = nonce_prefix || \
                 counter (4 bytes) || last (1 byte); sealed = AES-256-GCM(payload_key, nonce, \
                 aad = empty, chunk plaintext), ciphertext then 16-byte tag; file = header_prefix \
                 || header_mac || sealed chunks",
                &key,
                salt,
                16,
                text,
            ),
            backup_vector(
                "§4: an empty backup: one final chunk with no plaintext (only its tag)",
                &key,
                salt,
                65536,
                b"",
            ),
        ],
    }
}

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/vectors/backup-v1.json")
}

#[test]
fn backup_v1_vectors() {
    let file = vectors();
    let text = serde_json::to_string_pretty(&file).expect("serializes") + "\n";
    if std::env::var_os("BKV_WRITE_VECTORS").is_some() {
        std::fs::write(path(), &text).expect("writes the vector file");
    }
    let committed = std::fs::read_to_string(path()).expect("testdata/vectors/backup-v1.json");
    assert!(
        committed == text,
        "testdata/vectors/backup-v1.json differs from what the code computes; if the format \
         changed on purpose, rewrite it with BKV_WRITE_VECTORS=1 and review the diff"
    );
    // The committed files decrypt to the committed plaintexts, and the code parses back.
    let json: serde_json::Value = serde_json::from_str(&committed).expect("JSON");
    for b in json["backups"].as_array().expect("backups") {
        let hex_field = |name: &str| hex::decode(b[name].as_str().expect(name)).expect("hex");
        let key = BackupKey::from_slice(&hex_field("backup_key")).expect("32 bytes");
        let mut out = Vec::new();
        decrypt(&key, hex_field("file").as_slice(), &mut out).expect("the vector decrypts");
        assert_eq!(out, hex_field("plaintext"));
    }
    let code = json["recovery_code"]["code_grouped"]
        .as_str()
        .expect("code");
    let parsed = RecoveryCode::parse(code).expect("the vector's code parses");
    assert_eq!(
        hex::encode(parsed.backup_key().expose()),
        json["recovery_code"]["backup_key"].as_str().expect("key")
    );
}
