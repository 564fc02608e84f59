//! The vault's error type and its one conversion to `tonic::Status`.
//!
//! Every status carries its details as gRPC's standard `google.rpc.Status`
//! ([`bkv_proto::status::ErrorDetails`]): an `ErrorInfo` whose reason word is one of
//! [`bkv_proto::contract::reason`], the field at fault of an INVALID_ARGUMENT, the guesses
//! remaining after a wrong password, the leader hint, and a `RetryInfo` where waiting helps.
//! No message here ever holds a secret or a blob.

use std::time::Duration;

use bkv_core::opaque::ProtocolError;
use bkv_core::token::TokenError;
use bkv_core::{IdError, Rejection, SealError};
use bkv_proto::contract::{self, meta, reason};
use bkv_proto::status::{ErrorDetails, is_reason_word};
use tonic::{Code, Status};

/// The first backoff an UNAVAILABLE answer suggests (`RetryInfo`): the SDK's own first wait.
pub const UNAVAILABLE_RETRY_DELAY: Duration = Duration::from_millis(50);

/// What went wrong with a client or admin call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// Missing or bad account token.
    #[error("account token refused: {message}")]
    Unauthenticated {
        /// Stable reason word ([`reason`]).
        reason: &'static str,
        /// The claim at fault, if one is.
        claim: Option<&'static str>,
        /// Human-readable message (never the token).
        message: String,
    },
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
        /// Why: a stable lower-case word (`wrong_length`, ...), then `: ` and the detail.
        reason: String,
    },
    /// Nothing to act on.
    #[error("{message}")]
    NotFound {
        /// Stable reason word ([`reason::NO_RECORD`], ...).
        reason: &'static str,
        /// Human-readable message.
        message: &'static str,
    },
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
    /// A malformed field. `reason` starts with a stable lower-case word
    /// ([`contract::reason::FIELD_REASONS`] in lower case), then `: ` and the detail.
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

    /// No usable `authorization` metadata.
    pub fn no_token(message: impl Into<String>) -> Self {
        Self::Unauthenticated {
            reason: reason::TOKEN_MISSING,
            claim: None,
            message: message.into(),
        }
    }

    /// An account token the issuers' rules refuse.
    pub fn from_token(e: &TokenError) -> Self {
        let (word, claim) = match e {
            TokenError::TooLarge | TokenError::Malformed(_) => (reason::TOKEN_MALFORMED, None),
            TokenError::MissingClaim(c) => (reason::CLAIM_MISSING, Some(*c)),
            TokenError::InvalidClaim { claim, .. } => (reason::CLAIM_INVALID, Some(*claim)),
            TokenError::BadSubject(_) => (reason::CLAIM_INVALID, Some("sub")),
            TokenError::AlgorithmNotAllowed => (reason::ALGORITHM_NOT_ALLOWED, Some("alg")),
            TokenError::UnknownIssuer => (reason::UNKNOWN_ISSUER, Some("iss")),
            TokenError::BadSignature => (reason::BAD_SIGNATURE, None),
            TokenError::WrongAudience => (reason::WRONG_AUDIENCE, Some("aud")),
            TokenError::Expired => (reason::TOKEN_EXPIRED, Some("exp")),
            TokenError::LifetimeTooLong(_) => (reason::LIFETIME_TOO_LONG, Some("exp")),
            TokenError::NotYetValid => (reason::NOT_YET_VALID, None),
        };
        Self::Unauthenticated {
            reason: word,
            claim,
            message: e.to_string(),
        }
    }

    /// No active record.
    pub fn no_record() -> Self {
        Self::NotFound {
            reason: reason::NO_RECORD,
            message: "no active record for this account",
        }
    }

    /// A recovery ticket that a successful RecoverFinish used already.
    pub fn ticket_used() -> Self {
        Self::FailedPrecondition {
            reason: reason::TICKET_USED,
            message: "this recovery ticket was used already (or a later one was): start \
                      the recovery again"
                .into(),
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
            Rejection::NoRecord => Self::no_record(),
            Rejection::NoSuchVersion => Self::NotFound {
                reason: reason::NO_SUCH_VERSION,
                message: "no such staged version",
            },
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
            Rejection::BadRepair(why) => Self::Internal(format!("share repair refused: {why}")),
            Rejection::BadRefresh(why) => Self::Internal(format!("share refresh refused: {why}")),
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
            Rejection::TicketUsed { .. } => Self::ticket_used(),
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
                reason: reason::TICKET_EXPIRED,
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
            Self::Unauthenticated { .. } | Self::NoRole(_) => Code::Unauthenticated,
            Self::Forbidden(_) => Code::PermissionDenied,
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::NotFound { .. } => Code::NotFound,
            Self::WrongPassword { .. } => Code::PermissionDenied,
            Self::Destroyed | Self::FailedPrecondition { .. } => Code::FailedPrecondition,
            Self::AlreadyExists(_) => Code::AlreadyExists,
            Self::RateLimited { .. } => Code::ResourceExhausted,
            Self::Unavailable { .. } => Code::Unavailable,
            Self::Internal(_) => Code::Internal,
        }
    }

    /// The details of this error (see the module comment).
    pub fn details(&self) -> ErrorDetails {
        match self {
            Self::Unauthenticated { reason, claim, .. } => {
                let d = ErrorDetails::new(*reason);
                match claim {
                    Some(c) => d.with(meta::CLAIM, c),
                    None => d,
                }
            }
            Self::NoRole(_) => ErrorDetails::new(reason::NO_ROLE),
            Self::Forbidden(_) => ErrorDetails::new(reason::FORBIDDEN),
            Self::InvalidArgument { field, reason } => {
                let (word, why) = reason.split_once(':').unwrap_or((reason, ""));
                let word = word.trim().to_ascii_uppercase();
                let word = if is_reason_word(&word) {
                    word
                } else {
                    "INVALID".to_string()
                };
                let why = why.trim();
                ErrorDetails::new(word).with_field(field, if why.is_empty() { reason } else { why })
            }
            Self::NotFound { reason, .. } => ErrorDetails::new(*reason),
            Self::WrongPassword { guesses_remaining } => ErrorDetails::new(reason::WRONG_PASSWORD)
                .with(meta::GUESSES_REMAINING, guesses_remaining),
            Self::Destroyed => ErrorDetails::new(reason::DESTROYED),
            Self::FailedPrecondition { reason, .. } => ErrorDetails::new(*reason),
            Self::AlreadyExists(_) => ErrorDetails::new(reason::ALREADY_EXISTS),
            Self::RateLimited { retry_after_ms } => ErrorDetails::new(reason::RATE_LIMITED)
                .with_retry_delay(Duration::from_millis(*retry_after_ms)),
            Self::Unavailable { leader_hint, .. } => {
                let d = ErrorDetails::new(reason::UNAVAILABLE)
                    .with_retry_delay(UNAVAILABLE_RETRY_DELAY);
                match leader_hint {
                    Some(hint) => d.with(meta::LEADER, hint),
                    None => d,
                }
            }
            Self::Internal(_) => ErrorDetails::new(reason::INTERNAL),
        }
    }
}

impl From<VaultError> for Status {
    fn from(e: VaultError) -> Status {
        let mut status = e.details().into_status(e.code(), e.to_string());
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
mod vectors;

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(s: &Status) -> ErrorDetails {
        ErrorDetails::of(s).expect("details decode")
    }

    #[test]
    fn wrong_password_carries_the_guesses_remaining() {
        let s = Status::from(VaultError::WrongPassword {
            guesses_remaining: 3,
        });
        assert_eq!(s.code(), Code::PermissionDenied);
        let d = detail(&s);
        assert_eq!(d.reason, reason::WRONG_PASSWORD);
        assert_eq!(d.guesses_remaining(), Some(3));
    }

    #[test]
    fn invalid_argument_names_the_field_and_a_stable_reason() {
        let s = Status::from(VaultError::invalid(
            "attempt_id",
            "wrong_length: must be 16 bytes",
        ));
        assert_eq!(s.code(), Code::InvalidArgument);
        let d = detail(&s);
        assert_eq!(d.reason, "WRONG_LENGTH");
        assert_eq!(d.meta(meta::FIELD), Some("attempt_id"));
        let v = d.field_violation.expect("a BadRequest");
        assert_eq!(
            (v.field.as_str(), v.reason.as_str(), v.description.as_str()),
            ("attempt_id", "WRONG_LENGTH", "must be 16 bytes")
        );
        assert!(s.message().contains("attempt_id"));
        // A reason without a word of ours still names the field.
        let d = detail(&Status::from(VaultError::invalid("ksf", "Not a word: x")));
        assert_eq!(d.reason, "INVALID");
        assert_eq!(d.meta(meta::FIELD), Some("ksf"));
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
            (d.meta(meta::FIELD), d.reason.as_str()),
            (Some("attempt_id"), "WRONG_LENGTH")
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
        let d = detail(&s);
        assert_eq!(d.leader(), Some("127.0.0.1:7102"));
        assert_eq!(d.retry_delay, Some(UNAVAILABLE_RETRY_DELAY));
    }

    #[test]
    fn rate_limits_say_when_to_retry() {
        let d = detail(&Status::from(VaultError::RateLimited {
            retry_after_ms: 1250,
        }));
        assert_eq!(d.reason, reason::RATE_LIMITED);
        assert_eq!(d.retry_delay, Some(Duration::from_millis(1250)));
    }

    #[test]
    fn token_refusals_name_the_rule_and_the_claim() {
        let s = Status::from(VaultError::from_token(&TokenError::MissingClaim("iss")));
        assert_eq!(s.code(), Code::Unauthenticated);
        assert!(s.message().contains("iss"), "{}", s.message());
        let d = detail(&s);
        assert_eq!(d.reason, reason::CLAIM_MISSING);
        assert_eq!(d.meta(meta::CLAIM), Some("iss"));
        let d = detail(&Status::from(VaultError::from_token(&TokenError::Expired)));
        assert_eq!(d.reason, reason::TOKEN_EXPIRED);
        let d = detail(&Status::from(VaultError::no_token(
            "no authorization metadata",
        )));
        assert_eq!(d.reason, reason::TOKEN_MISSING);
    }

    #[test]
    fn every_error_has_a_reason_word_of_the_contract() {
        let errors = [
            VaultError::no_token("x"),
            VaultError::from_token(&TokenError::BadSignature),
            VaultError::NoRole("x".into()),
            VaultError::Forbidden("x".into()),
            VaultError::invalid("f", "wrong_length: x"),
            VaultError::no_record(),
            VaultError::WrongPassword {
                guesses_remaining: 0,
            },
            VaultError::Destroyed,
            VaultError::ticket_used(),
            VaultError::AlreadyExists("x".into()),
            VaultError::RateLimited { retry_after_ms: 1 },
            VaultError::unavailable("x"),
            VaultError::Internal("x".into()),
        ];
        for e in errors {
            let d = detail(&Status::from(e.clone()));
            assert!(
                reason::ALL.contains(&d.reason.as_str())
                    || reason::FIELD_REASONS.contains(&d.reason.as_str()),
                "{e:?}: {}",
                d.reason
            );
        }
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
            (
                Rejection::TicketUsed {
                    charge: bkv_core::ChargeNumber(2),
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
            assert_eq!(detail(&s).meta(meta::FIELD), Some("ticket"));
        }
        let s = Status::from(VaultError::from_protocol(ProtocolError::TicketExpired));
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert_eq!(detail(&s).reason, reason::TICKET_EXPIRED);
    }
}
