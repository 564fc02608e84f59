//! Tests of the OPAQUE server, driven by opaque-ke's client with bkv's suite and a light
//! Argon2id, over the software [`FakeSealer`].

use argon2::{Algorithm, Argon2, Params, Version};
use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ClientLoginFinishResult, ClientRegistration,
    ClientRegistrationFinishParameters, CredentialFinalization,
};
use proptest::prelude::*;
use rand::rngs::OsRng;

use super::testing::{FakeSealer, block_on};
use super::*;
use crate::ids::{AccountId, ChargeNumber, ClusterId, GuessLimit, RecordVersion, RequestId};
use crate::protocol::{
    self, BackupKey, CONTEXT, ExportKey, MAX_SEALED_KEY_LEN, MAX_TICKET_LEN, SessionKey,
};
use crate::record::{RecordPlain, seal_record, unseal_record};
use crate::seal::SealError;
use crate::ticket::TicketPlain;

const NOW: u64 = 1_700_000_000_000;
const TTL: u64 = 300_000;

/// Insecure Argon2id parameters, to keep the tests fast.
fn light_ksf() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(8, 1, 1, None).unwrap(),
    )
}

struct World {
    sealer: FakeSealer,
    secrets: ServerSecrets,
    cluster: ClusterId,
    account: AccountId,
    request_id: RequestId,
}

impl World {
    fn new() -> Self {
        Self {
            sealer: FakeSealer::new(),
            secrets: ServerSecrets::generate(&mut OsRng),
            cluster: ClusterId::new([1; 16]),
            account: AccountId::parse("alice@example.com").unwrap(),
            request_id: RequestId::new([2; 16]),
        }
    }

    /// Client + server registration; returns the sealed record and K.
    fn register(&self, password: &[u8]) -> (Vec<u8>, BackupKey) {
        let ksf = light_ksf();
        let start = ClientRegistration::<Suite>::start(&mut OsRng, password).unwrap();
        let request = parse_registration_request(start.message.serialize().as_slice()).unwrap();
        let response = registration_start(&self.secrets, &self.account, request).unwrap();
        let finish = start
            .state
            .finish(
                &mut OsRng,
                password,
                opaque_ke::RegistrationResponse::deserialize(&response).unwrap(),
                ClientRegistrationFinishParameters::new(
                    protocol::identifiers(&self.account),
                    Some(&ksf),
                ),
            )
            .unwrap();
        let mut export = finish.export_key;
        let export_key = ExportKey::take_from(export.as_mut_slice()).unwrap();
        let k = BackupKey::generate();
        let sealed_key = protocol::seal_backup_key(&export_key, &self.account, &k).unwrap();
        let upload = parse_registration_upload(finish.message.serialize().as_slice()).unwrap();
        let sealed_key = parse_sealed_key(sealed_key.into_bytes()).unwrap();
        let record = record_from_upload(upload, sealed_key, GuessLimit::DEFAULT);
        let sealed = block_on(seal_record(
            &self.sealer,
            &self.cluster,
            &self.account,
            &self.request_id,
            &record,
        ))
        .unwrap()
        .unwrap();
        (sealed, k)
    }

    fn charged(&self, sealed_record: &[u8], charge: u64, remaining: u32) -> ChargedRecord {
        ChargedRecord {
            version: RecordVersion(7),
            charge: ChargeNumber(charge),
            guesses_remaining: remaining,
            guess_limit: GuessLimit::DEFAULT,
            request_id: self.request_id,
            sealed_record: sealed_record.to_vec(),
        }
    }

    /// Client login start + server login start.
    fn login_start(
        &self,
        sealed_record: &[u8],
        password: &[u8],
    ) -> (ClientLogin<Suite>, LoginStarted) {
        let start = ClientLogin::<Suite>::start(&mut OsRng, password).unwrap();
        let request = parse_credential_request(start.message.serialize().as_slice()).unwrap();
        let started = block_on(login_start(
            &self.sealer,
            &self.secrets,
            &self.cluster,
            &self.account,
            self.charged(sealed_record, 3, 7),
            request,
            NOW,
            TTL,
        ))
        .unwrap()
        .unwrap();
        (start.state, started)
    }

    fn client_finish(
        &self,
        state: ClientLogin<Suite>,
        password: &[u8],
        response: &[u8],
    ) -> Result<ClientLoginFinishResult<Suite>, opaque_ke::errors::ProtocolError> {
        let ksf = light_ksf();
        state.finish(
            &mut OsRng,
            password,
            opaque_ke::CredentialResponse::deserialize(response).unwrap(),
            ClientLoginFinishParameters::new(
                Some(CONTEXT),
                protocol::identifiers(&self.account),
                Some(&ksf),
            ),
        )
    }

    fn finish(
        &self,
        ticket: &[u8],
        finalization: &[u8],
        now: u64,
    ) -> Result<LoginFinished, ProtocolError> {
        self.finish_as(&self.account, ticket, finalization, now)
    }

    fn finish_as(
        &self,
        account: &AccountId,
        ticket: &[u8],
        finalization: &[u8],
        now: u64,
    ) -> Result<LoginFinished, ProtocolError> {
        let finalization = parse_credential_finalization(finalization)?;
        block_on(login_finish(
            &self.sealer,
            &self.cluster,
            account,
            ticket,
            finalization,
            now,
        ))
        .unwrap()
    }
}

#[test]
fn register_then_recover_releases_the_registered_key() {
    let w = World::new();
    // Phase 1: registration.
    let (sealed_record, k) = w.register(b"correct horse");
    // Phase 2: login start (after the charge).
    let (state, started) = w.login_start(&sealed_record, b"correct horse");
    // Phase 3: the client finishes OPAQUE and sends its finalization.
    let mut result = w
        .client_finish(state, b"correct horse", &started.credential_response)
        .unwrap();
    let finalization = result.message.serialize().to_vec();
    let finished = w.finish(&started.ticket, &finalization, NOW + 1).unwrap();
    assert_eq!(finished.version, RecordVersion(7));
    assert_eq!(finished.charge, ChargeNumber(3));
    assert_eq!(finished.guesses_remaining, 7);
    // Phase 4: the client opens the transported key, then the sealed key.
    let session_key = SessionKey::take_from(result.session_key.as_mut_slice()).unwrap();
    let export_key = ExportKey::take_from(result.export_key.as_mut_slice()).unwrap();
    let sealed_key = protocol::open_transported(
        &session_key,
        &w.account,
        finished.version,
        &finished.transported_key,
    )
    .unwrap();
    let recovered =
        protocol::open_backup_key(&export_key, &w.account, sealed_key.as_bytes()).unwrap();
    assert_eq!(recovered, k);
}

#[test]
fn wrong_password_fails_on_the_client_and_a_forged_finalization_on_the_server() {
    let w = World::new();
    let (sealed_record, _k) = w.register(b"right");
    let (state, started) = w.login_start(&sealed_record, b"wrong");
    let client = w.client_finish(state, b"wrong", &started.credential_response);
    assert!(matches!(
        client,
        Err(opaque_ke::errors::ProtocolError::InvalidLoginError)
    ));
    // A client that sends something anyway: any 64 bytes are a well-formed finalization.
    for forged in [[0u8; 64], [0xa5; 64]] {
        assert_eq!(
            w.finish(&started.ticket, &forged, NOW + 1),
            Err(ProtocolError::WrongPassword {
                version: RecordVersion(7),
                charge: ChargeNumber(3),
                guesses_remaining: 7,
            })
        );
    }
}

#[test]
fn a_finalization_of_another_login_does_not_verify() {
    let w = World::new();
    let (sealed_record, _k) = w.register(b"pw");
    let (state_a, started_a) = w.login_start(&sealed_record, b"pw");
    let (_state_b, started_b) = w.login_start(&sealed_record, b"pw");
    let result_a = w
        .client_finish(state_a, b"pw", &started_a.credential_response)
        .unwrap();
    let fin_a = result_a.message.serialize().to_vec();
    assert!(w.finish(&started_a.ticket, &fin_a, NOW).is_ok());
    assert!(matches!(
        w.finish(&started_b.ticket, &fin_a, NOW),
        Err(ProtocolError::WrongPassword { .. })
    ));
}

#[test]
fn tickets_are_checked_before_the_finalization() {
    let w = World::new();
    let (sealed_record, _k) = w.register(b"pw");
    let (state, started) = w.login_start(&sealed_record, b"pw");
    let result = w
        .client_finish(state, b"pw", &started.credential_response)
        .unwrap();
    let fin = result.message.serialize().to_vec();

    // Expired: at the expiry instant and after.
    assert_eq!(
        w.finish(&started.ticket, &fin, NOW + TTL),
        Err(ProtocolError::TicketExpired)
    );
    assert_eq!(
        w.finish(&started.ticket, &fin, u64::MAX),
        Err(ProtocolError::TicketExpired)
    );
    // Tampered anywhere.
    for i in [0, 1, 5, started.ticket.len() / 2, started.ticket.len() - 1] {
        let mut t = started.ticket.clone();
        t[i] ^= 0x40;
        assert!(
            matches!(w.finish(&t, &fin, NOW), Err(ProtocolError::Seal(_))),
            "byte {i}"
        );
    }
    // Truncated and empty.
    assert!(matches!(
        w.finish(&started.ticket[..20], &fin, NOW),
        Err(ProtocolError::Seal(_))
    ));
    assert!(matches!(
        w.finish(&[], &fin, NOW),
        Err(ProtocolError::Seal(SealError::Malformed(_)))
    ));
    // Oversized: refused before the sealer sees it.
    assert_eq!(
        w.finish(&vec![0u8; MAX_TICKET_LEN + 1], &fin, NOW),
        Err(ProtocolError::TooLarge {
            field: "ticket",
            max: MAX_TICKET_LEN
        })
    );
    // Another account: the AAD differs.
    let mallory = AccountId::parse("mallory").unwrap();
    assert_eq!(
        w.finish_as(&mallory, &started.ticket, &fin, NOW),
        Err(ProtocolError::Seal(SealError::Rejected))
    );
    // Replays give the same answer every time; the state machine decides what they are worth.
    let first = w.finish(&started.ticket, &fin, NOW).unwrap();
    let second = w.finish(&started.ticket, &fin, NOW + 1).unwrap();
    assert_eq!(
        (first.version, first.charge, first.guesses_remaining),
        (second.version, second.charge, second.guesses_remaining)
    );
    assert_eq!(first.transported_key.len(), second.transported_key.len());
}

#[test]
fn a_ticket_does_not_open_as_another_purpose_or_cluster() {
    let w = World::new();
    let (sealed_record, _k) = w.register(b"pw");
    let (_state, started) = w.login_start(&sealed_record, b"pw");
    // The ticket blob presented as a record.
    let as_record = block_on(unseal_record(
        &w.sealer,
        &w.cluster,
        &w.account,
        &w.request_id,
        &started.ticket,
    ))
    .unwrap();
    assert!(matches!(
        as_record,
        Err(ProtocolError::Seal(SealError::WrongPurpose))
    ));
    let other_cluster = block_on(TicketPlain::unseal(
        &w.sealer,
        &ClusterId::new([9; 16]),
        &w.account,
        &started.ticket,
    ))
    .unwrap();
    assert_eq!(other_cluster, Err(ProtocolError::Seal(SealError::Rejected)));
}

#[test]
fn a_record_opens_only_under_its_request_id() {
    let w = World::new();
    let (sealed_record, _k) = w.register(b"pw");
    let plain = block_on(unseal_record(
        &w.sealer,
        &w.cluster,
        &w.account,
        &w.request_id,
        &sealed_record,
    ))
    .unwrap()
    .unwrap();
    assert_eq!(plain.guess_limit, GuessLimit::DEFAULT);
    assert_eq!(
        format!("{:?}", plain.password_file),
        "PasswordFile(<redacted>)"
    );
    let decoded = RecordPlain::decode(&plain.encode()).unwrap();
    assert_eq!(decoded.sealed_key, plain.sealed_key);
    assert_eq!(
        decoded.password_file.to_bytes(),
        plain.password_file.to_bytes()
    );
    let other = block_on(unseal_record(
        &w.sealer,
        &w.cluster,
        &w.account,
        &RequestId::new([3; 16]),
        &sealed_record,
    ))
    .unwrap();
    assert_eq!(other.err(), Some(ProtocolError::Seal(SealError::Rejected)));
    // login_start with a charge that names another request id fails without a response.
    let mut charged = w.charged(&sealed_record, 1, 9);
    charged.request_id = RequestId::new([3; 16]);
    let start = ClientLogin::<Suite>::start(&mut OsRng, b"pw").unwrap();
    let res = block_on(login_start(
        &w.sealer,
        &w.secrets,
        &w.cluster,
        &w.account,
        charged,
        start.message,
        NOW,
        TTL,
    ))
    .unwrap();
    assert_eq!(res, Err(ProtocolError::Seal(SealError::Rejected)));
}

#[test]
fn server_secrets_round_trip_sealed_and_stay_redacted() {
    let w = World::new();
    let bytes = w.secrets.to_bytes();
    let back = ServerSecrets::from_bytes(&bytes).unwrap();
    assert_eq!(back.to_bytes(), bytes);
    assert_eq!(format!("{back:?}"), "ServerSecrets(<redacted>)");
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert!(ServerSecrets::from_bytes(&longer).is_err());
    assert!(ServerSecrets::from_bytes(&bytes[..bytes.len() - 1]).is_err());

    let sealed = block_on(w.secrets.seal(&w.sealer, &w.cluster))
        .unwrap()
        .unwrap();
    assert!(
        !sealed
            .windows(32)
            .any(|win| bytes.windows(32).any(|b| b == win))
    );
    let unsealed = block_on(ServerSecrets::unseal(&w.sealer, &w.cluster, &sealed))
        .unwrap()
        .unwrap();
    assert_eq!(unsealed.to_bytes(), bytes);
    let other = block_on(ServerSecrets::unseal(
        &w.sealer,
        &ClusterId::new([5; 16]),
        &sealed,
    ))
    .unwrap();
    assert_eq!(other.err(), Some(ProtocolError::Seal(SealError::Rejected)));
}

#[test]
fn registration_responses_depend_on_the_account() {
    let w = World::new();
    let start = ClientRegistration::<Suite>::start(&mut OsRng, b"pw").unwrap();
    let bytes = start.message.serialize().to_vec();
    let a = registration_start(
        &w.secrets,
        &w.account,
        parse_registration_request(&bytes).unwrap(),
    )
    .unwrap();
    let a2 = registration_start(
        &w.secrets,
        &w.account,
        parse_registration_request(&bytes).unwrap(),
    )
    .unwrap();
    let b = registration_start(
        &w.secrets,
        &AccountId::parse("bob").unwrap(),
        parse_registration_request(&bytes).unwrap(),
    )
    .unwrap();
    assert_eq!(a.len(), protocol::REGISTRATION_RESPONSE_LEN);
    assert_eq!(a, a2, "stateless and deterministic per account");
    assert_ne!(a, b);
}

#[test]
fn oversized_or_short_sealed_keys_are_refused() {
    assert_eq!(
        parse_sealed_key(vec![0; MAX_SEALED_KEY_LEN + 1]).err(),
        Some(ProtocolError::TooLarge {
            field: "sealed_key",
            max: MAX_SEALED_KEY_LEN
        })
    );
    assert_eq!(
        parse_sealed_key(vec![0; 3]).err(),
        Some(ProtocolError::Malformed {
            field: "sealed_key",
            reason: "too_short"
        })
    );
    assert!(parse_sealed_key(vec![0; MAX_SEALED_KEY_LEN]).is_ok());
}

#[test]
fn valid_messages_parse_and_their_edits_are_typed_errors() {
    let reg = ClientRegistration::<Suite>::start(&mut OsRng, b"pw").unwrap();
    let login = ClientLogin::<Suite>::start(&mut OsRng, b"pw").unwrap();
    type Parse = fn(&[u8]) -> Result<(), ProtocolError>;
    let cases: [(&str, Vec<u8>, Parse); 2] = [
        (
            "registration_request",
            reg.message.serialize().to_vec(),
            |b| parse_registration_request(b).map(drop),
        ),
        (
            "credential_request",
            login.message.serialize().to_vec(),
            |b| parse_credential_request(b).map(drop),
        ),
    ];
    for (field, bytes, parse) in cases {
        check_exact_length(field, &bytes, parse);
        // The identity point is not a valid blinded element.
        let mut zeroed = bytes.clone();
        zeroed[..32].fill(0);
        assert_eq!(
            parse(&zeroed),
            Err(ProtocolError::Malformed {
                field,
                reason: "invalid_encoding"
            })
        );
        // A non-canonical ristretto encoding (all 0xff) is refused too.
        let mut noncanonical = bytes.clone();
        noncanonical[..32].fill(0xff);
        assert!(matches!(
            parse(&noncanonical),
            Err(ProtocolError::Malformed { field: f, .. }) if f == field
        ));
    }
    // A real upload, and a real finalization.
    let w = World::new();
    let start = ClientRegistration::<Suite>::start(&mut OsRng, b"pw").unwrap();
    let response = registration_start(&w.secrets, &w.account, start.message).unwrap();
    let ksf = light_ksf();
    let finish = start
        .state
        .finish(
            &mut OsRng,
            b"pw",
            opaque_ke::RegistrationResponse::deserialize(&response).unwrap(),
            ClientRegistrationFinishParameters::new(protocol::identifiers(&w.account), Some(&ksf)),
        )
        .unwrap();
    let upload = finish.message.serialize().to_vec();
    check_exact_length("registration_upload", &upload, |b| {
        parse_registration_upload(b).map(drop)
    });
    let (sealed_record, _k) = w.register(b"pw");
    let (state, started) = w.login_start(&sealed_record, b"pw");
    let fin = w
        .client_finish(state, b"pw", &started.credential_response)
        .unwrap()
        .message
        .serialize()
        .to_vec();
    check_exact_length("credential_finalization", &fin, |b| {
        parse_credential_finalization(b).map(drop)
    });
    // Any 64 bytes are a CredentialFinalization (a MAC); the length is what is checked.
    assert!(parse_credential_finalization(&[0; 64]).is_ok());
    assert!(matches!(
        parse_credential_finalization(&[0; 65]),
        Err(ProtocolError::TooLarge {
            field: "credential_finalization",
            max: 64
        })
    ));
}

/// A valid message parses; one byte more is `TooLarge`, any shorter prefix `wrong_length`.
fn check_exact_length(
    field: &'static str,
    bytes: &[u8],
    parse: fn(&[u8]) -> Result<(), ProtocolError>,
) {
    assert_eq!(parse(bytes), Ok(()), "{field}");
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert_eq!(
        parse(&longer),
        Err(ProtocolError::TooLarge {
            field,
            max: bytes.len()
        })
    );
    for n in 0..bytes.len() {
        assert_eq!(
            parse(&bytes[..n]),
            Err(ProtocolError::Malformed {
                field,
                reason: "wrong_length"
            }),
            "{field} prefix {n}"
        );
    }
}

fn check_parse<T>(
    bytes: &[u8],
    field: &'static str,
    len: usize,
    r: Result<T, ProtocolError>,
) -> Result<(), TestCaseError> {
    match r {
        Ok(_) => prop_assert_eq!(bytes.len(), len),
        Err(ProtocolError::Malformed { field: f, .. })
        | Err(ProtocolError::TooLarge { field: f, .. }) => {
            prop_assert_eq!(f, field)
        }
        Err(e) => prop_assert!(false, "unexpected error {:?}", e),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn parsers_give_typed_errors_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        check_parse(&bytes, "registration_request", protocol::REGISTRATION_REQUEST_LEN,
            parse_registration_request(&bytes))?;
        check_parse(&bytes, "registration_upload", protocol::REGISTRATION_UPLOAD_LEN,
            parse_registration_upload(&bytes))?;
        check_parse(&bytes, "credential_request", protocol::CREDENTIAL_REQUEST_LEN,
            parse_credential_request(&bytes))?;
        check_parse(&bytes, "credential_finalization", protocol::CREDENTIAL_FINALIZATION_LEN,
            parse_credential_finalization(&bytes))?;
    }

    #[test]
    fn parsers_give_typed_errors_on_exact_length_noise(
        req in proptest::collection::vec(any::<u8>(), 32),
        upload in proptest::collection::vec(any::<u8>(), 192),
        cred in proptest::collection::vec(any::<u8>(), 96),
    ) {
        check_parse(&req, "registration_request", 32, parse_registration_request(&req))?;
        check_parse(&upload, "registration_upload", 192, parse_registration_upload(&upload))?;
        check_parse(&cred, "credential_request", 96, parse_credential_request(&cred))?;
    }

    #[test]
    fn sealed_plaintext_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let record = RecordPlain::decode(&bytes);
        prop_assert!(matches!(record, Err(ProtocolError::Corrupt { what: "record", .. })), "record");
        let ticket = TicketPlain::decode(&bytes);
        prop_assert!(matches!(ticket, Err(ProtocolError::Corrupt { what: "ticket", .. })), "ticket");
        prop_assert!(ServerSecrets::from_bytes(&bytes).is_err());
    }
}

#[test]
fn decoders_refuse_every_truncation_of_a_valid_ticket() {
    let w = World::new();
    let (sealed_record, _k) = w.register(b"pw");
    let (_state, started) = w.login_start(&sealed_record, b"pw");
    let plain = block_on(TicketPlain::unseal(
        &w.sealer,
        &w.cluster,
        &w.account,
        &started.ticket,
    ))
    .unwrap()
    .unwrap();
    assert_eq!(plain.expires_at_unix_ms, NOW + TTL);
    assert!(format!("{plain:?}").contains("login_state: \"<redacted>\""));
    let bytes = plain.encode();
    assert_eq!(TicketPlain::decode(&bytes).as_ref(), Ok(&plain));
    for n in 0..bytes.len() {
        assert!(TicketPlain::decode(&bytes[..n]).is_err(), "prefix {n}");
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert!(TicketPlain::decode(&longer).is_err());
    let mut v2 = bytes.to_vec();
    v2[0] = 2;
    assert!(TicketPlain::decode(&v2).is_err());
}

#[test]
fn server_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let w = World::new();
    let start = ClientLogin::<Suite>::start(&mut OsRng, b"pw").unwrap();
    let fut = login_start(
        &w.sealer,
        &w.secrets,
        &w.cluster,
        &w.account,
        w.charged(&[], 1, 1),
        start.message,
        NOW,
        TTL,
    );
    assert_send(&fut);
    let fin = login_finish(
        &w.sealer,
        &w.cluster,
        &w.account,
        &[],
        CredentialFinalization::deserialize(&[0; 64]).unwrap(),
        NOW,
    );
    assert_send(&fin);
    // Neither future is polled: an empty sealed record would fail anyway.
    drop((fut, fin));
}
