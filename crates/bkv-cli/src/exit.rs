//! Exit codes and how a failure is reported: a line on stderr, and with `--json` an object
//! on stdout too.

use std::process::ExitCode;

use bkv_admin::AdminError;
use bkv_client::VaultError;
use serde_json::json;

/// Any other error.
pub const OTHER: u8 = 1;
/// Bad flags or values (clap uses 2 as well).
pub const USAGE: u8 = 2;
/// Wrong password.
pub const WRONG_PASSWORD: u8 = 3;
/// Record destroyed.
pub const DESTROYED: u8 = 4;
/// No record.
pub const NOT_FOUND: u8 = 5;
/// No endpoint answered.
pub const UNAVAILABLE: u8 = 6;
/// Token refused or permission denied.
pub const UNAUTHENTICATED: u8 = 7;
/// Rate limited.
pub const RATE_LIMITED: u8 = 8;

/// A failed command: the exit code, the message, and a machine-readable kind.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    kind: &'static str,
    message: String,
    extra: serde_json::Value,
}

impl Failure {
    /// A failure with exit code 1.
    pub fn other(message: impl Into<String>) -> Self {
        Self {
            code: OTHER,
            kind: "error",
            message: message.into(),
            extra: serde_json::Value::Null,
        }
    }

    /// A usage error (exit code 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: USAGE,
            kind: "usage",
            message: message.into(),
            extra: serde_json::Value::Null,
        }
    }

    /// The failure with another exit code and kind.
    pub fn with_code(mut self, code: u8, kind: &'static str) -> Self {
        self.code = code;
        self.kind = kind;
        self
    }

    /// Prints the failure and gives the exit code.
    pub fn report(self, json: bool) -> ExitCode {
        eprintln!("bkv: {}", self.message);
        if json {
            let mut value = json!({ "error": self.kind, "message": self.message });
            if let (Some(obj), serde_json::Value::Object(extra)) =
                (value.as_object_mut(), self.extra)
            {
                obj.extend(extra);
            }
            println!("{value}");
        }
        ExitCode::from(self.code)
    }
}

impl From<VaultError> for Failure {
    fn from(e: VaultError) -> Self {
        let message = e.to_string();
        let (code, kind, extra) = match &e {
            VaultError::WrongPassword { guesses_remaining } => (
                WRONG_PASSWORD,
                "wrong_password",
                json!({ "guesses_remaining": guesses_remaining }),
            ),
            VaultError::Destroyed => (DESTROYED, "destroyed", serde_json::Value::Null),
            VaultError::NotFound => (NOT_FOUND, "not_found", serde_json::Value::Null),
            VaultError::Unavailable { attempts, .. } => {
                (UNAVAILABLE, "unavailable", json!({ "attempts": attempts }))
            }
            VaultError::Unauthenticated(_) | VaultError::PermissionDenied(_) => {
                (UNAUTHENTICATED, "unauthenticated", serde_json::Value::Null)
            }
            VaultError::RateLimited { retry_after } => (
                RATE_LIMITED,
                "rate_limited",
                json!({ "retry_after_ms": retry_after.as_millis() as u64 }),
            ),
            VaultError::InvalidArgument { field, reason } => (
                OTHER,
                "invalid_argument",
                json!({ "field": field, "reason": reason }),
            ),
            VaultError::TicketRejected { .. } => {
                (OTHER, "ticket_rejected", serde_json::Value::Null)
            }
            VaultError::Protocol(_) => (OTHER, "protocol", serde_json::Value::Null),
            VaultError::Server { .. } => (OTHER, "server", serde_json::Value::Null),
            VaultError::Transport(_) => (OTHER, "transport", serde_json::Value::Null),
            VaultError::Token(_) => (UNAUTHENTICATED, "token", serde_json::Value::Null),
        };
        Self {
            code,
            kind,
            message,
            extra,
        }
    }
}

impl From<AdminError> for Failure {
    fn from(e: AdminError) -> Self {
        let code = match &e {
            AdminError::Status { code, .. } => match code {
                tonic::Code::Unavailable => UNAVAILABLE,
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => UNAUTHENTICATED,
                _ => OTHER,
            },
            AdminError::Timeout { .. } | AdminError::NoLeader(_) => UNAVAILABLE,
            AdminError::Endpoint(_) | AdminError::Invalid(_) => OTHER,
        };
        Self {
            code,
            kind: "admin",
            message: e.to_string(),
            extra: serde_json::Value::Null,
        }
    }
}

impl From<bkv_devkit::pki::PkiError> for Failure {
    fn from(e: bkv_devkit::pki::PkiError) -> Self {
        Self::other(e.to_string())
    }
}
