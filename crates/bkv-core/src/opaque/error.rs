//! Errors of the OPAQUE server. None carries a secret: fields are named, values are not.

use crate::ids::{ChargeNumber, RecordVersion};
use crate::seal::SealError;

/// Why an OPAQUE step on the server failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A client field is malformed (INVALID_ARGUMENT). `field` is the proto field name,
    /// `reason` a stable machine-readable word.
    #[error("{field} is malformed: {reason}")]
    Malformed {
        /// The proto field at fault, e.g. `"credential_request"`.
        field: &'static str,
        /// Why, e.g. `"wrong_length"`, `"invalid_encoding"`, `"not_canonical"`.
        reason: &'static str,
    },
    /// A client field is larger than allowed (INVALID_ARGUMENT).
    #[error("{field} is larger than {max} bytes")]
    TooLarge {
        /// The proto field at fault.
        field: &'static str,
        /// The largest size allowed.
        max: usize,
    },
    /// The recovery ticket has expired (FAILED_PRECONDITION): start the recovery again.
    #[error("the recovery ticket has expired")]
    TicketExpired,
    /// The credential finalization did not verify: a wrong password, or a forged message
    /// (PERMISSION_DENIED). The counters are those of the charge the ticket was issued under.
    #[error("wrong password ({guesses_remaining} guesses remaining)")]
    WrongPassword {
        /// The record version of the ticket.
        version: RecordVersion,
        /// The charge of the ticket.
        charge: ChargeNumber,
        /// Guesses left after that charge. At 0 the node commits `Command::Destroy`.
        guesses_remaining: u32,
    },
    /// Sealing or unsealing through the HSM failed. For a client-supplied ticket this means
    /// it was altered or made for another account or cluster (FAILED_PRECONDITION or
    /// INVALID_ARGUMENT); for a record or the server setup it is fatal to serving.
    #[error("sealing failed: {0}")]
    Seal(#[from] SealError),
    /// A blob sealed by the vault itself opened but does not decode (`what` names it: record,
    /// ticket, server setup). A bug or a format mismatch between nodes; never client input.
    #[error("sealed {what} does not decode: {reason}")]
    Corrupt {
        /// Which blob.
        what: &'static str,
        /// The part that failed.
        reason: &'static str,
    },
    /// A cryptographic step failed where no input should make it fail.
    #[error("internal OPAQUE failure: {0}")]
    Internal(&'static str),
}
