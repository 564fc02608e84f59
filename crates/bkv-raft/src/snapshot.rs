//! The snapshot format of bkv-raft: what a snapshot's data holds, on disk and on the wire.
//!
//! `"bkvsnap\0"`, a big-endian format version, then a postcard body: the last applied log
//! id, the last membership and the vault state's own encoding (`VaultState::encode`, itself
//! versioned). The vault state holds sealed records and public bookkeeping only, so a
//! snapshot holds no secret in clear.

use bkv_core::{StateDecodeError, VaultState};
use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::types::{LogId, StoredMembership};

const MAGIC: [u8; 8] = *b"bkvsnap\0";
const FORMAT_VERSION: u16 = 1;

/// Why snapshot bytes were refused.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotDecodeError {
    /// Too short, or not our magic.
    #[error("not a bkv snapshot")]
    NotASnapshot,
    /// A format this code cannot read.
    #[error("unknown snapshot format version {0}")]
    UnknownFormat(u16),
    /// The body does not parse.
    #[error("snapshot body: {0}")]
    Body(#[from] CodecError),
    /// The vault state inside does not decode.
    #[error("vault state in snapshot: {0}")]
    State(#[from] StateDecodeError),
}

/// A decoded snapshot: the state machine as of `last_applied`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotImage {
    /// The last log id applied to `state`.
    pub last_applied: Option<LogId>,
    /// The last membership applied.
    pub membership: StoredMembership,
    /// The vault state.
    pub state: VaultState,
}

#[derive(Serialize)]
struct BodyRef<'a> {
    last_applied: &'a Option<LogId>,
    membership: &'a StoredMembership,
    #[serde(serialize_with = "bkv_core::bytes::serialize")]
    state: &'a [u8],
}

#[derive(Deserialize)]
struct Body {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    #[serde(with = "bkv_core::bytes")]
    state: Vec<u8>,
}

impl SnapshotImage {
    /// Encodes the snapshot's data.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        encode_parts(&self.last_applied, &self.membership, &self.state.encode())
    }

    /// Decodes snapshot data. Never panics on hostile bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, SnapshotDecodeError> {
        let (magic, rest) = bytes
            .split_first_chunk::<8>()
            .ok_or(SnapshotDecodeError::NotASnapshot)?;
        if *magic != MAGIC {
            return Err(SnapshotDecodeError::NotASnapshot);
        }
        let (version, body) = rest
            .split_first_chunk::<2>()
            .ok_or(SnapshotDecodeError::NotASnapshot)?;
        let version = u16::from_be_bytes(*version);
        if version != FORMAT_VERSION {
            return Err(SnapshotDecodeError::UnknownFormat(version));
        }
        let body: Body = codec::decode(body)?;
        Ok(Self {
            last_applied: body.last_applied,
            membership: body.membership,
            state: VaultState::decode(&body.state)?,
        })
    }
}

/// Encodes snapshot data from its parts (the state already encoded).
pub(crate) fn encode_parts(
    last_applied: &Option<LogId>,
    membership: &StoredMembership,
    state: &[u8],
) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(MAGIC.len() + 2 + state.len() + 256);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    // Straight after the header: a large state is copied once, not twice.
    Ok(postcard::to_extend(
        &BodyRef {
            last_applied,
            membership,
            state,
        },
        out,
    )?)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use openraft::{CommittedLeaderId, Membership};

    use super::*;
    use crate::types::BkvNode;

    fn image() -> SnapshotImage {
        let nodes: BTreeMap<u64, BkvNode> = [(1, BkvNode::new("a:1", "a:2", "a:3"))].into();
        let m = Membership::new(vec![BTreeSet::from([1])], nodes);
        let log_id = LogId::new(CommittedLeaderId::new(2, 1), 9);
        SnapshotImage {
            last_applied: Some(log_id),
            membership: StoredMembership::new(Some(log_id), m),
            state: VaultState::default(),
        }
    }

    #[test]
    fn round_trip() {
        let img = image();
        let bytes = img.encode().expect("encode");
        assert_eq!(SnapshotImage::decode(&bytes).expect("decode"), img);
    }

    #[test]
    fn refuses_bad_headers_and_bodies() {
        let bytes = image().encode().expect("encode");
        assert!(matches!(
            SnapshotImage::decode(&bytes[..5]),
            Err(SnapshotDecodeError::NotASnapshot)
        ));
        let mut other = bytes.clone();
        other[0] ^= 1;
        assert!(matches!(
            SnapshotImage::decode(&other),
            Err(SnapshotDecodeError::NotASnapshot)
        ));
        let mut future = bytes.clone();
        future[9] = 2;
        assert!(matches!(
            SnapshotImage::decode(&future),
            Err(SnapshotDecodeError::UnknownFormat(2))
        ));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            SnapshotImage::decode(&trailing),
            Err(SnapshotDecodeError::Body(_))
        ));
        // Every truncation is refused, none panics.
        for n in 0..bytes.len() {
            assert!(SnapshotImage::decode(&bytes[..n]).is_err(), "prefix {n}");
        }
    }
}
