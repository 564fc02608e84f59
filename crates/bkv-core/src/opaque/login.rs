//! Server side of OPAQUE login (recovery): start after the guess is charged, finish from the
//! sealed ticket on any node.

use opaque_ke::{CredentialFinalization, CredentialRequest, ServerLogin, ServerLoginParameters};
use rand::rngs::OsRng;
use zeroize::{Zeroize, Zeroizing};

use super::{ProtocolError, ServerSecrets, Suite};
use crate::ids::{AccountId, ChargeNumber, ClusterId, GuessLimit, RecordVersion, RequestId};
use crate::outcome::Outcome;
use crate::protocol::{self, CONTEXT, SessionKey};
use crate::record::unseal_record;
use crate::seal::Sealer;
use crate::ticket::TicketPlain;

/// A committed charge, as `Outcome::Charged` reports it: what [`login_start`] runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargedRecord {
    /// The record version charged.
    pub version: RecordVersion,
    /// The charge's number.
    pub charge: ChargeNumber,
    /// Guesses left after this charge.
    pub guesses_remaining: u32,
    /// The record's guess limit.
    pub guess_limit: GuessLimit,
    /// The registration id the record was sealed under (part of its AAD).
    pub request_id: RequestId,
    /// The sealed record.
    pub sealed_record: Vec<u8>,
}

impl ChargedRecord {
    /// The charge an `Outcome::Charged` reports; `None` for any other outcome.
    pub fn from_outcome(outcome: Outcome) -> Option<Self> {
        match outcome {
            Outcome::Charged {
                version,
                charge,
                guesses_remaining,
                guess_limit,
                request_id,
                sealed_record,
                oprf: _,
            } => Some(Self {
                version,
                charge,
                guesses_remaining,
                guess_limit,
                request_id,
                sealed_record,
            }),
            _ => None,
        }
    }
}

/// What `RecoverStart` answers, besides the counters the node already has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginStarted {
    /// Serialized OPAQUE `CredentialResponse`.
    pub credential_response: Vec<u8>,
    /// The sealed ticket.
    pub ticket: Vec<u8>,
}

/// A login that verified. The node commits `ResetGuesses(account, version, charge)` and
/// releases `transported_key` only if that commit finds the record still live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginFinished {
    /// The record version recovered.
    pub version: RecordVersion,
    /// The charge the login ran under.
    pub charge: ChargeNumber,
    /// Guesses left after that charge (before the reset).
    pub guesses_remaining: u32,
    /// `sealed_key` encrypted under this login's session key.
    pub transported_key: Vec<u8>,
}

/// Runs OPAQUE's server login start on a record whose guess has been charged, and seals the
/// login state into a ticket that expires `ticket_ttl_ms` after `now_unix_ms`.
///
/// Call it only after the `ChargeGuess` commit: its result is derived from the password file
/// and is what an offline guess would need. Server randomness comes from the OS.
#[allow(
    clippy::too_many_arguments,
    reason = "each argument is a distinct input the node already holds; a struct would only rename them"
)]
pub async fn login_start<S: Sealer>(
    sealer: &S,
    secrets: &ServerSecrets,
    cluster: &ClusterId,
    account: &AccountId,
    charged: ChargedRecord,
    credential_request: CredentialRequest<Suite>,
    now_unix_ms: u64,
    ticket_ttl_ms: u64,
) -> Result<LoginStarted, ProtocolError> {
    let record = unseal_record(
        sealer,
        cluster,
        account,
        &charged.request_id,
        &charged.sealed_record,
    )
    .await?;
    let start = ServerLogin::start(
        &mut OsRng,
        secrets.setup(),
        Some(record.password_file.0),
        credential_request,
        account.as_bytes(),
        login_parameters(account),
    )
    .map_err(|_| ProtocolError::Internal("login start"))?;
    let credential_response = start.message.serialize().to_vec();
    let mut state = start.state.serialize();
    let login_state = Zeroizing::new(state.to_vec());
    state.as_mut_slice().zeroize();
    drop(start.state);

    let ticket = TicketPlain {
        account: account.clone(),
        version: charged.version,
        charge: charged.charge,
        guesses_remaining: charged.guesses_remaining,
        guess_limit: charged.guess_limit,
        expires_at_unix_ms: now_unix_ms.saturating_add(ticket_ttl_ms),
        login_state,
        sealed_key: record.sealed_key,
    };
    let ticket = ticket.seal(sealer, cluster).await?;
    Ok(LoginStarted {
        credential_response,
        ticket,
    })
}

/// Finishes a login from its ticket: checks the ticket (sealed for this cluster and account,
/// not expired), verifies the client's finalization, and computes `transported_key`.
///
/// A finalization that does not verify gives [`ProtocolError::WrongPassword`] with the
/// ticket's counters. The same ticket may be presented again and gives the same answer: the
/// state machine, not this function, decides what a replay is worth.
pub async fn login_finish<S: Sealer>(
    sealer: &S,
    cluster: &ClusterId,
    account: &AccountId,
    ticket: &[u8],
    credential_finalization: CredentialFinalization<Suite>,
    now_unix_ms: u64,
) -> Result<LoginFinished, ProtocolError> {
    let ticket = TicketPlain::unseal(sealer, cluster, account, ticket).await?;
    if now_unix_ms >= ticket.expires_at_unix_ms {
        return Err(ProtocolError::TicketExpired);
    }
    let state = ServerLogin::<Suite>::deserialize(&ticket.login_state).map_err(|_| {
        ProtocolError::Corrupt {
            what: "ticket",
            reason: "login_state",
        }
    })?;
    let mut finish = match state.finish(credential_finalization, login_parameters(account)) {
        Ok(finish) => finish,
        Err(opaque_ke::errors::ProtocolError::InvalidLoginError) => {
            return Err(ProtocolError::WrongPassword {
                version: ticket.version,
                charge: ticket.charge,
                guesses_remaining: ticket.guesses_remaining,
            });
        }
        Err(_) => return Err(ProtocolError::Internal("login finish")),
    };
    let session_key = SessionKey::take_from(finish.session_key.as_mut_slice())
        .map_err(|_| ProtocolError::Internal("session key length"))?;
    let transported_key =
        protocol::seal_for_transport(&session_key, account, ticket.version, &ticket.sealed_key)
            .map_err(|_| ProtocolError::Internal("transport seal"))?;
    Ok(LoginFinished {
        version: ticket.version,
        charge: ticket.charge,
        guesses_remaining: ticket.guesses_remaining,
        transported_key,
    })
}

/// The context and identifiers of every bkv login (see [`crate::protocol`]).
fn login_parameters(account: &AccountId) -> ServerLoginParameters<'_, '_> {
    ServerLoginParameters {
        context: Some(CONTEXT),
        identifiers: protocol::identifiers(account),
    }
}
