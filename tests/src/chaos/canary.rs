//! Canaries: the secrets of a run ([`Canaries`]: passwords and backup keys) and the plaintext
//! scan that looks for them in every file under some directories, as raw bytes, hex (lower
//! and upper case) and base64 (standard and URL-safe alphabets, at each of the three byte
//! alignments a secret can have inside a longer encoded blob).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use aho_corasick::AhoCorasick;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use rand::RngCore as _;

/// The passwords and backup keys of a run: what must never appear in any file.
#[derive(Debug, Clone, Default)]
pub struct Canaries(Arc<Mutex<Vec<Vec<u8>>>>);

impl Canaries {
    /// Adds secret bytes to look for.
    pub fn add(&self, secret: &[u8]) {
        let mut v = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !v.iter().any(|s| s == secret) {
            v.push(secret.to_vec());
        }
    }

    /// Everything added so far.
    pub fn all(&self) -> Vec<Vec<u8>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A canary password: random, recognisable, never written anywhere by the test.
pub fn canary_password(canaries: &Canaries) -> String {
    let mut b = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let pw = format!("canary-pw-{}", hex::encode(b));
    canaries.add(pw.as_bytes());
    pw
}

/// Where a canary was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The file.
    pub path: PathBuf,
    /// Byte offset of the match.
    pub offset: u64,
    /// Which canary (index in the list given).
    pub canary: usize,
    /// How it was encoded: `raw`, `hex`, `HEX`, `base64`, `base64url`.
    pub encoding: &'static str,
}

/// What a scan went through and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Files read.
    pub files: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Matches.
    pub hits: Vec<Hit>,
}

/// The characters of `encoded` (base64 of `shift` filler bytes followed by the secret) that
/// depend on the secret's bytes only.
fn base64_core(encoded: &str, shift: usize, len: usize) -> Option<String> {
    // Character i covers bits [6i, 6i + 6) of the input; keep those inside the secret.
    let first = (shift * 8).div_ceil(6);
    let end_bits = (shift + len) * 8;
    let last = end_bits / 6; // exclusive
    (last > first + 8).then(|| encoded.get(first..last).map(str::to_string))?
}

/// Every encoded form of `secret` looked for, with the encoding's name.
pub fn needles(secret: &[u8]) -> Vec<(Vec<u8>, &'static str)> {
    let mut out = vec![
        (secret.to_vec(), "raw"),
        (hex::encode(secret).into_bytes(), "hex"),
        (hex::encode_upper(secret).into_bytes(), "HEX"),
    ];
    for shift in 0..3 {
        let mut input = vec![0u8; shift];
        input.extend_from_slice(secret);
        for (engine, name) in [(&STANDARD, "base64"), (&URL_SAFE, "base64url")] {
            if let Some(core) = base64_core(&engine.encode(&input), shift, secret.len())
                && !out.iter().any(|(n, _)| *n == core.as_bytes())
            {
                out.push((core.into_bytes(), name));
            }
        }
    }
    out
}

fn files_under(root: &Path, out: &mut Vec<PathBuf>) {
    let Ok(meta) = std::fs::symlink_metadata(root) else {
        return;
    };
    if meta.is_file() {
        out.push(root.to_path_buf());
        return;
    }
    if !meta.is_dir() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        files_under(&e.path(), out);
    }
}

/// Scans every regular file under `roots` (a root may be a file) for `canaries`.
pub fn scan(roots: &[PathBuf], canaries: &[Vec<u8>]) -> anyhow::Result<Report> {
    let mut patterns = Vec::new();
    let mut meta = Vec::new();
    for (i, c) in canaries.iter().enumerate() {
        anyhow::ensure!(c.len() >= 8, "canary #{i} is too short to look for");
        for (needle, encoding) in needles(c) {
            patterns.push(needle);
            meta.push((i, encoding));
        }
    }
    let mut report = Report::default();
    if patterns.is_empty() {
        return Ok(report);
    }
    let ac = AhoCorasick::new(&patterns)?;
    let mut files = Vec::new();
    for r in roots {
        files_under(r, &mut files);
    }
    files.sort();
    for path in files {
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        report.files += 1;
        report.bytes += file.metadata().map(|m| m.len()).unwrap_or(0);
        for m in ac.stream_find_iter(std::io::BufReader::new(file)) {
            let m = m?;
            let (canary, encoding) = meta[m.pattern().as_usize()];
            report.hits.push(Hit {
                path: path.clone(),
                offset: m.start() as u64,
                canary,
                encoding,
            });
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_encoding_of_a_canary_is_found_at_any_alignment() {
        let dir = tempfile::tempdir().unwrap();
        let secret = b"canary-pw-0123456789abcdef".to_vec();
        let key: Vec<u8> = (0u8..32)
            .map(|b| b.wrapping_mul(37).wrapping_add(11))
            .collect();
        let clean = dir.path().join("clean.bin");
        std::fs::write(&clean, vec![0x5au8; 100_000]).unwrap();
        let cases: Vec<(String, Vec<u8>)> = vec![
            ("raw".into(), [b"xx".as_slice(), &secret, b"yy"].concat()),
            (
                "hex".into(),
                format!("k={}", hex::encode(&key)).into_bytes(),
            ),
            ("HEX".into(), hex::encode_upper(&key).into_bytes()),
            ("b64-0".into(), STANDARD.encode(&key).into_bytes()),
            (
                "b64-1".into(),
                STANDARD.encode([&[1u8][..], &key].concat()).into_bytes(),
            ),
            (
                "b64-2".into(),
                STANDARD
                    .encode([&[1u8, 2][..], &key, b"tail"].concat())
                    .into_bytes(),
            ),
            (
                "url-2".into(),
                URL_SAFE
                    .encode([&[9u8, 9][..], &secret].concat())
                    .into_bytes(),
            ),
        ];
        for (name, bytes) in &cases {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let report = scan(&[dir.path().to_path_buf()], &[secret.clone(), key.clone()]).unwrap();
        assert_eq!(report.files, cases.len() as u64 + 1);
        for (name, _) in &cases {
            assert!(
                report.hits.iter().any(|h| h.path.ends_with(name)),
                "{name} not found: {:?}",
                report.hits
            );
        }
        assert!(!report.hits.iter().any(|h| h.path == clean));
        // A canary spread over two reads of the stream is still found.
        let big = dir.path().join("big.bin");
        let mut bytes = vec![0u8; (64 << 10) - 5];
        bytes.extend_from_slice(&key);
        std::fs::write(&big, bytes).unwrap();
        let report = scan(std::slice::from_ref(&big), std::slice::from_ref(&key)).unwrap();
        assert_eq!(report.hits.len(), 1);
        assert_eq!(report.hits[0].encoding, "raw");
    }
}
