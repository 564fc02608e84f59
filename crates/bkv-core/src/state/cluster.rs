//! The cluster's configuration, fixed by the `Bootstrap` entry.

use serde::{Deserialize, Serialize};

use crate::ids::{ClusterId, GuessLimit};
use crate::share_map::{ShareMap, SignedShareMap};

/// What `Bootstrap` set (the cluster's identity, its sealed OPAQUE server setup, the cluster
/// key's check value and id, the guess limits of registrations, the identity key) and the
/// share map in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// The cluster's id (bound into every sealed blob's AAD).
    pub cluster_id: ClusterId,
    /// The cluster name (account tokens' audience).
    pub cluster_name: String,
    /// The OPAQUE `ServerSetup`, sealed by the HSM (purpose `ServerSetup`).
    #[serde(with = "crate::bytes")]
    pub sealed_server_setup: Vec<u8>,
    /// Key check value of the cluster key.
    pub key_check_value: [u8; 3],
    /// Id of the cluster key, as carried in sealed blobs.
    pub key_id: [u8; 8],
    /// Guess limit of registrations that ask for none.
    pub default_guess_limit: GuessLimit,
    /// Largest guess limit a registration may ask for.
    pub max_guess_limit: GuessLimit,
    /// The cluster identity key (Ed25519 public key) that signs share maps.
    pub identity_key: [u8; 32],
    /// The share map in force, once one was set.
    pub share_map: Option<CurrentShareMap>,
}

/// The share map in force: as signed (what clients get) and as parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentShareMap {
    /// The signed map.
    pub signed: SignedShareMap,
    /// Its contents.
    pub map: ShareMap,
}
