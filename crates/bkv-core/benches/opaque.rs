//! Server-side CPU cost of bkv's OPAQUE steps (criterion).
//!
//! Sealing runs through `FakeSealer` (software AES-256-GCM), not an HSM: the `login_*`
//! figures include one fake unseal and one fake seal each, and `fake_sealer/*` measures that
//! overhead alone so it can be subtracted. Real PKCS#11 sealing costs are measured in
//! bkv-hsm. Client messages are made once in setup with an insecure light Argon2id (the
//! server never runs the KSF).
//!
//! Run: `cargo bench -p bkv-core --features test-support --bench opaque`.

use std::hint::black_box;

use argon2::{Algorithm, Argon2, Params, Version};
use bkv_core::ids::{AccountId, ChargeNumber, ClusterId, GuessLimit, RecordVersion, RequestId};
use bkv_core::opaque::testing::{FakeSealer, block_on};
use bkv_core::opaque::{
    ChargedRecord, ServerSecrets, Suite, login_finish, login_start, parse_credential_finalization,
    parse_credential_request, parse_registration_request, parse_registration_upload,
    parse_sealed_key, record_from_upload, registration_start,
};
use bkv_core::protocol::{self, BackupKey, CONTEXT, ExportKey};
use bkv_core::record::seal_record;
use bkv_core::seal::{SealPurpose, Sealer};
use criterion::{Criterion, criterion_group, criterion_main};
use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ClientRegistration,
    ClientRegistrationFinishParameters, CredentialResponse, RegistrationResponse,
};
use rand::rngs::OsRng;

const NOW: u64 = 1_700_000_000_000;
const TTL: u64 = 300_000;
const PASSWORD: &[u8] = b"benchmark password";

struct Setup {
    sealer: FakeSealer,
    secrets: ServerSecrets,
    cluster: ClusterId,
    account: AccountId,
    request_id: RequestId,
    registration_request: Vec<u8>,
    registration_upload: Vec<u8>,
    sealed_key: Vec<u8>,
    sealed_record: Vec<u8>,
    credential_request: Vec<u8>,
    ticket: Vec<u8>,
    finalization: Vec<u8>,
}

fn ksf() -> Argon2<'static> {
    // INSECURE light parameters: setup speed only; the server never runs the KSF.
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(8, 1, 1, None).expect("constant parameters are valid"),
    )
}

fn charged(s: &Setup) -> ChargedRecord {
    ChargedRecord {
        version: RecordVersion(1),
        charge: ChargeNumber(1),
        guesses_remaining: 9,
        guess_limit: GuessLimit::DEFAULT,
        request_id: s.request_id,
        sealed_record: s.sealed_record.clone(),
    }
}

fn setup() -> Setup {
    let sealer = FakeSealer::new();
    let secrets = ServerSecrets::generate(&mut OsRng);
    let cluster = ClusterId::new([1; 16]);
    let account = AccountId::parse("bench@example.com").expect("valid account");
    let request_id = RequestId::new([2; 16]);
    let ksf = ksf();

    let reg = ClientRegistration::<Suite>::start(&mut OsRng, PASSWORD).expect("start");
    let registration_request = reg.message.serialize().to_vec();
    let response = registration_start(
        &secrets,
        &account,
        parse_registration_request(&registration_request).expect("parse"),
    )
    .expect("registration start");
    let mut fin = reg
        .state
        .finish(
            &mut OsRng,
            PASSWORD,
            RegistrationResponse::deserialize(&response).expect("response"),
            ClientRegistrationFinishParameters::new(protocol::identifiers(&account), Some(&ksf)),
        )
        .expect("registration finish");
    let export_key = ExportKey::take_from(fin.export_key.as_mut_slice()).expect("export key");
    let sealed_key = protocol::seal_backup_key(&export_key, &account, &BackupKey::generate())
        .expect("seal K")
        .into_bytes();
    let registration_upload = fin.message.serialize().to_vec();
    let record = record_from_upload(
        parse_registration_upload(&registration_upload).expect("upload"),
        parse_sealed_key(sealed_key.clone()).expect("sealed key"),
        GuessLimit::DEFAULT,
    );
    let sealed_record = block_on(seal_record(
        &sealer,
        &cluster,
        &account,
        &request_id,
        &record,
    ))
    .expect("ready")
    .expect("seal record");

    let login = ClientLogin::<Suite>::start(&mut OsRng, PASSWORD).expect("login start");
    let credential_request = login.message.serialize().to_vec();
    let mut s = Setup {
        sealer,
        secrets,
        cluster,
        account,
        request_id,
        registration_request,
        registration_upload,
        sealed_key,
        sealed_record,
        credential_request,
        ticket: Vec::new(),
        finalization: Vec::new(),
    };
    let started = block_on(login_start(
        &s.sealer,
        &s.secrets,
        &s.cluster,
        &s.account,
        charged(&s),
        parse_credential_request(&s.credential_request).expect("request"),
        NOW,
        TTL,
    ))
    .expect("ready")
    .expect("login start");
    let client = login
        .state
        .finish(
            &mut OsRng,
            PASSWORD,
            CredentialResponse::deserialize(&started.credential_response).expect("response"),
            ClientLoginFinishParameters::new(
                Some(CONTEXT),
                protocol::identifiers(&s.account),
                Some(&ksf),
            ),
        )
        .expect("client login finish");
    s.ticket = started.ticket;
    s.finalization = client.message.serialize().to_vec();
    s
}

fn bench(c: &mut Criterion) {
    let s = setup();
    let mut g = c.benchmark_group("opaque_server");

    g.bench_function("registration_start", |b| {
        b.iter(|| {
            let request = parse_registration_request(black_box(&s.registration_request));
            registration_start(&s.secrets, &s.account, request.expect("valid"))
        })
    });

    g.bench_function("registration_finish/record_from_upload", |b| {
        b.iter(|| {
            let upload = parse_registration_upload(black_box(&s.registration_upload));
            let sealed_key = parse_sealed_key(s.sealed_key.clone());
            let record = record_from_upload(
                upload.expect("valid"),
                sealed_key.expect("valid"),
                GuessLimit::DEFAULT,
            );
            record.encode()
        })
    });

    g.bench_function("login_start/with_fake_sealer", |b| {
        b.iter(|| {
            let request = parse_credential_request(black_box(&s.credential_request));
            block_on(login_start(
                &s.sealer,
                &s.secrets,
                &s.cluster,
                &s.account,
                charged(&s),
                request.expect("valid"),
                NOW,
                TTL,
            ))
        })
    });

    g.bench_function("login_finish/with_fake_sealer", |b| {
        b.iter(|| {
            let finalization = parse_credential_finalization(black_box(&s.finalization));
            block_on(login_finish(
                &s.sealer,
                &s.cluster,
                &s.account,
                &s.ticket,
                finalization.expect("valid"),
                NOW + 1,
            ))
        })
    });

    // The overhead included above: one fake seal and one fake unseal of a ticket-sized blob.
    let plain = vec![0u8; 320];
    g.bench_function("fake_sealer/seal_and_unseal_320B", |b| {
        b.iter(|| {
            block_on(async {
                let blob = s.sealer.seal(SealPurpose::Test, b"aad", &plain).await?;
                s.sealer.unseal(SealPurpose::Test, b"aad", &blob).await
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
