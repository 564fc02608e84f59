//! The details of every error a bkv node answers, in gRPC's standard error model: the
//! `grpc-status-details-bin` trailer holds an encoded `google.rpc.Status` (the same code and
//! message as the gRPC status) whose `details` are, as `google.protobuf.Any`:
//! - always one `google.rpc.ErrorInfo`: `reason` an UPPER_SNAKE word of
//!   [`crate::contract::reason`], `domain` [`DOMAIN`], `metadata` the values that go with
//!   it (keys of [`crate::contract::meta`]);
//! - for INVALID_ARGUMENT, one `google.rpc.BadRequest` with one field violation: the
//!   request field, the same reason word, and a description;
//! - where waiting and retrying is meaningful (UNAVAILABLE, RESOURCE_EXHAUSTED), one
//!   `google.rpc.RetryInfo` with the delay to wait at least.
//!
//! [`ErrorDetails`] is that content as one value; [`ErrorDetails::into_status`] is the one
//! place that builds such a status and [`ErrorDetails::of`] the one place that reads it, for
//! nodes, SDK and tools alike. The rich-error helpers of other gRPC implementations
//! (`grpc-status` in Go, `StatusProto` in Java, `@grpc/grpc-js` with `google-rpc` protos in
//! Node, tonic-types in Rust) read the same bytes.

use std::collections::BTreeMap;
use std::time::Duration;

use prost::Message as _;
use prost_types::Any;
use tonic::{Code, Status};

use crate::google::rpc;

/// `ErrorInfo.domain` of every bkv error.
pub const DOMAIN: &str = "bkv";

/// `Any.type_url` of `google.rpc.ErrorInfo`.
pub const ERROR_INFO_TYPE: &str = "type.googleapis.com/google.rpc.ErrorInfo";
/// `Any.type_url` of `google.rpc.BadRequest`.
pub const BAD_REQUEST_TYPE: &str = "type.googleapis.com/google.rpc.BadRequest";
/// `Any.type_url` of `google.rpc.RetryInfo`.
pub const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// One request field at fault (`google.rpc.BadRequest.FieldViolation`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldViolation {
    /// The request field, e.g. `attempt_id` or `shares.commitment`.
    pub field: String,
    /// The field-level reason word (UPPER_SNAKE), e.g. `WRONG_LENGTH`.
    pub reason: String,
    /// What is wrong, for people.
    pub description: String,
}

/// What a bkv error status says beyond its code and message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorDetails {
    /// `ErrorInfo.reason`: a word of [`crate::contract::reason`] (UPPER_SNAKE).
    pub reason: String,
    /// `ErrorInfo.metadata` (keys of [`crate::contract::meta`]).
    pub metadata: BTreeMap<String, String>,
    /// `BadRequest`'s field violation (INVALID_ARGUMENT).
    pub field_violation: Option<FieldViolation>,
    /// `RetryInfo.retry_delay`: wait at least this long before retrying.
    pub retry_delay: Option<Duration>,
}

/// Whether `word` is an UPPER_SNAKE reason as `google.rpc.ErrorInfo` asks for:
/// `[A-Z][A-Z0-9_]+[A-Z0-9]`, at most 63 characters.
pub fn is_reason_word(word: &str) -> bool {
    let b = word.as_bytes();
    (3..=63).contains(&b.len())
        && b[0].is_ascii_uppercase()
        && b.iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
        && b[b.len() - 1] != b'_'
}

impl ErrorDetails {
    /// Details with `reason` and nothing else.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            ..Self::default()
        }
    }

    /// Adds an `ErrorInfo.metadata` entry.
    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.metadata.insert(key.to_string(), value.to_string());
        self
    }

    /// Adds the field violation of an INVALID_ARGUMENT (its reason is the details' reason;
    /// the field is also named in the metadata).
    pub fn with_field(mut self, field: &str, description: impl Into<String>) -> Self {
        self.metadata
            .insert(crate::contract::meta::FIELD.to_string(), field.to_string());
        self.field_violation = Some(FieldViolation {
            field: field.to_string(),
            reason: self.reason.clone(),
            description: description.into(),
        });
        self
    }

    /// Adds a `RetryInfo` with `delay`.
    pub fn with_retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = Some(delay);
        self
    }

    /// A metadata value.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// `guessesRemaining` of a wrong password, if present and a number.
    pub fn guesses_remaining(&self) -> Option<u32> {
        self.meta(crate::contract::meta::GUESSES_REMAINING)?
            .parse()
            .ok()
    }

    /// The leader's client address (`leader`), if named.
    pub fn leader(&self) -> Option<&str> {
        self.meta(crate::contract::meta::LEADER)
            .filter(|s| !s.is_empty())
    }

    /// The encoded `google.rpc.Status` for a status with `code` and `message`.
    pub fn encode(&self, code: Code, message: &str) -> Vec<u8> {
        let mut details = vec![pack(
            ERROR_INFO_TYPE,
            &rpc::ErrorInfo {
                reason: self.reason.clone(),
                domain: DOMAIN.to_string(),
                metadata: self.metadata.clone(),
            },
        )];
        if let Some(v) = &self.field_violation {
            let bad = rpc::BadRequest {
                field_violations: vec![rpc::bad_request::FieldViolation {
                    field: v.field.clone(),
                    description: v.description.clone(),
                    reason: v.reason.clone(),
                    localized_message: None,
                }],
            };
            details.push(pack(BAD_REQUEST_TYPE, &bad));
        }
        if let Some(delay) = self.retry_delay {
            let retry = rpc::RetryInfo {
                retry_delay: Some(duration(delay)),
            };
            details.push(pack(RETRY_INFO_TYPE, &retry));
        }
        rpc::Status {
            code: code as i32,
            message: message.to_string(),
            details,
        }
        .encode_to_vec()
    }

    /// A `tonic::Status` with `code`, `message` and these details.
    pub fn into_status(self, code: Code, message: impl Into<String>) -> Status {
        let message = message.into();
        let details = self.encode(code, &message);
        Status::with_details(code, message, details.into())
    }

    /// The details of a status, if it carries a `google.rpc.Status` with a bkv
    /// `ErrorInfo`. Details of other types, and of other domains, are skipped.
    pub fn of(status: &Status) -> Option<Self> {
        Self::decode(status.details())
    }

    /// [`ErrorDetails::of`] on the raw `grpc-status-details-bin` bytes.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.is_empty() {
            return None;
        }
        let status = rpc::Status::decode(bytes).ok()?;
        let mut out = None::<Self>;
        let mut violation = None;
        let mut retry_delay = None;
        for any in &status.details {
            match any.type_url.as_str() {
                ERROR_INFO_TYPE => {
                    if let Ok(info) = rpc::ErrorInfo::decode(any.value.as_slice())
                        && info.domain == DOMAIN
                        && out.is_none()
                    {
                        out = Some(Self {
                            reason: info.reason,
                            metadata: info.metadata,
                            ..Self::default()
                        });
                    }
                }
                BAD_REQUEST_TYPE => {
                    if let Ok(bad) = rpc::BadRequest::decode(any.value.as_slice()) {
                        violation = violation.or_else(|| {
                            bad.field_violations
                                .into_iter()
                                .next()
                                .map(|v| FieldViolation {
                                    field: v.field,
                                    reason: v.reason,
                                    description: v.description,
                                })
                        });
                    }
                }
                RETRY_INFO_TYPE => {
                    if let Ok(retry) = rpc::RetryInfo::decode(any.value.as_slice()) {
                        retry_delay = retry_delay.or(retry.retry_delay.and_then(from_duration));
                    }
                }
                _ => {}
            }
        }
        let mut out = out?;
        out.field_violation = violation;
        out.retry_delay = retry_delay;
        Some(out)
    }
}

fn pack(type_url: &str, message: &impl prost::Message) -> Any {
    Any {
        type_url: type_url.to_string(),
        value: message.encode_to_vec(),
    }
}

fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        // Below one billion, so it fits.
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

fn from_duration(d: prost_types::Duration) -> Option<Duration> {
    let secs = u64::try_from(d.seconds).ok()?;
    let nanos = u32::try_from(d.nanos).ok().filter(|n| *n < 1_000_000_000)?;
    Some(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{meta, reason};

    #[test]
    fn details_travel_as_a_google_rpc_status() {
        let details = ErrorDetails::new("WRONG_LENGTH")
            .with_field("attempt_id", "must be 16 bytes, got 3")
            .with_retry_delay(Duration::from_millis(1500));
        let status = details
            .clone()
            .into_status(Code::InvalidArgument, "attempt_id: wrong_length");
        // What any gRPC implementation decodes: a google.rpc.Status with the same code and
        // message, and typed details.
        let raw = rpc::Status::decode(status.details()).expect("a google.rpc.Status");
        assert_eq!(raw.code, Code::InvalidArgument as i32);
        assert_eq!(raw.message, "attempt_id: wrong_length");
        let types: Vec<&str> = raw.details.iter().map(|a| a.type_url.as_str()).collect();
        assert_eq!(types, [ERROR_INFO_TYPE, BAD_REQUEST_TYPE, RETRY_INFO_TYPE]);
        let info = rpc::ErrorInfo::decode(raw.details[0].value.as_slice()).expect("ErrorInfo");
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("WRONG_LENGTH", "bkv")
        );
        assert_eq!(
            info.metadata.get(meta::FIELD).map(String::as_str),
            Some("attempt_id")
        );
        let retry = rpc::RetryInfo::decode(raw.details[2].value.as_slice()).expect("RetryInfo");
        assert_eq!(
            retry.retry_delay,
            Some(prost_types::Duration {
                seconds: 1,
                nanos: 500_000_000
            })
        );
        assert_eq!(ErrorDetails::of(&status), Some(details));
    }

    #[test]
    fn metadata_accessors_read_numbers_and_leaders() {
        let d = ErrorDetails::new(reason::WRONG_PASSWORD).with(meta::GUESSES_REMAINING, 3);
        assert_eq!(d.guesses_remaining(), Some(3));
        assert_eq!(d.leader(), None);
        let d = ErrorDetails::new(reason::UNAVAILABLE).with(meta::LEADER, "127.0.0.1:7102");
        assert_eq!(d.leader(), Some("127.0.0.1:7102"));
    }

    #[test]
    fn foreign_and_garbage_details_are_not_ours() {
        assert_eq!(ErrorDetails::decode(b""), None);
        assert_eq!(ErrorDetails::decode(b"\xff\xff\xff"), None);
        // An ErrorInfo of another domain is not a bkv reason.
        let foreign = rpc::Status {
            code: 14,
            message: String::new(),
            details: vec![pack(
                ERROR_INFO_TYPE,
                &rpc::ErrorInfo {
                    reason: "STOCKOUT".into(),
                    domain: "spanner.googleapis.com".into(),
                    metadata: BTreeMap::new(),
                },
            )],
        };
        assert_eq!(ErrorDetails::decode(&foreign.encode_to_vec()), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(256))]

        /// Any details survive encoding and decoding, whatever the strings hold.
        #[test]
        fn details_round_trip(
            reason in "[A-Z][A-Z0-9_]{1,20}[A-Z0-9]",
            metadata in proptest::collection::btree_map("[a-zA-Z]{1,12}", ".{0,40}", 0..4),
            field in proptest::option::of(("[a-z_.]{1,20}", ".{0,60}")),
            delay_ms in proptest::option::of(0u64..10_000_000),
            code in 1i32..17,
        ) {
            let mut details = ErrorDetails::new(reason);
            details.metadata = metadata;
            if let Some((field, why)) = field {
                details = details.with_field(&field, why);
            }
            if let Some(ms) = delay_ms {
                details = details.with_retry_delay(Duration::from_millis(ms));
            }
            let bytes = details.encode(Code::from(code), "m");
            proptest::prop_assert_eq!(ErrorDetails::decode(&bytes), Some(details));
        }

        /// What a server sends is untrusted: any bytes, and any edit of valid bytes, decode
        /// to some details or to none, never a panic.
        #[test]
        fn hostile_details_never_panic(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            edits in proptest::collection::vec((0usize..200, proptest::num::u8::ANY), 1..6),
        ) {
            let _ = ErrorDetails::decode(&bytes);
            let mut valid = ErrorDetails::new(reason::WRONG_PASSWORD)
                .with(meta::GUESSES_REMAINING, 3)
                .with_field("attempt_id", "x")
                .with_retry_delay(Duration::from_millis(1500))
                .encode(Code::InvalidArgument, "msg");
            for (at, byte) in edits {
                let at = at % valid.len();
                valid[at] = byte;
            }
            let _ = ErrorDetails::decode(&valid);
        }
    }

    #[test]
    fn every_reason_word_is_upper_snake() {
        for word in reason::ALL.iter().chain(reason::FIELD_REASONS) {
            assert!(is_reason_word(word), "{word}");
        }
        for bad in ["", "AB", "wrong_length", "TRAILING_", "1ABC", "A-B"] {
            assert!(!is_reason_word(bad), "{bad}");
        }
    }
}
