//! Conversions between wire messages and `bkv-core` values used by more than one side
//! (nodes, SDKs, admin tools), so each is written once.

use bkv_core::SignedShareMap;

use crate::v1::SignedShareMap as SignedShareMapProto;

impl From<&SignedShareMap> for SignedShareMapProto {
    fn from(map: &SignedShareMap) -> Self {
        Self {
            encoded: map.encoded.clone(),
            signature: map.signature.to_vec(),
        }
    }
}

/// Why a wire message does not convert: the field and what is wrong with it, in the words
/// of the contract's `BadRequest` field violations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    /// The field, as `message.field`.
    pub field: &'static str,
    /// What is wrong, starting with a reason word.
    pub reason: &'static str,
}

impl TryFrom<SignedShareMapProto> for SignedShareMap {
    type Error = FieldError;

    /// Checks only the shape (a 64-byte signature); the map's encoding and signature are
    /// checked by [`SignedShareMap::verify`].
    fn try_from(map: SignedShareMapProto) -> Result<Self, FieldError> {
        Ok(Self {
            signature: map
                .signature
                .as_slice()
                .try_into()
                .map_err(|_| FieldError {
                    field: "share_map.signature",
                    reason: "wrong_length: must be 64 bytes",
                })?,
            encoded: map.encoded,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_share_maps_round_trip_and_short_signatures_name_the_field() {
        let map = SignedShareMap {
            encoded: b"bkv/v2/share-map".to_vec(),
            signature: [7; 64],
        };
        let wire = SignedShareMapProto::from(&map);
        assert_eq!(SignedShareMap::try_from(wire.clone()), Ok(map));
        let short = SignedShareMapProto {
            signature: vec![7; 63],
            ..wire
        };
        let err = SignedShareMap::try_from(short).unwrap_err();
        assert_eq!(err.field, "share_map.signature");
        assert!(err.reason.starts_with("wrong_length"));
    }
}
