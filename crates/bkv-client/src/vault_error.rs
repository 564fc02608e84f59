//! Typed errors of the SDK, and the one place where a gRPC status of the vault becomes one.
//!
//! A status's details are gRPC's standard `google.rpc.Status` (read by
//! [`bkv_proto::status::ErrorDetails`]): the `ErrorInfo` reason word, the field at fault, the
//! guesses remaining, the retry delay. The leader hint is in the `bkv-leader` metadata and in
//! the `ErrorInfo` metadata `leader`.

use std::time::Duration;

use bkv_proto::contract::{meta, reason};
pub use bkv_proto::status::ErrorDetails;
use tonic::{Code, Status};

use crate::ClientError;
use crate::endpoint::EndpointError;

/// Metadata key of the leader hint, on UNAVAILABLE answers and on successful answers.
pub const LEADER_METADATA: &str = bkv_proto::contract::LEADER;

/// Why an SDK call failed. Messages name fields and reasons, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// The password is wrong. One guess was spent; this many are left before the record is
    /// destroyed.
    #[error("wrong password: {guesses_remaining} guesses remaining")]
    WrongPassword {
        /// Guesses left on the record.
        guesses_remaining: u32,
    },
    /// The record was destroyed after too many wrong guesses; nothing can recover it.
    #[error("the record was destroyed after too many wrong guesses and can never be recovered")]
    Destroyed,
    /// The account has no active record.
    #[error("no active record for this account")]
    NotFound,
    /// The vault is rate-limiting this client.
    #[error("rate limited; retry after {} ms", retry_after.as_millis())]
    RateLimited {
        /// How long to wait before trying again.
        retry_after: Duration,
    },
    /// No endpoint answered within the deadline (no quorum, nodes down or unreachable).
    #[error("vault unavailable after {attempts} attempts: {last}")]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// The last failure seen.
        last: String,
    },
    /// The account token was refused (missing, expired, wrong audience, untrusted issuer).
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    /// The vault refused the call for another reason than a wrong password.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// A request field was refused.
    #[error("invalid argument {field}: {reason}")]
    InvalidArgument {
        /// The request field (empty when the vault did not say).
        field: String,
        /// Why, as the vault put it.
        reason: String,
    },
    /// A recovery ticket was refused (expired or superseded); start the recovery again.
    #[error("recovery ticket refused: {reason}")]
    TicketRejected {
        /// The vault's reason, e.g. `expired`.
        reason: String,
    },
    /// The vault answered something the protocol does not allow, or a key it returned
    /// does not open.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Any other status from the vault.
    #[error("vault error {code:?}: {message}")]
    Server {
        /// The gRPC code.
        code: Code,
        /// The status message.
        message: String,
    },
    /// A connection could not be set up (bad endpoint, TLS material).
    #[error("transport: {0}")]
    Transport(String),
    /// The token source gave no token.
    #[error("no account token: {0}")]
    Token(String),
}

impl From<EndpointError> for VaultError {
    fn from(e: EndpointError) -> Self {
        Self::Transport(e.to_string())
    }
}

impl From<ClientError> for VaultError {
    /// Client-side protocol failures. [`ClientError::WrongPassword`] has no count here;
    /// the recovery maps it itself with `guesses_remaining` from `RecoverStart`.
    fn from(e: ClientError) -> Self {
        Self::Protocol(e.to_string())
    }
}

/// Which call a status answers, where the meaning of a code depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    /// `RegisterStart`, `RegisterFinish`, `Activate`.
    Register,
    /// `RecoverStart`: FAILED_PRECONDITION there means the record is destroyed.
    RecoverStart,
    /// `RecoverFinish`: FAILED_PRECONDITION there means a refused ticket, unless the reason
    /// is `destroyed`.
    RecoverFinish,
    /// `Status`, `Delete`.
    Account,
}

/// The bkv details of a status (`google.rpc.Status` with a bkv `ErrorInfo`), if any decode.
pub fn error_details(status: &Status) -> Option<ErrorDetails> {
    ErrorDetails::of(status)
}

/// The leader's client address that a status names, if any: metadata `bkv-leader` first,
/// then the `ErrorInfo` metadata `leader`.
pub fn leader_hint(status: &Status) -> Option<String> {
    let from_metadata = status
        .metadata()
        .get(LEADER_METADATA)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    from_metadata.or_else(|| error_details(status).and_then(|d| d.leader().map(str::to_string)))
}

/// The typed error for a status that is not retried.
pub fn from_status(status: &Status, rpc: Rpc) -> VaultError {
    let details = error_details(status).unwrap_or_default();
    let word = details.reason.as_str();
    let message = || {
        if word.is_empty() {
            status.message().to_string()
        } else if status.message().is_empty() {
            word.to_string()
        } else {
            format!("{} ({word})", status.message())
        }
    };
    match status.code() {
        Code::PermissionDenied => match details.guesses_remaining() {
            Some(guesses_remaining) if word == reason::WRONG_PASSWORD || word.is_empty() => {
                VaultError::WrongPassword { guesses_remaining }
            }
            _ => VaultError::PermissionDenied(message()),
        },
        Code::FailedPrecondition => {
            if word == reason::DESTROYED || (rpc == Rpc::RecoverStart && word.is_empty()) {
                VaultError::Destroyed
            } else if rpc == Rpc::RecoverFinish {
                VaultError::TicketRejected {
                    reason: if word.is_empty() {
                        status.message().to_string()
                    } else {
                        word.to_string()
                    },
                }
            } else {
                VaultError::Server {
                    code: status.code(),
                    message: message(),
                }
            }
        }
        Code::NotFound => VaultError::NotFound,
        Code::ResourceExhausted => VaultError::RateLimited {
            retry_after: details.retry_delay.unwrap_or_default(),
        },
        Code::Unauthenticated => VaultError::Unauthenticated(match details.meta(meta::CLAIM) {
            Some(claim) => format!("{} (claim {claim})", message()),
            None => message(),
        }),
        Code::InvalidArgument => {
            let violation = details.field_violation.clone().unwrap_or_default();
            let field = if violation.field.is_empty() {
                details.meta(meta::FIELD).unwrap_or_default().to_string()
            } else {
                violation.field
            };
            VaultError::InvalidArgument {
                field,
                reason: if word.is_empty() {
                    status.message().to_string()
                } else {
                    word.to_string()
                },
            }
        }
        code => VaultError::Server {
            code,
            message: message(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: Code, details: ErrorDetails) -> Status {
        details.into_status(code, "msg")
    }

    #[test]
    fn error_details_become_typed_errors() {
        let wrong = |n: u32| {
            status(
                Code::PermissionDenied,
                ErrorDetails::new(reason::WRONG_PASSWORD).with(meta::GUESSES_REMAINING, n),
            )
        };
        assert_eq!(
            from_status(&wrong(3), Rpc::RecoverFinish),
            VaultError::WrongPassword {
                guesses_remaining: 3
            }
        );
        // Zero is a count, not an absence.
        assert_eq!(
            from_status(&wrong(0), Rpc::RecoverFinish),
            VaultError::WrongPassword {
                guesses_remaining: 0
            }
        );
        assert_eq!(
            from_status(&Status::permission_denied("no"), Rpc::Account),
            VaultError::PermissionDenied("no".into())
        );
        let limited = status(
            Code::ResourceExhausted,
            ErrorDetails::new(reason::RATE_LIMITED).with_retry_delay(Duration::from_millis(1500)),
        );
        assert_eq!(
            from_status(&limited, Rpc::Account),
            VaultError::RateLimited {
                retry_after: Duration::from_millis(1500)
            }
        );
        let invalid = status(
            Code::InvalidArgument,
            ErrorDetails::new("WRONG_LENGTH").with_field("attempt_id", "must be 16 bytes"),
        );
        assert_eq!(
            from_status(&invalid, Rpc::RecoverStart),
            VaultError::InvalidArgument {
                field: "attempt_id".into(),
                reason: "WRONG_LENGTH".into()
            }
        );
        assert_eq!(
            from_status(&Status::not_found("none"), Rpc::RecoverStart),
            VaultError::NotFound
        );
        assert_eq!(
            from_status(&Status::unauthenticated("expired"), Rpc::Account),
            VaultError::Unauthenticated("expired".into())
        );
        let missing = status(
            Code::Unauthenticated,
            ErrorDetails::new(reason::CLAIM_MISSING).with(meta::CLAIM, "iss"),
        );
        assert_eq!(
            from_status(&missing, Rpc::Account),
            VaultError::Unauthenticated("msg (CLAIM_MISSING) (claim iss)".into())
        );
    }

    #[test]
    fn failed_precondition_depends_on_the_call_and_reason() {
        let bare = Status::failed_precondition("gone");
        assert_eq!(from_status(&bare, Rpc::RecoverStart), VaultError::Destroyed);
        for word in [reason::TICKET_EXPIRED, reason::TICKET_USED] {
            let refused = status(Code::FailedPrecondition, ErrorDetails::new(word));
            assert_eq!(
                from_status(&refused, Rpc::RecoverFinish),
                VaultError::TicketRejected {
                    reason: word.into()
                }
            );
        }
        let destroyed = status(
            Code::FailedPrecondition,
            ErrorDetails::new(reason::DESTROYED),
        );
        assert_eq!(
            from_status(&destroyed, Rpc::RecoverFinish),
            VaultError::Destroyed
        );
        assert_eq!(from_status(&destroyed, Rpc::Account), VaultError::Destroyed);
    }

    #[test]
    fn leader_hints_come_from_metadata_then_details_and_garbage_is_ignored() {
        let mut s = status(
            Code::Unavailable,
            ErrorDetails::new(reason::UNAVAILABLE).with(meta::LEADER, "10.0.0.2:7101"),
        );
        assert_eq!(leader_hint(&s).as_deref(), Some("10.0.0.2:7101"));
        s.metadata_mut()
            .insert(LEADER_METADATA, "127.0.0.1:7201".parse().unwrap());
        assert_eq!(leader_hint(&s).as_deref(), Some("127.0.0.1:7201"));
        assert_eq!(leader_hint(&Status::unavailable("x")), None);
        let garbage = Status::with_details(Code::Unavailable, "x", vec![0xff, 0xff, 0xff].into());
        assert_eq!(error_details(&garbage), None);
        assert_eq!(leader_hint(&garbage), None);
        assert_eq!(
            from_status(&garbage, Rpc::Account),
            VaultError::Server {
                code: Code::Unavailable,
                message: "x".into()
            }
        );
    }
}
