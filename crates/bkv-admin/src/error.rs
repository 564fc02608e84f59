//! Why an admin call failed.

use std::time::Duration;

use tonic::Code;

use bkv_client::endpoint::EndpointError;

/// Why an admin call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// An endpoint or the TLS material is unusable.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The node answered with an error, or could not be reached (UNAVAILABLE).
    #[error("{endpoint}: {code:?}: {message}")]
    Status {
        /// The endpoint asked.
        endpoint: String,
        /// The gRPC code.
        code: Code,
        /// The status message.
        message: String,
    },
    /// No answer within the call timeout.
    #[error("{endpoint}: no answer within {} ms", after.as_millis())]
    Timeout {
        /// The endpoint asked.
        endpoint: String,
        /// The timeout.
        after: Duration,
    },
    /// A node's answer does not make sense (a node answering under another id, a missing key).
    #[error("{0}")]
    Invalid(String),
    /// The cluster has no leader that can be reached.
    #[error("no leader: {0}")]
    NoLeader(String),
}

impl AdminError {
    /// Whether asking again, after a pause, may succeed: the node could not be reached or
    /// answered UNAVAILABLE (not the leader, a write cut short by a leader change), no answer
    /// came in time, or no leader was known. Refusals and bad answers are not transient.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Status { code, .. } => matches!(code, Code::Unavailable),
            Self::Timeout { .. } | Self::NoLeader(_) => true,
            Self::Endpoint(_) | Self::Invalid(_) => false,
        }
    }
}
