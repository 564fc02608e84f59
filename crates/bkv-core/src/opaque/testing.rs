//! Test support: a software [`Sealer`] and a tiny executor, for unit tests and benchmarks of
//! the layers above the HSM. Compiled only for tests or with the `test-support` feature; the
//! vault itself always seals through `bkv-hsm`.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use aes_gcm::aead::{AeadInOut, KeyInit, Nonce};
use aes_gcm::{Aes256Gcm, Tag};
use rand::RngCore;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use crate::seal::{SealError, SealPurpose, Sealer};

/// A software stand-in for the HSM: AES-256-GCM under a random key held in process memory.
///
/// Blob layout: `format u8 = 1 || purpose u8 || nonce(12) || ciphertext || tag(16)`, with
/// the purpose byte and the caller's AAD authenticated. NOT an HSM: for tests and benches.
pub struct FakeSealer {
    cipher: Aes256Gcm,
}

impl FakeSealer {
    const FORMAT: u8 = 1;
    const HEADER: usize = 2 + 12;

    /// A sealer with a fresh random key.
    pub fn new() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(key.as_mut());
        Self {
            cipher: Aes256Gcm::new(<&aes_gcm::Key<Aes256Gcm>>::from(&*key)),
        }
    }

    fn full_aad(purpose: SealPurpose, aad: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(aad.len() + 1);
        full.push(purpose as u8);
        full.extend_from_slice(aad);
        full
    }

    fn seal_now(
        &self,
        purpose: SealPurpose,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let mut blob = Vec::with_capacity(Self::HEADER + plaintext.len() + 16);
        blob.extend_from_slice(&[Self::FORMAT, purpose as u8]);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(plaintext);
        let tag = self
            .cipher
            .encrypt_inout_detached(
                &Nonce::<Aes256Gcm>::from(nonce),
                &Self::full_aad(purpose, aad),
                (&mut blob[Self::HEADER..]).into(),
            )
            .map_err(|_| SealError::Hsm("fake encrypt".into()))?;
        blob.extend_from_slice(&tag);
        Ok(blob)
    }

    fn unseal_now(
        &self,
        purpose: SealPurpose,
        aad: &[u8],
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if blob.len() < Self::HEADER + 16 {
            return Err(SealError::Malformed("too short"));
        }
        if blob[0] != Self::FORMAT {
            return Err(SealError::Malformed("unknown format"));
        }
        if blob[1] != purpose as u8 {
            return Err(SealError::WrongPurpose);
        }
        let nonce = Nonce::<Aes256Gcm>::try_from(&blob[2..Self::HEADER])
            .map_err(|_| SealError::Malformed("nonce"))?;
        let (body, tag) = blob[Self::HEADER..].split_at(blob.len() - Self::HEADER - 16);
        let tag = Tag::try_from(tag).map_err(|_| SealError::Malformed("tag"))?;
        let mut plain = Zeroizing::new(body.to_vec());
        self.cipher
            .decrypt_inout_detached(
                &nonce,
                &Self::full_aad(purpose, aad),
                plain.as_mut_slice().into(),
                &tag,
            )
            .map_err(|_| SealError::Rejected)?;
        Ok(plain)
    }
}

impl Default for FakeSealer {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for FakeSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeSealer(<key redacted>)")
    }
}

impl Sealer for FakeSealer {
    fn seal(
        &self,
        purpose: SealPurpose,
        aad: &[u8],
        plaintext: &[u8],
    ) -> impl Future<Output = Result<Vec<u8>, SealError>> + Send {
        std::future::ready(self.seal_now(purpose, aad, plaintext))
    }

    fn unseal(
        &self,
        purpose: SealPurpose,
        aad: &[u8],
        blob: &[u8],
    ) -> impl Future<Output = Result<Zeroizing<Vec<u8>>, SealError>> + Send {
        std::future::ready(self.unseal_now(purpose, aad, blob))
    }
}

/// Runs a future that never waits on I/O (everything over [`FakeSealer`]) to completion.
///
/// Polls at most 1000 times; a future still pending after that is a bug of the test and
/// gives `None`.
pub fn block_on<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return Some(out);
        }
    }
    None
}
