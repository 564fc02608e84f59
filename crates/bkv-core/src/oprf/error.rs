//! Why an OPRF value was refused: which field and what is wrong with it, never a secret.

/// An OPRF value or step refused. `what` names the field as the proto does
/// (`commitment`, `blinded_element`, `evaluated_element`, `proof`, `share_ciphertext`,
/// `ephemeral_public_key`, `p256_public_key`, `key_share`, `oprf_key`, `reset_public_key`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OprfError {
    /// The bytes have the wrong length.
    #[error("{what}: must be {expected} bytes, got {actual}")]
    WrongLength {
        /// The field.
        what: &'static str,
        /// The required length.
        expected: usize,
        /// The length received.
        actual: usize,
    },
    /// Not the canonical encoding of a ristretto255 element.
    #[error("{what}: not a canonical ristretto255 encoding")]
    NotRistretto {
        /// The field.
        what: &'static str,
    },
    /// The identity element, which no honest party sends.
    #[error("{what}: is the identity element")]
    Identity {
        /// The field.
        what: &'static str,
    },
    /// A scalar that is not reduced modulo the group order.
    #[error("{what}: not a canonical scalar")]
    NonCanonicalScalar {
        /// The field.
        what: &'static str,
    },
    /// A scalar that must not be zero is zero.
    #[error("{what}: is zero")]
    ZeroScalar {
        /// The field.
        what: &'static str,
    },
    /// A P-256 point not in uncompressed SEC1 form (`0x04 || x || y`).
    #[error("{what}: not an uncompressed SEC1 point (first byte {tag:#04x})")]
    NotUncompressed {
        /// The field.
        what: &'static str,
        /// The first byte received.
        tag: u8,
    },
    /// Coordinates that are not canonical or not on P-256.
    #[error("{what}: not a point on P-256")]
    NotOnCurve {
        /// The field.
        what: &'static str,
    },
    /// Not a usable Ed25519 public key (does not decompress, or has small order).
    #[error("{what}: not a valid Ed25519 public key")]
    NotEd25519 {
        /// The field.
        what: &'static str,
    },
    /// Share index 0, which would be the key itself.
    #[error("share index 0 is invalid")]
    ZeroIndex,
    /// The same share index twice.
    #[error("share index {index} appears twice")]
    DuplicateIndex {
        /// The repeated index.
        index: u64,
    },
    /// A threshold outside `1..=n`.
    #[error("threshold {threshold} is outside 1..={n}")]
    BadThreshold {
        /// The threshold asked for.
        threshold: usize,
        /// The number of shares.
        n: usize,
    },
    /// Nothing to combine.
    #[error("no evaluations to combine")]
    NoEvaluations,
    /// An OPRF input longer than RFC 9497 allows.
    #[error("OPRF input is {actual} bytes, more than {max}")]
    InputTooLong {
        /// The length received.
        actual: usize,
        /// The largest length allowed.
        max: usize,
    },
    /// The input hashes to the identity element (RFC 9497's `InvalidInputError`; no input
    /// is known to do that).
    #[error("the OPRF input hashes to the identity element")]
    InvalidInput,
    /// A commitment off the polynomial the first `threshold` commitments define.
    #[error("commitment of share {index} is not on the polynomial of the first {threshold}")]
    InconsistentCommitment {
        /// The index of the first commitment off the polynomial.
        index: u64,
        /// The threshold.
        threshold: usize,
    },
    /// An evaluation whose proof does not verify against the node's commitment.
    #[error("evaluation proof does not verify")]
    ProofRejected,
    /// Evaluations that combine to the identity element.
    #[error("evaluations combine to the identity element")]
    IdentityCombination,
    /// A share ciphertext that does not open with this shared secret, key and context.
    #[error("share ciphertext does not open under this key and context")]
    ShareRejected,
    /// Share repair helpers not in increasing order.
    #[error("helpers: must be in increasing order")]
    HelpersUnordered,
    /// Not one value per helper.
    #[error("{what}: must be {expected}, one per helper, got {actual}")]
    WrongCount {
        /// The field.
        what: &'static str,
        /// How many the helpers need.
        expected: usize,
        /// How many came.
        actual: usize,
    },
    /// A node asked to take part in a repair it is not a helper of.
    #[error("node {index} is not one of the repair's helpers")]
    NotAHelper {
        /// The node.
        index: u64,
    },
    /// An opened share whose `k_i * G` is not its commitment.
    #[error("share does not match its commitment")]
    ShareMismatch,
    /// Share refresh participants not in increasing order.
    #[error("participants: must be in increasing order")]
    ParticipantsUnordered,
    /// A node asked to take part in a refresh it is not a participant of.
    #[error("node {index} is not one of the refresh's participants")]
    NotAParticipant {
        /// The node.
        index: u64,
    },
    /// Refreshed commitments that interpolate at 0 to another point than the record's:
    /// they would share another key.
    #[error("the refreshed commitments do not share the record's key")]
    RefreshChangesKey,
}
