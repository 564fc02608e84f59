//! The vault's error type and its one conversion to `tonic::Status`.
//!
//! Every status that carries details carries an encoded `bkv.v1.ErrorDetail`, so clients can
//! read the field at fault, the guesses remaining, the retry delay or the leader hint without
//! parsing messages; the reason words are those of [`bkv_proto::contract::reason`]. No
//! message here ever holds a secret or a blob.

use bkv_core::opaque::ProtocolError;
use bkv_core::{IdError, Rejection, SealError};
use bkv_proto::contract::{self, reason};
use bkv_proto::v1::ErrorDetail;
use prost::Message as _;
use tonic::{Code, Status};

/// What went wrong with a client or admin call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// Missing or bad account token.
    #[error("account token refused: {0}")]
    Unauthenticated(String),
    /// No client certificate with a bkv role (operator and peer APIs).
    #[error("{0}")]
    NoRole(String),
    /// The caller is known but may not make this call (a certificate of another role).
    #[error("{0}")]
    Forbidden(String),
    /// A request field is malformed.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The proto field.
        field: &'static str,
        /// Why (stable, machine-readable first word).
        reason: String,
    },
    /// Nothing to act on.
    #[error("{0}")]
    NotFound(&'static str),
    /// A recovery finalization did not verify: wrong password.
    #[error("wrong password: {guesses_remaining} guesses remaining")]
    WrongPassword {
        /// Guesses left on the record.
        guesses_remaining: u32,
    },
    /// The record was destroyed after too many guesses.
    #[error("the record was destroyed after too many wrong guesses")]
    Destroyed,
    /// A precondition does not hold (expired ticket, superseded version, ...).
    #[error("{message}")]
    FailedPrecondition {
        /// Stable reason word.
        reason: &'static str,
        /// Human-readable message.
        message: String,
    },
    /// Something with that identity exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// Rate limited.
    #[error("rate limited: retry in {retry_after_ms} ms")]
    RateLimited {
        /// When to come back.
        retry_after_ms: u64,
    },
    /// No quorum, no leader, node not ready or shutting down. Safe to retry.
    #[error("unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
        /// The leader's client address, when known.
        leader_hint: Option<String>,
    },
    /// A failure that is the vault's, not the caller's (storage, HSM, a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

impl VaultError {
    /// A malformed field.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }

    /// Unavailable without a leader hint.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self::Unavailable {
            reason: reason.into(),
            leader_hint: None,
        }
    }

    /// A field that did not parse into one of the core id types. The reason starts with a
    /// stable word (`empty`, `wrong_length`, `too_large`, `bad_character`, `out_of_range`).
    pub fn bad_id(field: &'static str, e: IdError) -> Self {
        let word = match e {
            IdError::Empty => "empty",
            IdError::WrongLength { .. } => "wrong_length",
            IdError::TooLong { .. } => "too_large",
            IdError::BadCharacter { .. } => "bad_character",
            IdError::OutOfRange { .. } => "out_of_range",
        };
        Self::invalid(field, format!("{word}: {e}"))
    }

    /// A state-machine rejection, as the client should see it.
    pub fn from_rejection(r: Rejection) -> Self {
        match r {
            Rejection::NotBootstrapped => Self::unavailable("the cluster is not initialised"),
            Rejection::AlreadyBootstrapped => {
                Self::AlreadyExists("the cluster is already initialised".into())
            }
            Rejection::GuessLimitTooHigh { requested, max } => Self::invalid(
                "guess_limit",
                format!("too_high: {requested} exceeds the cluster maximum {max}"),
            ),
            Rejection::NoRecord => Self::NotFound("no active record for this account"),
            Rejection::NoSuchVersion => Self::NotFound("no such staged version"),
            Rejection::RecordDestroyed { .. } => Self::Destroyed,
            Rejection::VersionNotActive => Self::FailedPrecondition {
                reason: reason::SUPERSEDED,
                message: "the record version is no longer active".into(),
            },
            Rejection::AttemptConflict => Self::invalid(
                "attempt_id",
                "reused: this attempt id was used with another blinded element",
            ),
            Rejection::NotExhausted => Self::FailedPrecondition {
                reason: reason::NOT_EXHAUSTED,
                message: "the record still has guesses left".into(),
            },
            Rejection::BadShareMap(why) => Self::invalid("share_map", format!("refused: {why}")),
            Rejection::ShareMapEpoch { epoch, current } => Self::FailedPrecondition {
                reason: reason::STALE_SHARE_MAP,
                message: format!("share map epoch {epoch} is not above the current {current}"),
            },
            Rejection::NoShareMap => Self::unavailable("no share map is in force yet"),
            Rejection::StaleShareMap { current } => Self::FailedPrecondition {
                reason: reason::STALE_SHARE_MAP,
                message: format!(
                    "the share map changed (epoch {current} is in force): start the \
                     registration again"
                ),
            },
            Rejection::BadResetSignature => Self::invalid(
                "reset_signature",
                "does_not_verify: not a signature of this reset by the record's reset key",
            ),
            Rejection::StaleLogIndex { .. } => {
                Self::Internal("the state machine refused a replayed log entry".into())
            }
        }
    }

    /// An OPAQUE error on client input. Seal errors here are about the ticket, the only
    /// sealed blob a client hands in.
    pub fn from_protocol(e: ProtocolError) -> Self {
        match e {
            ProtocolError::Malformed { field, reason } => Self::invalid(field, reason),
            ProtocolError::TooLarge { field, max } => {
                Self::invalid(field, format!("too_large: at most {max} bytes"))
            }
            ProtocolError::TicketExpired => Self::FailedPrecondition {
                reason: reason::EXPIRED,
                message: "the recovery ticket has expired; start the recovery again".into(),
            },
            ProtocolError::WrongPassword {
                guesses_remaining, ..
            } => Self::WrongPassword { guesses_remaining },
            ProtocolError::Seal(SealError::Hsm(m)) => Self::Internal(format!("HSM: {m}")),
            ProtocolError::Seal(SealError::NoClusterKey) => {
                Self::unavailable("this node has no cluster key")
            }
            ProtocolError::Seal(SealError::WrongAad) => {
                Self::invalid("ticket", "other_account: the ticket is for another account")
            }
            ProtocolError::Seal(SealError::UnknownKey) => Self::invalid(
                "ticket",
                "other_cluster: the ticket is from another cluster",
            ),
            ProtocolError::Seal(e) => Self::invalid("ticket", format!("rejected: {e}")),
            ProtocolError::Corrupt { what, reason } => {
                Self::Internal(format!("sealed {what} does not decode ({reason})"))
            }
            ProtocolError::Internal(what) => Self::Internal(format!("OPAQUE: {what}")),
        }
    }

    /// The gRPC code of this error.
    pub fn code(&self) -> Code {
        match self {
            Self::Unauthenticated(_) | Self::NoRole(_) => Code::Unauthenticated,
            Self::Forbidden(_) => Code::PermissionDenied,
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::NotFound(_) => Code::NotFound,
            Self::WrongPassword { .. } => Code::PermissionDenied,
            Self::Destroyed | Self::FailedPrecondition { .. } => Code::FailedPrecondition,
            Self::AlreadyExists(_) => Code::AlreadyExists,
            Self::RateLimited { .. } => Code::ResourceExhausted,
            Self::Unavailable { .. } => Code::Unavailable,
            Self::Internal(_) => Code::Internal,
        }
    }

    fn detail(&self) -> Option<ErrorDetail> {
        let d = ErrorDetail::default();
        Some(match self {
            Self::InvalidArgument { field, reason } => ErrorDetail {
                field: (*field).to_string(),
                reason: reason
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
                ..d
            },
            Self::WrongPassword { guesses_remaining } => ErrorDetail {
                reason: reason::WRONG_PASSWORD.into(),
                guesses_remaining: Some(*guesses_remaining),
                ..d
            },
            Self::Destroyed => ErrorDetail {
                reason: reason::DESTROYED.into(),
                ..d
            },
            Self::FailedPrecondition { reason, .. } => ErrorDetail {
                reason: (*reason).to_string(),
                ..d
            },
            Self::RateLimited { retry_after_ms } => ErrorDetail {
                reason: reason::RATE_LIMITED.into(),
                retry_after_ms: *retry_after_ms,
                ..d
            },
            Self::Unavailable { leader_hint, .. } => ErrorDetail {
                reason: reason::UNAVAILABLE.into(),
                leader_hint: leader_hint.clone().unwrap_or_default(),
                ..d
            },
            Self::Unauthenticated(_)
            | Self::NoRole(_)
            | Self::Forbidden(_)
            | Self::NotFound(_)
            | Self::AlreadyExists(_)
            | Self::Internal(_) => return None,
        })
    }
}

impl From<VaultError> for Status {
    fn from(e: VaultError) -> Status {
        let code = e.code();
        let message = e.to_string();
        let mut status = match e.detail() {
            Some(detail) => Status::with_details(code, message, detail.encode_to_vec().into()),
            None => Status::new(code, message),
        };
        if let VaultError::Unavailable {
            leader_hint: Some(hint),
            ..
        } = &e
            && let Ok(value) = hint.parse()
        {
            status.metadata_mut().insert(contract::LEADER, value);
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(s: &Status) -> ErrorDetail {
        ErrorDetail::decode(s.details()).expect("details decode")
    }

    #[test]
    fn wrong_password_carries_the_guesses_remaining() {
        let s = Status::from(VaultError::WrongPassword {
            guesses_remaining: 3,
        });
        assert_eq!(s.code(), Code::PermissionDenied);
        assert_eq!(detail(&s).guesses_remaining, Some(3));
    }

    #[test]
    fn invalid_argument_names_the_field_and_a_stable_reason() {
        let s = Status::from(VaultError::invalid(
            "attempt_id",
            "wrong_length: must be 16 bytes",
        ));
        assert_eq!(s.code(), Code::InvalidArgument);
        let d = detail(&s);
        assert_eq!(d.field, "attempt_id");
        assert_eq!(d.reason, "wrong_length");
        assert!(s.message().contains("attempt_id"));
    }

    #[test]
    fn bad_ids_carry_a_stable_reason_word() {
        let e = IdError::WrongLength {
            expected: 16,
            actual: 3,
        };
        let s = Status::from(VaultError::bad_id("attempt_id", e));
        assert_eq!(s.code(), Code::InvalidArgument);
        let d = detail(&s);
        assert_eq!(
            (d.field.as_str(), d.reason.as_str()),
            ("attempt_id", "wrong_length")
        );
        assert!(
            s.message().contains("must be 16 bytes, got 3"),
            "{}",
            s.message()
        );
    }

    #[test]
    fn unavailable_carries_the_leader_hint_in_metadata_and_details() {
        let s = Status::from(VaultError::Unavailable {
            reason: "not the leader".into(),
            leader_hint: Some("127.0.0.1:7102".into()),
        });
        assert_eq!(s.code(), Code::Unavailable);
        assert_eq!(
            s.metadata()
                .get(contract::LEADER)
                .and_then(|v| v.to_str().ok()),
            Some("127.0.0.1:7102")
        );
        assert_eq!(detail(&s).leader_hint, "127.0.0.1:7102");
    }

    #[test]
    fn rejections_map_to_the_documented_codes() {
        let cases = [
            (Rejection::NoRecord, Code::NotFound),
            (Rejection::NoSuchVersion, Code::NotFound),
            (
                Rejection::RecordDestroyed {
                    version: bkv_core::RecordVersion(4),
                },
                Code::FailedPrecondition,
            ),
            (Rejection::AttemptConflict, Code::InvalidArgument),
            (
                Rejection::GuessLimitTooHigh {
                    requested: 11,
                    max: 10,
                },
                Code::InvalidArgument,
            ),
            (Rejection::NotBootstrapped, Code::Unavailable),
            (Rejection::AlreadyBootstrapped, Code::AlreadyExists),
        ];
        for (r, code) in cases {
            assert_eq!(
                Status::from(VaultError::from_rejection(r.clone())).code(),
                code,
                "{r:?}"
            );
        }
    }

    #[test]
    fn ticket_problems_are_the_callers_and_name_the_ticket() {
        for e in [
            SealError::Rejected,
            SealError::WrongAad,
            SealError::Malformed("short"),
        ] {
            let s = Status::from(VaultError::from_protocol(ProtocolError::Seal(e)));
            assert_eq!(s.code(), Code::InvalidArgument);
            assert_eq!(detail(&s).field, "ticket");
        }
        let s = Status::from(VaultError::from_protocol(ProtocolError::TicketExpired));
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert_eq!(detail(&s).reason, "expired");
    }
}
