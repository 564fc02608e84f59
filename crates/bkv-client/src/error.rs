//! Errors of the client flows. They name fields and reasons, never a secret.

/// Why a client step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The password is wrong (OPAQUE failed on the client's side). Nothing was sent: the
    /// guess charged by `RecoverStart` stands, and its `guesses_remaining` tells how many
    /// are left.
    #[error("wrong password")]
    WrongPassword,
    /// A message from the server is malformed; `field` is its proto field.
    #[error("{field} from the server is malformed: {reason}")]
    Malformed {
        /// The proto field, e.g. `"credential_response"`.
        field: &'static str,
        /// Why, e.g. `"wrong_length"`, `"invalid_encoding"`, `"reflected"`.
        reason: &'static str,
    },
    /// A key that the server returned did not open (`what` is `"transported_key"` or
    /// `"sealed_key"`): altered in transit or by the vault, or bound to another account or
    /// version. The login itself had verified.
    #[error("{what} from the server does not open")]
    KeyRejected {
        /// Which layer failed.
        what: &'static str,
    },
    /// The Argon2id parameters are out of Argon2's range.
    #[error("invalid Argon2id parameters: {0}")]
    InvalidKsf(#[from] bkv_core::protocol::KsfError),
    /// The share map the vault sent is not one the client may split its key over.
    #[error("the share map is not trusted: {0}")]
    UntrustedShareMap(&'static str),
    /// A share evaluation from the vault does not check out (its proof fails, a holder is
    /// named twice, too few evaluations): the vault or a node is faulty. The guess was
    /// charged; nothing was learned about the password.
    #[error("the vault's share evaluations do not check out: {0}")]
    BadEvaluations(&'static str),
    /// A guess limit above the cluster's maximum.
    #[error("guess limit {asked} is above the cluster's maximum {max}")]
    GuessLimit {
        /// What was asked for.
        asked: u32,
        /// The cluster's maximum.
        max: u32,
    },
    /// The password is longer than the protocol allows (64 KiB with the account id).
    #[error("the password is too long")]
    PasswordTooLong,
    /// A cryptographic step failed where no input should make it fail.
    #[error("internal client failure: {0}")]
    Internal(&'static str),
}
