//! Test fixtures of protocol v2 for tests of the state machine and the layers above it:
//! a cluster identity key, a share map it signs, OPRF records that follow that map, and the
//! reset signatures of their records. Deterministic (fixed keys), so that tests and fuzz
//! corpora stay stable. Compiled only for tests or with the `test-support` feature.

use ed25519_dalek::{Signer as _, SigningKey};

use crate::command::Command;
use crate::ids::{AccountId, ChargeNumber, ClusterId, GuessLimit, RecordVersion};
use crate::oprf_record::{OprfRecord, SHARE_CIPHERTEXT_LEN, StoredShare};
use crate::protocol::KsfParams;
use crate::reset::reset_message;
use crate::share_map::{ShareHolder, ShareMap, SignedShareMap, threshold_for};

/// The fixtures' cluster name.
pub const CLUSTER_NAME: &str = "c";

/// The fixtures' cluster identity key.
pub fn identity() -> SigningKey {
    SigningKey::from_bytes(&[0x1d; 32])
}

/// The key that signs the resets of every fixture record.
pub fn reset_signer() -> SigningKey {
    SigningKey::from_bytes(&[0x2e; 32])
}

/// `Bootstrap` of the fixture cluster, with `default` and `max` guess limits.
pub fn bootstrap(default: GuessLimit, max: GuessLimit) -> Command {
    Command::Bootstrap {
        cluster_id: ClusterId::new([0x11; 16]),
        cluster_name: CLUSTER_NAME.into(),
        sealed_server_setup: vec![0xaa; 4],
        key_check_value: [1, 2, 3],
        key_id: [4; 8],
        default_guess_limit: default,
        max_guess_limit: max,
        identity_key: identity().verifying_key().to_bytes(),
    }
}

/// The share map of epoch `epoch` with holders `1..=holders`, signed by [`identity`].
pub fn share_map(epoch: u64, holders: u64) -> SignedShareMap {
    share_map_of(epoch, &(1..=holders).collect::<Vec<_>>())
}

/// The share map of epoch `epoch` with the holders `ids` (increasing), signed by
/// [`identity`].
pub fn share_map_of(epoch: u64, ids: &[u64]) -> SignedShareMap {
    let map = ShareMap {
        cluster_name: CLUSTER_NAME.into(),
        epoch,
        threshold: u16::try_from(threshold_for(ids.len())).unwrap_or(u16::MAX),
        holders: ids
            .iter()
            .map(|&node_id| ShareHolder {
                node_id,
                receive_key: {
                    let mut k = [node_id as u8; 65];
                    k[0] = 0x04;
                    k
                },
            })
            .collect(),
    };
    let encoded = map.encode();
    SignedShareMap {
        signature: identity().sign(&encoded).to_bytes(),
        encoded,
    }
}

/// `SetShareMap` of [`share_map`].
pub fn set_share_map(epoch: u64, holders: u64) -> Command {
    Command::SetShareMap {
        map: share_map(epoch, holders),
    }
}

/// An OPRF record that follows the map of `epoch` with `holders` holders (placeholder
/// commitments and ciphertexts: the state machine does not open them).
pub fn oprf_record(epoch: u64, holders: u64) -> OprfRecord {
    OprfRecord {
        map_epoch: epoch,
        threshold: u16::try_from(threshold_for(holders as usize)).unwrap_or(u16::MAX),
        shares: (1..=holders)
            .map(|node_id| StoredShare {
                node_id,
                commitment: [node_id as u8; 32],
                ciphertext: vec![node_id as u8; SHARE_CIPHERTEXT_LEN],
            })
            .collect(),
        reset_key: reset_signer().verifying_key().to_bytes(),
        ksf: KsfParams::light(),
    }
}

/// The client's signature of the reset of `charge` on `version` of `account`'s fixture
/// record.
pub fn reset_signature(
    account: &AccountId,
    version: RecordVersion,
    charge: ChargeNumber,
) -> [u8; 64] {
    reset_signer()
        .sign(&reset_message(CLUSTER_NAME, account, version, charge))
        .to_bytes()
}

/// `ResetGuesses` with a valid signature.
pub fn reset(account: &AccountId, version: RecordVersion, charge: ChargeNumber) -> Command {
    Command::ResetGuesses {
        account: account.clone(),
        version,
        charge,
        signature: reset_signature(account, version, charge),
    }
}
