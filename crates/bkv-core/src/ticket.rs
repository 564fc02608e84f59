//! Recovery tickets: the OPAQUE server login state of one recovery attempt and what the node
//! needs to finish it (account, version, charge, counters, expiry, `sealed_key`), sealed by
//! the HSM with purpose `Ticket` under [`Aad::ticket`]. Any node of the cluster can finish
//! the login with it without reading the record again.
//!
//! Plaintext layout (format 1): `version u8 = 1 || account (u32 len || bytes) || record
//! version u64 || charge u64 || guesses_remaining u32 || guess_limit u32 ||
//! expires_at_unix_ms u64 || login_state (u32 len || bytes) || sealed_key (u32 len ||
//! bytes)`, big-endian.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::ids::{AccountId, ChargeNumber, ClusterId, GuessLimit, RecordVersion};
use crate::opaque::ProtocolError;
use crate::protocol::codec::{DecodeError, Reader, Writer};
use crate::protocol::{MAX_SEALED_KEY_LEN, MAX_TICKET_LEN, SealedKey};
use crate::seal::{Aad, SealPurpose, Sealer};

/// Largest serialized OPAQUE server login state accepted in a ticket (3DH with SHA-512 needs
/// 128 bytes).
const MAX_LOGIN_STATE_LEN: usize = 256;

/// A ticket in clear. The login state (which holds the login's session key) is zeroized on
/// drop and never shown by `Debug`.
#[derive(Clone)]
pub struct TicketPlain {
    /// The account; also bound by the AAD.
    pub account: AccountId,
    /// The record version the guess was charged on.
    pub version: RecordVersion,
    /// The charge the login runs under.
    pub charge: ChargeNumber,
    /// Guesses left after that charge.
    pub guesses_remaining: u32,
    /// The record's guess limit.
    pub guess_limit: GuessLimit,
    /// Past this instant (Unix ms) the ticket is refused.
    pub expires_at_unix_ms: u64,
    /// Serialized `opaque_ke::ServerLogin` state.
    pub(crate) login_state: Zeroizing<Vec<u8>>,
    /// The record's `sealed_key`, released on success.
    pub sealed_key: SealedKey,
}

impl TicketPlain {
    /// The format written by [`TicketPlain::encode`].
    pub const FORMAT_VERSION: u8 = 1;

    /// The plaintext bytes, in a zeroizing buffer of exact size.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let account = self.account.as_bytes();
        let sealed_key = self.sealed_key.as_bytes();
        let mut w = Writer::with_capacity(
            1 + Writer::bytes_len(account.len())
                + 8
                + 8
                + 4
                + 4
                + 8
                + Writer::bytes_len(self.login_state.len())
                + Writer::bytes_len(sealed_key.len()),
        );
        w.u8(Self::FORMAT_VERSION)
            .bytes(account)
            .u64(self.version.get())
            .u64(self.charge.get())
            .u32(self.guesses_remaining)
            .u32(self.guess_limit.get())
            .u64(self.expires_at_unix_ms)
            .bytes(&self.login_state)
            .bytes(sealed_key);
        w.finish()
    }

    /// Reads plaintext bytes written by [`TicketPlain::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let corrupt = |e: DecodeError| ProtocolError::Corrupt {
            what: "ticket",
            reason: match e {
                DecodeError::Truncated(what) | DecodeError::Invalid(what) => what,
                DecodeError::Trailing => "trailing bytes",
            },
        };
        let invalid = |what| corrupt(DecodeError::Invalid(what));
        let mut r = Reader::new(bytes);
        if r.u8("format version").map_err(corrupt)? != Self::FORMAT_VERSION {
            return Err(invalid("format version"));
        }
        let account =
            AccountId::parse_bytes(r.bytes(AccountId::MAX_LEN, "account").map_err(corrupt)?)
                .map_err(|_| invalid("account"))?;
        let version = RecordVersion(r.u64("version").map_err(corrupt)?);
        let charge = ChargeNumber(r.u64("charge").map_err(corrupt)?);
        let guesses_remaining = r.u32("guesses_remaining").map_err(corrupt)?;
        let guess_limit = GuessLimit::parse_max(r.u32("guess_limit").map_err(corrupt)?)
            .map_err(|_| invalid("guess_limit"))?;
        let expires_at_unix_ms = r.u64("expires_at").map_err(corrupt)?;
        let login_state = Zeroizing::new(
            r.bytes(MAX_LOGIN_STATE_LEN, "login_state")
                .map_err(corrupt)?
                .to_vec(),
        );
        let sealed_key = SealedKey::parse(
            r.bytes(MAX_SEALED_KEY_LEN, "sealed_key")
                .map_err(corrupt)?
                .to_vec(),
        )
        .map_err(|_| invalid("sealed_key"))?;
        r.finish().map_err(corrupt)?;
        Ok(Self {
            account,
            version,
            charge,
            guesses_remaining,
            guess_limit,
            expires_at_unix_ms,
            login_state,
            sealed_key,
        })
    }

    /// Seals the ticket (purpose `Ticket`, AAD [`Aad::ticket`] of its account).
    pub async fn seal<S: Sealer>(
        &self,
        sealer: &S,
        cluster: &ClusterId,
    ) -> Result<Vec<u8>, ProtocolError> {
        let plain = self.encode();
        let aad = Aad::ticket(cluster, &self.account);
        Ok(sealer.seal(SealPurpose::Ticket, &aad, &plain).await?)
    }

    /// Unseals a ticket that a client sent back for `account`. A ticket of another account or
    /// cluster, or an altered one, fails in the sealer ([`ProtocolError::Seal`]); one larger
    /// than [`MAX_TICKET_LEN`] is refused before the HSM sees it.
    pub async fn unseal<S: Sealer>(
        sealer: &S,
        cluster: &ClusterId,
        account: &AccountId,
        ticket: &[u8],
    ) -> Result<Self, ProtocolError> {
        if ticket.len() > MAX_TICKET_LEN {
            return Err(ProtocolError::TooLarge {
                field: "ticket",
                max: MAX_TICKET_LEN,
            });
        }
        let aad = Aad::ticket(cluster, account);
        let plain = sealer.unseal(SealPurpose::Ticket, &aad, ticket).await?;
        let decoded = Self::decode(&plain)?;
        if &decoded.account != account {
            // The AAD already binds the account; this is a second check of our own format.
            return Err(ProtocolError::Corrupt {
                what: "ticket",
                reason: "account",
            });
        }
        Ok(decoded)
    }
}

impl PartialEq for TicketPlain {
    /// Compares the login state in constant time (it holds the login's session key).
    fn eq(&self, other: &Self) -> bool {
        self.account == other.account
            && self.version == other.version
            && self.charge == other.charge
            && self.guesses_remaining == other.guesses_remaining
            && self.guess_limit == other.guess_limit
            && self.expires_at_unix_ms == other.expires_at_unix_ms
            && self.sealed_key == other.sealed_key
            && bool::from(
                self.login_state
                    .as_slice()
                    .ct_eq(other.login_state.as_slice()),
            )
    }
}

impl Eq for TicketPlain {}

impl fmt::Debug for TicketPlain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketPlain")
            .field("account", &self.account)
            .field("version", &self.version)
            .field("charge", &self.charge)
            .field("guesses_remaining", &self.guesses_remaining)
            .field("guess_limit", &self.guess_limit)
            .field("expires_at_unix_ms", &self.expires_at_unix_ms)
            .field("login_state", &"<redacted>")
            .field("sealed_key", &self.sealed_key)
            .finish()
    }
}
