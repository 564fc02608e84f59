//! Commands of the replicated state machine: what goes into the Raft log.
//!
//! Nothing here can hold a password, an export key, a session key or a backup key in
//! clear: records and the server setup travel sealed by the HSM.

use serde::{Deserialize, Serialize};

use crate::ids::{
    AccountId, AttemptId, ChargeNumber, ClusterId, GuessLimit, RecordVersion, RequestId,
};
use crate::oprf_record::{OprfRecord, StoredShare};
use crate::share_map::SignedShareMap;

/// One entry of the Raft log as proposed by a node: a command and the proposer's clock.
///
/// `at_unix_ms` is the leader's clock when it proposed the entry, so that every replica
/// sees the same time when it applies the entry (audit timestamps, the versions of records
/// staged); the state machine never reads a clock of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Proposer's wall clock, Unix milliseconds.
    pub at_unix_ms: u64,
    /// The command.
    pub command: Command,
}

/// A change to the vault's replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Creates the cluster: the first entry after Raft initialisation.
    Bootstrap {
        /// The new cluster's id.
        cluster_id: ClusterId,
        /// The cluster name (account tokens' audience).
        cluster_name: String,
        /// The OPAQUE `ServerSetup`, sealed by the HSM (purpose `ServerSetup`).
        #[serde(with = "crate::bytes")]
        sealed_server_setup: Vec<u8>,
        /// Key check value of the cluster key.
        key_check_value: [u8; 3],
        /// Id of the cluster key, as carried in sealed blobs.
        key_id: [u8; 8],
        /// Guess limit of registrations that ask for none.
        default_guess_limit: GuessLimit,
        /// Largest guess limit a registration may ask for.
        max_guess_limit: GuessLimit,
        /// The cluster identity key (Ed25519 public key) that signs share maps.
        identity_key: [u8; 32],
    },
    /// Puts a new share map in force: who holds OPRF key shares from now on. Applies only
    /// with a valid signature by the cluster identity key and a higher epoch.
    SetShareMap {
        /// The map and its signature.
        map: SignedShareMap,
    },
    /// Stages a new record version (registration). It cannot be recovered until activated.
    Stage {
        /// The account.
        account: AccountId,
        /// The client's registration id; a retry with the same id stages nothing new.
        request_id: RequestId,
        /// Wrong guesses allowed.
        guess_limit: GuessLimit,
        /// The record (password file, `sealed_key`, policy), sealed by the HSM (purpose
        /// `Record`, AAD from `Aad::record`).
        #[serde(with = "crate::bytes")]
        sealed_record: Vec<u8>,
        /// The public OPRF half: shares, threshold, reset key, KSF parameters.
        oprf: OprfRecord,
    },
    /// Makes a staged version active, destroying the previous active version.
    Activate {
        /// The account.
        account: AccountId,
        /// The staged version.
        version: RecordVersion,
    },
    /// Charges one guess on the account's active record, before any credential response is
    /// released.
    ChargeGuess {
        /// The account.
        account: AccountId,
        /// The client's attempt id.
        attempt_id: AttemptId,
        /// SHA-256 of the client's blinded OPRF element: the charge is bound to it, and a
        /// share-holder evaluates only that element under this charge.
        request_hash: [u8; 32],
    },
    /// Resets the guess counter after a successful recovery, unless a later charge exists.
    /// Applies only with the client's reset signature (see [`crate::reset`]).
    ResetGuesses {
        /// The account.
        account: AccountId,
        /// The version recovered.
        version: RecordVersion,
        /// The charge that the successful login was made under.
        charge: ChargeNumber,
        /// Ed25519 signature by the record's reset key of this reset.
        #[serde(with = "crate::bytes::array")]
        signature: [u8; 64],
    },
    /// Destroys a record whose last allowed guess was charged and then failed
    /// (a finalization that did not verify with no guesses left).
    Destroy {
        /// The account.
        account: AccountId,
        /// The version.
        version: RecordVersion,
        /// The failed charge; applies only if it is still the latest one.
        charge: ChargeNumber,
    },
    /// Removes everything of an account. The form written before `DeleteThrough` existed:
    /// it applies as a `DeleteThrough` of every version issued so far, so a late copy of it
    /// would also remove a registration made after it was asked for. Nodes no longer
    /// propose it; it stays so that logs holding it still apply.
    Delete {
        /// The account.
        account: AccountId,
    },
    /// Commits nothing: its outcome is the highest record version issued when it applied,
    /// above every version of a registration acknowledged before it was proposed and below
    /// every version of one begun after it was answered (what `DeleteThrough` bounds itself
    /// by).
    Barrier,
    /// Removes an account's record versions at or below `through` (staged, active and the
    /// destroyed marker), keeping any newer one. `through` is what a `Barrier` committed
    /// when the deletion was asked for answered, so that a copy of this command
    /// committed late (a retry or a forward that arrives after the client gave up) never
    /// removes a registration that began after the deletion was answered.
    DeleteThrough {
        /// The account.
        account: AccountId,
        /// The highest version removed.
        through: RecordVersion,
    },
    /// Gives a voter that holds no share of an account's active record its share, made by
    /// share repair (`oprf::repair`): `helpers`, `threshold` of the record's share-holders,
    /// dealt it to the voter, which checked it and encrypted it to its own share-receiving
    /// key. Applies only if the voter is in the share map in force and holds no share of
    /// the record, the helpers are distinct holders of it, and the share's commitment is
    /// the one theirs give at the voter's index (every replica computes it), so a share
    /// off the record's polynomial is never added. Idempotent: the same share again
    /// changes nothing.
    AddShare {
        /// The account.
        account: AccountId,
        /// The active record's version.
        version: RecordVersion,
        /// The helpers, increasing.
        helpers: Vec<u64>,
        /// The voter's share: its node id, commitment and ciphertext.
        share: StoredShare,
    },
    /// Replaces the shares of an account's active record with refreshed ones, made by share
    /// refresh (`oprf::refresh`): each participant added a sharing of zero to its share and
    /// encrypted the result to its own share-receiving key. Applies only if the new shares'
    /// node ids are increasing, at least the record's threshold, each a holder of the
    /// record and a voter of the share map in force, and their commitments lie on one
    /// polynomial of the record's degree that shares the record's key (every replica
    /// checks it from the commitments alone). Holders of the record that are not among
    /// `shares` hold none after it. Idempotent: the same shares again change nothing.
    /// Applies only to the shares it was made from (`from`), so that a stale refresh (made
    /// while another was applied) or an old one replayed is refused.
    RefreshShares {
        /// The account.
        account: AccountId,
        /// The active record's version.
        version: RecordVersion,
        /// `OprfRecord::shares_digest` of the record's shares the refresh was made from.
        from: [u8; 32],
        /// The refreshed shares, by increasing node id.
        shares: Vec<StoredShare>,
    },
}
