//! The fuzz targets on bkv-core's parsers as bounded property tests, so `make test` catches
//! regressions without a fuzzer: each check (`fuzz/checks/core.rs`, and `fuzz/checks/oprf.rs`
//! for the threshold OPRF's parsers: the very code the cargo-fuzz targets run) gets random
//! bytes and mutations of the committed seeds (`fuzz/corpus/<target>/`), and the seeds
//! themselves are held to their names.
//!
//! `cargo test -p bkv-core --test fuzz_props -- --ignored write_seeds` rewrites the seeds.

#[path = "../../../fuzz/checks/core.rs"]
mod checks;
#[path = "../../../fuzz/checks/oprf.rs"]
mod oprf_checks;
#[path = "../../../fuzz/checks/props.rs"]
mod props;

use argon2::{Algorithm, Argon2, Params, Version};
use bkv_core::fixtures;
use bkv_core::opaque::{self, Suite};
use bkv_core::oprf::{
    Blind, BlindedElement, Commitment, DleqProof, EvaluatedElement, OprfKey, P256PublicKey,
    ResetKey, ResetPublicKey, ShareCiphertext, ShareContext, SoftwareShareKey, encrypt_share,
    evaluate_share, oprf_input, split,
};
use bkv_core::protocol::{ExportKey, MIN_SEALED_KEY_LEN, SEALED_BACKUP_KEY_LEN};
use bkv_core::record::RecordPlain;
use bkv_core::ticket::TicketPlain;
use bkv_core::token::{self, Claims};
use bkv_core::{
    AccountId, AttemptId, ChargeNumber, Command, GuessLimit, RecordVersion, Request, RequestId,
    ShareHolder, ShareMap, StateDecodeError, VaultState,
};
use ed25519_dalek::Signer as _;
use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ClientRegistration,
    ClientRegistrationFinishParameters, ServerLogin, ServerLoginParameters, ServerRegistration,
    ServerSetup,
};
use props::{CASES, check_seeds, mutated, random, write_seed};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::{OsRng, StdRng};

/// A fuzz target as the tests see it: its corpus name, its check, and whether its parser
/// accepts an input (what the seed names are held to).
type Target = (&'static str, fn(&[u8]), fn(&[u8]) -> bool);

/// Each target: its corpus name, its check, and what the parser accepts.
const TARGETS: &[Target] = &[
    ("registration_request", checks::registration_request, |b| {
        opaque::parse_registration_request(b).is_ok()
    }),
    ("registration_upload", checks::registration_upload, |b| {
        opaque::parse_registration_upload(b).is_ok()
    }),
    ("credential_request", checks::credential_request, |b| {
        opaque::parse_credential_request(b).is_ok()
    }),
    (
        "credential_finalization",
        checks::credential_finalization,
        |b| opaque::parse_credential_finalization(b).is_ok(),
    ),
    ("sealed_key", checks::sealed_key, |b| {
        opaque::parse_sealed_key(b.to_vec()).is_ok()
    }),
    ("ticket", checks::ticket, |b| TicketPlain::decode(b).is_ok()),
    ("record", checks::record, |b| RecordPlain::decode(b).is_ok()),
    ("vault_state", checks::vault_state, |b| {
        VaultState::decode(b).is_ok()
    }),
    ("token_text", checks::token_text, |b| {
        checks::token_issuers()
            .verify(
                &String::from_utf8_lossy(b),
                checks::TOKEN_AUDIENCE,
                checks::TOKEN_NOW,
            )
            .is_ok()
    }),
    ("token_structured", checks::token_structured, |b| {
        checks::TokenCase::from_script(b).acceptable()
    }),
    ("share_map", share_map_check, checks::share_map),
];

fn share_map_check(b: &[u8]) {
    checks::share_map(b);
}

/// The threshold OPRF's targets (protocol v2), checked by `fuzz/checks/oprf.rs`.
const OPRF_TARGETS: &[Target] = &[
    ("oprf_element", oprf_checks::oprf_element, |b| {
        Commitment::parse(b).is_ok()
    }),
    ("dleq_proof", oprf_checks::dleq_proof, |b| {
        DleqProof::parse(b).is_ok()
    }),
    ("share_ciphertext", oprf_checks::share_ciphertext, |b| {
        ShareCiphertext::parse(b).is_ok()
    }),
    ("p256_public_key", oprf_checks::p256_public_key, |b| {
        P256PublicKey::parse(b).is_ok()
    }),
    ("reset_public_key", oprf_checks::reset_public_key, |b| {
        ResetPublicKey::parse(b).is_ok()
    }),
    (
        "oprf_evaluation",
        oprf_checks::oprf_evaluation,
        oprf_checks::evaluation_accepted,
    ),
    (
        "oprf_commitments",
        oprf_checks::oprf_commitments,
        oprf_checks::commitments_accepted,
    ),
];

#[test]
fn committed_seeds_match_their_names() {
    for (target, check, accepts) in TARGETS.iter().chain(OPRF_TARGETS) {
        check_seeds(target, *check, accepts);
    }
}

/// The invalid state seeds of protocol v2 are refused for the rule they break, not for
/// something else a format change could have broken first.
#[test]
fn v2_state_seeds_break_their_rule() {
    let seed = |name: &str| {
        props::seeds("vault_state")
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b)
            .unwrap_or_else(|| panic!("vault_state/{name} is missing"))
    };
    assert_eq!(
        VaultState::decode(&seed("invalid-share-map-signature")),
        Err(StateDecodeError::Invalid(
            "share map not signed by the identity key"
        ))
    );
    assert_eq!(
        VaultState::decode(&seed("invalid-oprf-epoch")),
        Err(StateDecodeError::Invalid(
            "OPRF record out of step with the share map"
        ))
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn opaque_messages_random(which in 0..5usize, bytes in random(300)) {
        (TARGETS[which].1)(&bytes);
    }

    #[test]
    fn opaque_messages_mutated(
        (which, bytes) in (0..5usize).prop_flat_map(|w| (Just(w), mutated(TARGETS[w].0))),
    ) {
        (TARGETS[which].1)(&bytes);
    }

    #[test]
    fn ticket_random(bytes in random(600)) {
        checks::ticket(&bytes);
    }

    #[test]
    fn ticket_mutated(bytes in mutated("ticket")) {
        checks::ticket(&bytes);
    }

    #[test]
    fn record_random(bytes in random(600)) {
        checks::record(&bytes);
    }

    #[test]
    fn record_mutated(bytes in mutated("record")) {
        checks::record(&bytes);
    }

    #[test]
    fn vault_state_random(bytes in random(400)) {
        checks::vault_state(&bytes);
    }

    #[test]
    fn vault_state_mutated(bytes in mutated("vault_state")) {
        checks::vault_state(&bytes);
    }

    #[test]
    fn token_text_random(bytes in random(600)) {
        checks::token_text(&bytes);
    }

    #[test]
    fn token_text_mutated(bytes in mutated("token_text")) {
        checks::token_text(&bytes);
    }

    #[test]
    fn token_structured_random(bytes in random(64)) {
        checks::token_structured(&bytes);
    }

    #[test]
    fn token_structured_mutated(bytes in mutated("token_structured")) {
        checks::token_structured(&bytes);
    }

    #[test]
    fn share_map_random(mode in 0..checks::SHARE_MAP_MODES, bytes in random(400)) {
        checks::share_map(&[&[mode][..], &bytes].concat());
    }

    #[test]
    fn share_map_mutated(bytes in mutated("share_map")) {
        checks::share_map(&bytes);
    }

    #[test]
    fn oprf_parsers_random(which in 0..OPRF_TARGETS.len(), bytes in random(200)) {
        (OPRF_TARGETS[which].1)(&bytes);
    }

    #[test]
    fn oprf_parsers_mutated(
        (which, bytes) in (0..OPRF_TARGETS.len())
            .prop_flat_map(|w| (Just(w), mutated(OPRF_TARGETS[w].0))),
    ) {
        (OPRF_TARGETS[which].1)(&bytes);
    }

    /// Random elements at exactly the right length: about one in eight is a valid encoding.
    #[test]
    fn oprf_element_random_32(bytes in proptest::collection::vec(any::<u8>(), 32)) {
        oprf_checks::oprf_element(&bytes);
    }
}

/// Insecure Argon2id parameters: the seeds need valid messages, not a strong KSF.
fn light_ksf() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(8, 1, 1, None).expect("valid params"),
    )
}

/// Rewrites the seed corpora of bkv-core's targets from real protocol runs.
#[test]
#[ignore = "writes fuzz/corpus; run by `make fuzz-seeds`"]
fn write_seeds() {
    let rng = &mut OsRng;
    let account = AccountId::parse("alice").expect("valid");
    let ksf = light_ksf();
    let ids = bkv_core::protocol::identifiers(&account);

    // One real registration and login, with opaque-ke's client and server.
    let setup = ServerSetup::<Suite>::new(rng);
    let reg = ClientRegistration::<Suite>::start(rng, b"pw").expect("reg start");
    let reg_req = reg.message.serialize().to_vec();
    let reg_resp = ServerRegistration::<Suite>::start(&setup, reg.message, account.as_bytes())
        .expect("server reg start");
    let reg_done = reg
        .state
        .finish(
            rng,
            b"pw",
            reg_resp.message,
            ClientRegistrationFinishParameters::new(ids, Some(&ksf)),
        )
        .expect("reg finish");
    let upload = reg_done.message.serialize().to_vec();
    let password_file = ServerRegistration::<Suite>::finish(reg_done.message);
    let login = ClientLogin::<Suite>::start(rng, b"pw").expect("login start");
    let cred_req = login.message.serialize().to_vec();
    let server_login = ServerLogin::start(
        rng,
        &setup,
        Some(password_file),
        login.message,
        account.as_bytes(),
        ServerLoginParameters {
            context: Some(bkv_core::protocol::CONTEXT),
            identifiers: ids,
        },
    )
    .expect("server login start");
    let login_state = server_login.state.serialize().to_vec();
    let done = login
        .state
        .finish(
            rng,
            b"pw",
            server_login.message,
            ClientLoginFinishParameters::new(Some(bkv_core::protocol::CONTEXT), ids, Some(&ksf)),
        )
        .expect("login finish");
    let finalization = done.message.serialize().to_vec();

    for (target, good) in [
        ("registration_request", &reg_req),
        ("registration_upload", &upload),
        ("credential_request", &cred_req),
        ("credential_finalization", &finalization),
    ] {
        write_seed(target, "valid-1", good);
        write_seed(target, "invalid-short", &good[..good.len() - 1]);
        let mut long = good.clone();
        long.push(0);
        write_seed(target, "invalid-long", &long);
        // A finalization is a MAC: any 64 bytes parse (and fail verification later).
        let ones = if target == "credential_finalization" {
            "valid-ones"
        } else {
            "invalid-ones"
        };
        write_seed(target, ones, &vec![0xff; good.len()]);
    }

    write_seed("sealed_key", "valid-min", &[7; MIN_SEALED_KEY_LEN]);
    write_seed(
        "sealed_key",
        "valid-backup-key",
        &[8; SEALED_BACKUP_KEY_LEN],
    );
    write_seed("sealed_key", "invalid-short", &[7; MIN_SEALED_KEY_LEN - 1]);

    // Tickets and records, in the documented plaintext layouts.
    let sealed_key = vec![0x5a; SEALED_BACKUP_KEY_LEN];
    let ticket = plain_ticket(&account, &login_state, &sealed_key, 10);
    TicketPlain::decode(&ticket).expect("the layout written here is the ticket format");
    write_seed("ticket", "valid-1", &ticket);
    write_seed(
        "ticket",
        "invalid-limit-0",
        &plain_ticket(&account, &login_state, &sealed_key, 0),
    );
    write_seed("ticket", "invalid-truncated", &ticket[..ticket.len() - 3]);
    let record = plain_record(&upload, &sealed_key, 10);
    write_seed("record", "valid-1", &record);
    write_seed(
        "record",
        "invalid-limit-1001",
        &plain_record(&upload, &sealed_key, 1001),
    );
    write_seed(
        "record",
        "invalid-version-2",
        &[&[2u8][..], &record[1..]].concat(),
    );

    let state = sample_state();
    write_seed(
        "vault_state",
        "valid-empty",
        &VaultState::default().encode(),
    );
    write_seed("vault_state", "valid-accounts", &state.encode());
    write_seed(
        "vault_state",
        "valid-five-holders",
        &five_holder_state().encode(),
    );
    let mut trailing = state.encode();
    trailing.push(0);
    write_seed("vault_state", "invalid-trailing", &trailing);
    // The v2 invariants the decoder checks: the map in force is signed by the identity key,
    // and every record follows a map that was in force.
    let mut bad_signature = state.encode();
    let signature = fixtures::share_map(1, 3).signature;
    let at = find(&bad_signature, &signature).expect("the map's signature is in the state");
    bad_signature[at] ^= 1;
    write_seed("vault_state", "invalid-share-map-signature", &bad_signature);
    let mut future_epoch = state.encode();
    // An OPRF record's encoding starts `map_epoch (1) || threshold (2) || 3 shares ||
    // node id 1 || commitment [1; 32]`: make its epoch 5, above the map in force.
    let record = [&[1u8, 2, 3, 1][..], &[1; 32]].concat();
    let at = find(&future_epoch, &record).expect("an OPRF record is in the state");
    future_epoch[at] = 5;
    write_seed("vault_state", "invalid-oprf-epoch", &future_epoch);

    share_map_seeds();
    oprf_seeds();

    let key = checks::token_key(1);
    let claims = Claims {
        iss: checks::TOKEN_ISSUER.into(),
        sub: "alice".into(),
        aud: checks::TOKEN_AUDIENCE.into(),
        iat: checks::TOKEN_NOW,
        exp: checks::TOKEN_NOW + 600,
        nbf: None,
    };
    let good = token::issue(&key, &claims);
    write_seed("token_text", "valid-1", good.as_bytes());
    write_seed(
        "token_text",
        "invalid-other-key",
        token::issue(&checks::token_key(2), &claims).as_bytes(),
    );
    let parts: Vec<&str> = good.split('.').collect();
    let none = format!("eyJhbGciOiJub25lIn0.{}.", parts[1]);
    write_seed("token_text", "invalid-alg-none", none.as_bytes());
    write_seed(
        "token_text",
        "invalid-two-parts",
        parts[..2].join(".").as_bytes(),
    );

    // Edit scripts (see `TokenCase::from_script`): op byte, then its arguments.
    write_seed("token_structured", "valid-unedited", &[]);
    write_seed("token_structured", "valid-extra-claim", &[11]);
    write_seed("token_structured", "valid-typ-lowercase", &[1, 2]);
    write_seed("token_structured", "invalid-alg-none", &[0, 1]);
    write_seed("token_structured", "invalid-other-signer", &[8, 1]);
    write_seed("token_structured", "invalid-expired", &[6, 2, 0]);
    write_seed("token_structured", "invalid-aud", &[4, 1]);
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Seeds of the `share_map` target: maps with real P-256 receiving keys, raw, signed by the
/// check's identity key (mode 1 signs itself), and with their signature (mode 2).
fn share_map_seeds() {
    let rng = &mut OsRng;
    let mut map = |epoch: u64, ids: &[u64]| ShareMap {
        cluster_name: "bkv-fuzz".into(),
        epoch,
        threshold: u16::try_from(ids.len() / 2 + 1).expect("small"),
        holders: ids
            .iter()
            .map(|&node_id| ShareHolder {
                node_id,
                receive_key: *SoftwareShareKey::generate(rng).public().as_bytes(),
            })
            .collect(),
    };
    let three = map(1, &[1, 2, 3]).encode();
    let five = map(7, &[1, 2, 4, 8, 9]).encode();
    let tagged = |mode: u8, b: &[u8]| [&[mode][..], b].concat();
    write_seed("share_map", "valid-parse-3", &tagged(0, &three));
    write_seed("share_map", "valid-signed-5", &tagged(1, &five));
    let signature = fixtures::identity().sign(&three).to_bytes();
    write_seed(
        "share_map",
        "valid-with-signature",
        &tagged(2, &[&signature[..], &three].concat()),
    );
    let mut forged = signature;
    forged[0] ^= 1;
    write_seed(
        "share_map",
        "invalid-forged-signature",
        &tagged(2, &[&forged[..], &three].concat()),
    );
    let mut threshold_3 = map(1, &[1, 2, 3]);
    threshold_3.threshold = 3;
    write_seed(
        "share_map",
        "invalid-threshold",
        &tagged(1, &threshold_3.encode()),
    );
    let mut unordered = map(1, &[1, 2, 3]);
    unordered.holders.swap(0, 1);
    write_seed(
        "share_map",
        "invalid-unordered",
        &tagged(0, &unordered.encode()),
    );
    write_seed(
        "share_map",
        "invalid-epoch-0",
        &tagged(0, &map(0, &[1]).encode()),
    );
    let mut trailing = three.clone();
    trailing.push(0);
    write_seed("share_map", "invalid-trailing", &tagged(1, &trailing));
}

/// A state whose map has five holders (epoch 2, after the map of three), with one active
/// record split over them.
fn five_holder_state() -> VaultState {
    let mut s = VaultState::default();
    let limit = |n| GuessLimit::parse_max(n).expect("in range");
    let alice = AccountId::parse("alice").expect("valid");
    let commands = [
        fixtures::bootstrap(limit(5), limit(10)),
        fixtures::set_share_map(1, 3),
        fixtures::set_share_map(2, 5),
        Command::Stage {
            account: alice.clone(),
            request_id: RequestId::new([1; 16]),
            guess_limit: limit(5),
            sealed_record: vec![0xaa; 40],
            oprf: fixtures::oprf_record(2, 5),
        },
        Command::Activate {
            account: alice,
            version: RecordVersion(4_000),
        },
    ];
    for (i, command) in commands.into_iter().enumerate() {
        let applied = s.apply(
            i as u64 + 1,
            // Proposed at `i + 1` ms: a Stage at index n makes version n * 1000.
            &Request {
                at_unix_ms: i as u64 + 1,
                command,
            },
        );
        assert!(
            !matches!(applied.outcome, bkv_core::Outcome::Rejected(_)),
            "{applied:?}"
        );
    }
    s
}

/// A ticket plaintext, byte by byte as `ticket.rs` documents it.
fn plain_ticket(account: &AccountId, login_state: &[u8], sealed_key: &[u8], limit: u32) -> Vec<u8> {
    let mut t = vec![1u8];
    push_bytes(&mut t, account.as_bytes());
    t.extend_from_slice(&7u64.to_be_bytes());
    t.extend_from_slice(&3u64.to_be_bytes());
    t.extend_from_slice(&7u32.to_be_bytes());
    t.extend_from_slice(&limit.to_be_bytes());
    t.extend_from_slice(&1_800_000_300_000u64.to_be_bytes());
    push_bytes(&mut t, login_state);
    push_bytes(&mut t, sealed_key);
    t
}

/// A record plaintext, byte by byte as `record.rs` documents it.
fn plain_record(password_file: &[u8], sealed_key: &[u8], limit: u32) -> Vec<u8> {
    let mut r = vec![1u8];
    push_bytes(&mut r, password_file);
    push_bytes(&mut r, sealed_key);
    r.extend_from_slice(&limit.to_be_bytes());
    r
}

fn push_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&u32::try_from(b.len()).expect("small").to_be_bytes());
    out.extend_from_slice(b);
}

/// A small state: two accounts, one active with a charged guess, one staged.
fn sample_state() -> VaultState {
    let mut s = VaultState::default();
    let limit = |n| GuessLimit::parse_max(n).expect("in range");
    let alice = AccountId::parse("alice").expect("valid");
    let bob = AccountId::parse("bob").expect("valid");
    let commands = [
        fixtures::bootstrap(limit(5), limit(10)),
        fixtures::set_share_map(1, 3),
        Command::Stage {
            account: alice.clone(),
            request_id: RequestId::new([1; 16]),
            guess_limit: limit(5),
            sealed_record: vec![0xaa; 40],
            oprf: fixtures::oprf_record(1, 3),
        },
        Command::Activate {
            account: alice.clone(),
            version: RecordVersion(3_000),
        },
        Command::ChargeGuess {
            account: alice.clone(),
            attempt_id: AttemptId::new([2; 16]),
            request_hash: [3; 32],
        },
        fixtures::reset(&alice, RecordVersion(3_000), ChargeNumber(1)),
        Command::Stage {
            account: bob,
            request_id: RequestId::new([4; 16]),
            guess_limit: limit(3),
            sealed_record: vec![0xbb; 40],
            oprf: fixtures::oprf_record(1, 3),
        },
    ];
    for (i, command) in commands.into_iter().enumerate() {
        s.apply(
            i as u64 + 1,
            // Proposed at `i + 1` ms: a Stage at index n makes version n * 1000.
            &Request {
                at_unix_ms: i as u64 + 1,
                command,
            },
        );
    }
    s
}

/// The P-256 generator, uncompressed: a valid share-receiving public key.
const P256_G: &str = "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296\
                      4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5";

/// Seeds of the OPRF targets, from real protocol values (a fixed RNG: rewriting them changes
/// only what the code changed).
fn oprf_seeds() {
    let rng = &mut StdRng::seed_from_u64(20);
    let account = AccountId::parse("alice").expect("valid");
    let input = oprf_input(&account, b"pw").expect("short");
    let key = OprfKey::generate(rng);
    let ids5 = [1u64, 2, 3, 4, 5];
    let shares = split(&key, &ids5, 3, rng).expect("split");
    let (_, blinded) = Blind::start(&input, rng).expect("blind");
    let (z, proof) = evaluate_share(&shares[0].0, &blinded, rng);
    let (_, other_proof) = evaluate_share(&shares[1].0, &blinded, rng);
    let commitment = shares[0].1;

    write_seed("oprf_element", "valid-commitment", commitment.as_bytes());
    write_seed("oprf_element", "valid-blinded", blinded.as_bytes());
    write_seed("oprf_element", "invalid-identity", &[0; 32]);
    let mut non_canonical = [0xff; 32];
    non_canonical[31] = 0x7f;
    write_seed("oprf_element", "invalid-non-canonical", &non_canonical);
    write_seed(
        "oprf_element",
        "invalid-short",
        &commitment.as_bytes()[..31],
    );

    let proof_bytes = proof.to_bytes();
    write_seed("dleq_proof", "valid-1", &proof_bytes);
    let mut zero_c = proof_bytes;
    zero_c[..32].fill(0);
    write_seed("dleq_proof", "invalid-zero-c", &zero_c);
    let mut big_s = proof_bytes;
    big_s[32..].fill(0xff);
    write_seed("dleq_proof", "invalid-non-canonical-s", &big_s);
    write_seed("dleq_proof", "invalid-short", &proof_bytes[..63]);

    let g = hex::decode(P256_G).expect("hex");
    let recipient = P256PublicKey::parse(&g).expect("generator");
    let context = ShareContext {
        cluster_name: "bkv-local".into(),
        account: account.clone(),
        node_id: 1,
        guess_limit: 10,
        reset_key: [7; 32],
        commitment,
    };
    let ciphertext = encrypt_share(&recipient, &shares[0].0, &context, rng);
    let ct = ciphertext.as_bytes();
    write_seed("share_ciphertext", "valid-1", ct);
    write_seed("share_ciphertext", "invalid-short", &ct[..124]);
    let mut compressed_tag = *ct;
    compressed_tag[0] = 0x02;
    write_seed(
        "share_ciphertext",
        "invalid-compressed-tag",
        &compressed_tag,
    );
    let mut off_curve = *ct;
    off_curve[64] ^= 1;
    write_seed("share_ciphertext", "invalid-off-curve", &off_curve);

    write_seed("p256_public_key", "valid-generator", &g);
    write_seed(
        "p256_public_key",
        "valid-ephemeral",
        ciphertext.ephemeral_public(),
    );
    let mut compressed = vec![0x02 | (g[64] & 1)];
    compressed.extend_from_slice(&g[1..33]);
    write_seed("p256_public_key", "invalid-compressed", &compressed);
    let mut off_curve = g.clone();
    off_curve[64] ^= 1;
    write_seed("p256_public_key", "invalid-off-curve", &off_curve);
    write_seed("p256_public_key", "invalid-identity", &[0]);

    let reset = ResetKey::derive(&ExportKey::take_from(&mut [3u8; 64]).expect("64 bytes"));
    write_seed("reset_public_key", "valid-1", &reset.public());
    let mut identity = [0u8; 32];
    identity[0] = 1;
    write_seed("reset_public_key", "invalid-identity", &identity);
    let mut order_two = [0xff; 32];
    order_two[0] = 0xec;
    order_two[31] = 0x7f;
    write_seed("reset_public_key", "invalid-order-two", &order_two);
    write_seed("reset_public_key", "invalid-short", &reset.public()[..31]);

    let evaluation = |k: &Commitment, b: &BlindedElement, z: &EvaluatedElement, p: &DleqProof| {
        [
            k.as_bytes().as_slice(),
            b.as_bytes(),
            z.as_bytes(),
            &p.to_bytes(),
        ]
        .concat()
    };
    let good = evaluation(&commitment, &blinded, &z, &proof);
    write_seed("oprf_evaluation", "valid-1", &good);
    write_seed(
        "oprf_evaluation",
        "invalid-other-proof",
        &evaluation(&commitment, &blinded, &z, &other_proof),
    );
    write_seed(
        "oprf_evaluation",
        "invalid-other-commitment",
        &evaluation(&shares[1].1, &blinded, &z, &proof),
    );
    write_seed("oprf_evaluation", "invalid-short", &good[..159]);

    let encode = |t: u8, points: &[(u64, Commitment)]| {
        let mut out = vec![t];
        for (x, k) in points {
            out.extend_from_slice(&x.to_be_bytes());
            out.extend_from_slice(k.as_bytes());
        }
        out
    };
    let points: Vec<(u64, Commitment)> = shares.iter().map(|(s, k)| (s.index(), *k)).collect();
    write_seed("oprf_commitments", "valid-3-of-5", &encode(3, &points));
    let two_of_three: Vec<(u64, Commitment)> = split(&key, &[7, 8, 1000], 2, rng)
        .expect("split")
        .iter()
        .map(|(s, k)| (s.index(), *k))
        .collect();
    write_seed(
        "oprf_commitments",
        "valid-2-of-3",
        &encode(2, &two_of_three),
    );
    let mut mixed = points.clone();
    mixed[4].1 = two_of_three[0].1;
    write_seed("oprf_commitments", "invalid-mixed", &encode(3, &mixed));
    write_seed(
        "oprf_commitments",
        "invalid-threshold-0",
        &encode(0, &points),
    );
    let mut duplicate = points.clone();
    duplicate[1].0 = 1;
    write_seed(
        "oprf_commitments",
        "invalid-duplicate",
        &encode(3, &duplicate),
    );
}
