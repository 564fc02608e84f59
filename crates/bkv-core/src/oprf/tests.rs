//! Tests of the threshold OPRF: RFC 9497's vectors, voprf as an oracle, property tests of
//! the threshold scheme and the share transport, strict parsing, and bkv's own vector file.

mod oracle;
mod parsing;
mod props;
mod reset;
mod rfc9497;
mod vectors;
pub(crate) mod voters;

use curve25519_dalek::scalar::Scalar;
use rand::SeedableRng;
use rand::rngs::StdRng;
use sha2::{Digest, Sha512};

/// Hex to bytes, for constants written in the tests.
fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test constants are hex")
}

/// Hex to a 32-byte array.
fn unhex32(s: &str) -> [u8; 32] {
    unhex(s).try_into().expect("32 bytes")
}

/// A scalar from its RFC encoding in hex.
fn scalar_hex(s: &str) -> Scalar {
    Option::from(Scalar::from_canonical_bytes(unhex32(s))).expect("canonical test scalar")
}

/// A fixed scalar named by a label: `SHA-512(label)` reduced mod the group order.
fn scalar_of(label: &str) -> Scalar {
    Scalar::from_bytes_mod_order_wide(&Sha512::digest(label.as_bytes()).into())
}

/// A seeded RNG, so a failing property case replays.
fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}
