//! The write path of every vault command: [`Writer`] commits through Raft from any node,
//! locally through the leader's group commit ([`Batcher`]) or forwarded to the leader,
//! whose Raft service answers the forward with [`forward::serve`]. Why a write failed is
//! read from openraft's errors in one place ([`WriteError::from_commit`]) and who leads in
//! one place ([`LeaderHint`]).
//!
//! The files import one way: `writer` and `forward` use `batcher`; all use `error` and
//! `leader`.

pub mod batcher;
mod error;
pub(crate) mod forward;
mod leader;
mod writer;

pub use batcher::{BatchOptions, Batcher, Written};
pub use error::{ProposeError, WriteError};
pub use leader::LeaderHint;
pub use writer::Writer;

/// Largest encoded client request accepted by `Forward` (and so by any node).
pub const MAX_FORWARD_REQUEST_BYTES: usize = 1024 * 1024;
