//! Test vectors of the client formats that are not the threshold OPRF (those are in
//! `oprf-v2.json`): OPAQUE as bkv configures it, with every random input drawn made explicit;
//! the sealed key and the transported key; the share map's encoding and signature; an
//! account token. `testdata/vectors/client-v2.json` at the repository root holds them; this
//! test recomputes the file and compares it byte for byte, and a second test checks the
//! committed file through the public API only, the way a third-party client would use it.
//! `BKV_WRITE_VECTORS=1 cargo test -p bkv-core client_v2_vectors` rewrites it.
//!
//! opaque-ke takes its randomness from an RNG, not as explicit inputs: here each step gets
//! its own deterministic RNG that records what it hands out, and the test derives the
//! RFC 9807 inputs (blinds, nonces, key-share seeds) from those draws, then checks each
//! against the bytes of the messages, so a wrong reading of the draws fails here.

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signer as _, SigningKey};
use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ClientRegistration,
    ClientRegistrationFinishParameters, CredentialFinalization, CredentialRequest,
    CredentialResponse, RegistrationRequest, RegistrationResponse, RegistrationUpload, ServerLogin,
    ServerLoginParameters, ServerRegistration, ServerSetup,
};
use rand::{CryptoRng, RngCore};
use serde_json::{Value, json};
use sha2::{Digest, Sha512};

use super::key_sealing::{seal_with_nonce, transport_aad};
use super::{
    BACKUP_KEY_INFO, BackupKey, CONTEXT, ExportKey, KsfParams, SessionKey, TRANSPORT_INFO,
    identifiers, open_backup_key, open_transported,
};
use crate::ids::{AccountId, RecordVersion};
use crate::opaque::Suite;
use crate::oprf::suite::CONTEXT_OPRF;
use crate::oprf::{OprfKey, evaluate_directly, oprf_input};
use crate::share_map::{ShareHolder, ShareMap, SignedShareMap, threshold_for};
use crate::token::{self, Claims, TrustedIssuers};

const FILE: &str = "client-v2.json";
const ACCOUNT: &str = "alice@example.com";
const PASSWORD: &str = "correct horse battery staple";
const CLUSTER: &str = "bkv-test";

fn h(bytes: impl AsRef<[u8]>) -> String {
    hex::encode(bytes)
}

/// A scalar from a label, as in `oprf-v2.json`.
fn scalar_of(label: &str) -> Scalar {
    Scalar::from_bytes_mod_order_wide(&Sha512::digest(label.as_bytes()).into())
}

/// `n` bytes from a label: SHA-512(label || I2OSP(i, 4)) blocks.
fn bytes_of(label: &str, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 64);
    let mut i = 0u32;
    while out.len() < n {
        let mut hasher = Sha512::new();
        hasher.update(label.as_bytes());
        hasher.update(i.to_be_bytes());
        out.extend_from_slice(&hasher.finalize());
        i += 1;
    }
    out.truncate(n);
    out
}

/// A deterministic RNG (SHA-512 in counter mode over a label) that records every draw.
struct RecordingRng {
    label: &'static str,
    counter: u32,
    draws: Vec<Vec<u8>>,
}

impl RecordingRng {
    fn new(label: &'static str) -> Self {
        Self {
            label,
            counter: 0,
            draws: Vec::new(),
        }
    }
}

impl RngCore for RecordingRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let label = format!("{}/{}", self.label, self.counter);
        self.counter += 1;
        let bytes = bytes_of(&label, dest.len());
        dest.copy_from_slice(&bytes);
        self.draws.push(bytes);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for RecordingRng {}

/// A blind as voprf draws it: 64 bytes reduced modulo the group order.
fn blind_of(draw: &[u8]) -> Scalar {
    let wide: [u8; 64] = draw.try_into().expect("a 64-byte draw");
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// RFC 9497 HashToGroup in OPRF mode (OPAQUE's OPRF).
fn hash_to_group(input: &[u8]) -> curve25519_dalek::RistrettoPoint {
    crate::oprf::suite::hash_to_group(input, CONTEXT_OPRF)
}

/// RFC 9807 DeriveDiffieHellmanKeyPair: the public key of a 32-byte seed.
fn dh_public_of(seed: &[u8]) -> [u8; 32] {
    let sk = voprf::derive_key::<voprf::Ristretto255>(
        seed,
        b"OPAQUE-DeriveDiffieHellmanKeyPair",
        voprf::Mode::Oprf,
    )
    .expect("derive");
    (RISTRETTO_BASEPOINT_POINT * sk).compress().to_bytes()
}

fn ksf() -> KsfParams {
    KsfParams::light()
}

fn vectors() -> Value {
    let account = AccountId::parse(ACCOUNT).expect("valid");
    let ksf = ksf();
    let argon2 = ksf.argon2().expect("ksf");

    // The hardened password of oprf-v2.json's "hardened_password".
    let oprf_key =
        OprfKey::from_bytes(&scalar_of("bkv/v2 test vector: oprf key").to_bytes()).expect("key");
    let input = oprf_input(&account, PASSWORD.as_bytes()).expect("short");
    let y = evaluate_directly(&oprf_key, &input).expect("evaluate");
    let y = y.expose().to_vec();

    // The server's OPAQUE secrets, explicit.
    let oprf_seed = bytes_of("bkv/v2 test vector: opaque oprf_seed", 64);
    let server_sk = scalar_of("bkv/v2 test vector: opaque server private key");
    let server_pk = (RISTRETTO_BASEPOINT_POINT * server_sk)
        .compress()
        .to_bytes();
    let dummy_pk = (RISTRETTO_BASEPOINT_POINT * scalar_of("bkv/v2 test vector: opaque dummy"))
        .compress()
        .to_bytes();
    let setup_bytes = [&oprf_seed[..], &server_sk.to_bytes(), &dummy_pk].concat();
    let setup = ServerSetup::<Suite>::deserialize(&setup_bytes).expect("server setup");

    // Registration.
    let mut rng = RecordingRng::new("bkv/v2 test vector: registration start");
    let reg = ClientRegistration::<Suite>::start(&mut rng, &y).expect("reg start");
    assert_eq!(
        rng.draws.len(),
        1,
        "registration start draws the blind only"
    );
    let blind_registration = blind_of(&rng.draws[0]);
    let registration_request = reg.message.serialize().to_vec();
    assert_eq!(
        registration_request,
        (hash_to_group(&y) * blind_registration)
            .compress()
            .to_bytes(),
        "blinded_element = blind * HashToGroup(password)"
    );
    let reg_response = ServerRegistration::<Suite>::start(&setup, reg.message, account.as_bytes())
        .expect("server reg start");
    let registration_response = reg_response.message.serialize().to_vec();
    assert_eq!(
        registration_response[32..],
        server_pk,
        "response ends with the server key"
    );
    let mut rng = RecordingRng::new("bkv/v2 test vector: registration finish");
    let finished = reg
        .state
        .finish(
            &mut rng,
            &y,
            RegistrationResponse::deserialize(&registration_response).expect("response"),
            ClientRegistrationFinishParameters::new(identifiers(&account), Some(&argon2)),
        )
        .expect("reg finish");
    assert_eq!(
        rng.draws.len(),
        1,
        "registration finish draws the envelope nonce only"
    );
    let envelope_nonce = rng.draws[0].clone();
    let registration_upload = finished.message.serialize().to_vec();
    assert_eq!(
        registration_upload[96..128],
        envelope_nonce[..],
        "envelope starts with its nonce"
    );
    let export_key = finished.export_key.to_vec();
    let password_file = ServerRegistration::<Suite>::finish(
        RegistrationUpload::deserialize(&registration_upload).expect("upload"),
    );

    // Login.
    let mut rng = RecordingRng::new("bkv/v2 test vector: login start");
    let login = ClientLogin::<Suite>::start(&mut rng, &y).expect("login start");
    assert_eq!(
        rng.draws.iter().map(Vec::len).collect::<Vec<_>>(),
        [64, 32, 32],
        "login start draws the blind, the key-share seed and the nonce"
    );
    let blind_login = blind_of(&rng.draws[0]);
    let client_keyshare_seed = rng.draws[1].clone();
    let client_nonce = rng.draws[2].clone();
    let credential_request = login.message.serialize().to_vec();
    assert_eq!(
        credential_request[..32],
        (hash_to_group(&y) * blind_login).compress().to_bytes()
    );
    assert_eq!(credential_request[32..64], client_nonce[..]);
    assert_eq!(
        credential_request[64..],
        dh_public_of(&client_keyshare_seed)
    );

    let mut rng = RecordingRng::new("bkv/v2 test vector: server login start");
    let server_login = ServerLogin::start(
        &mut rng,
        &setup,
        Some(password_file),
        CredentialRequest::deserialize(&credential_request).expect("request"),
        account.as_bytes(),
        ServerLoginParameters {
            context: Some(CONTEXT),
            identifiers: identifiers(&account),
        },
    )
    .expect("server login start");
    // Before its own draws, the server makes a dummy record it does not use (so that a login
    // for an unknown account takes the same steps); the last three draws are its inputs.
    let n = rng.draws.len();
    assert!(n >= 3);
    let (masking_nonce, server_keyshare_seed, server_nonce) = (
        rng.draws[n - 3].clone(),
        rng.draws[n - 2].clone(),
        rng.draws[n - 1].clone(),
    );
    let credential_response = server_login.message.serialize().to_vec();
    assert_eq!(credential_response[32..64], masking_nonce[..]);
    assert_eq!(credential_response[192..224], server_nonce[..]);
    assert_eq!(
        credential_response[224..256],
        dh_public_of(&server_keyshare_seed)
    );

    let mut rng = RecordingRng::new("bkv/v2 test vector: login finish");
    let client_done = login
        .state
        .finish(
            &mut rng,
            &y,
            CredentialResponse::deserialize(&credential_response).expect("response"),
            ClientLoginFinishParameters::new(Some(CONTEXT), identifiers(&account), Some(&argon2)),
        )
        .expect("right password");
    assert!(rng.draws.is_empty(), "login finish draws nothing");
    assert_eq!(client_done.export_key.to_vec(), export_key);
    let credential_finalization = client_done.message.serialize().to_vec();
    let session_key = client_done.session_key.to_vec();
    let server_done = server_login
        .state
        .finish(
            CredentialFinalization::deserialize(&credential_finalization).expect("finalization"),
            ServerLoginParameters {
                context: Some(CONTEXT),
                identifiers: identifiers(&account),
            },
        )
        .expect("server finish");
    assert_eq!(server_done.session_key.to_vec(), session_key);

    // The server's OPRF key for this account, RFC 9807 section 3.2.1.
    let mut seed = [0u8; 32];
    hkdf::Hkdf::<Sha512>::from_prk(&oprf_seed)
        .expect("prk length")
        .expand_multi_info(&[account.as_bytes(), b"OprfKey"], &mut seed)
        .expect("expand");
    let opaque_oprf_key =
        voprf::derive_key::<voprf::Ristretto255>(&seed, b"OPAQUE-DeriveKeyPair", voprf::Mode::Oprf)
            .expect("derive");
    assert_eq!(
        registration_response[..32],
        (hash_to_group(&y) * blind_registration * opaque_oprf_key)
            .compress()
            .to_bytes()
    );

    // The client's intermediate values of RFC 9807, recomputed here from the vector's
    // inputs and checked against the messages: the OPRF output, the Argon2id output, the
    // randomized password and what the envelope derives from it.
    let unblinded = (hash_to_group(&y) * opaque_oprf_key).compress().to_bytes();
    let oprf_output: [u8; 64] = Sha512::new()
        .chain_update((y.len() as u16).to_be_bytes())
        .chain_update(&y)
        .chain_update(32u16.to_be_bytes())
        .chain_update(unblinded)
        .chain_update(b"Finalize")
        .finalize()
        .into();
    let mut stretched = [0u8; 64];
    argon2
        .hash_password_into(&oprf_output, &[0u8; 16], &mut stretched)
        .expect("argon2id");
    let (randomized_password, _) =
        hkdf::Hkdf::<Sha512>::extract(None, &[&oprf_output[..], &stretched[..]].concat());
    let expand = |info: &[&[u8]], len: usize| {
        let mut out = vec![0u8; len];
        hkdf::Hkdf::<Sha512>::from_prk(&randomized_password)
            .expect("prk length")
            .expand_multi_info(info, &mut out)
            .expect("expand");
        out
    };
    let masking_key = expand(&[b"MaskingKey"], 64);
    let auth_key = expand(&[&envelope_nonce, b"AuthKey"], 64);
    let client_seed = expand(&[&envelope_nonce, b"PrivateKey"], 32);
    let client_public_key = dh_public_of(&client_seed);
    assert_eq!(
        registration_upload[..32],
        client_public_key,
        "client_public_key"
    );
    assert_eq!(registration_upload[32..96], masking_key[..], "masking_key");
    assert_eq!(
        expand(&[&envelope_nonce, b"ExportKey"], 64),
        export_key,
        "export_key"
    );

    let opaque = json!({
        "description": "OPAQUE (RFC 9807) as bkv runs it: OPAQUE-3DH with ristretto255 and SHA-512 (OPRF ristretto255-SHA512, mode 0x00; KDF HKDF-SHA512; MAC HMAC-SHA512; Hash SHA-512; Nseed = Nn = Npk = Nok = 32, Nh = Nm = Nx = 64); KSF Argon2id version 0x13 with the parameters given (memory in KiB, passes, lanes), salt 16 zero bytes, output 64 bytes, input the 64-byte OPRF output; credential_identifier = client_identity = the account's UTF-8 bytes; server_identity unset (the server public key stands for it); context = \"bkv/v2\". The password is the hardened password of oprf-v2.json (hardened_password.hardened_password), never the user's password. The server setup is oprf_seed, server_private_key, server_public_key; the server's OPRF key for the account is oprf_key = DeriveKeyPair(HKDF-Expand(oprf_seed, credential_identifier || \"OprfKey\", 32), \"OPAQUE-DeriveKeyPair\") (RFC 9497 DeriveKeyPair, mode 0x00). Intermediate values of the client: oprf_output = RFC 9497 Finalize(password, blind, evaluated_element) = SHA-512(I2OSP(64, 2) || password || I2OSP(32, 2) || oprf_key * HashToGroup(password) || \"Finalize\"); ksf_output = Argon2id(oprf_output, salt = 16 zero bytes, 64 bytes); randomized_password = HKDF-Extract(salt = empty, oprf_output || ksf_output); masking_key = HKDF-Expand(randomized_password, \"MaskingKey\", 64); auth_key = HKDF-Expand(randomized_password, envelope_nonce || \"AuthKey\", 64); export_key = HKDF-Expand(randomized_password, envelope_nonce || \"ExportKey\", 64); client_private_key_seed = HKDF-Expand(randomized_password, envelope_nonce || \"PrivateKey\", 32) and client_public_key = DeriveDiffieHellmanKeyPair(seed). Random inputs as RFC 9807's vectors name them: blind_registration, envelope_nonce, blind_login, client_keyshare_seed, client_nonce, masking_nonce, server_keyshare_seed, server_nonce (key shares: DeriveDiffieHellmanKeyPair(seed)). Message layouts: registration_request = blinded_element (32); registration_response = evaluated_element (32) || server_public_key (32); registration_upload = client_public_key (32) || masking_key (64) || envelope_nonce (32) || auth_tag (64); credential_request (KE1) = blinded_element (32) || client_nonce (32) || client_public_keyshare (32); credential_response (KE2) = evaluated_element (32) || masking_nonce (32) || masked_response (128) || server_nonce (32) || server_public_keyshare (32) || server_mac (64); credential_finalization (KE3) = client_mac (64).",
        "account": ACCOUNT,
        "client_identity": h(account.as_bytes()),
        "credential_identifier": h(account.as_bytes()),
        "context": h(CONTEXT),
        "ksf": {
            "algorithm": "Argon2id",
            "version": 19,
            "m_cost_kib": ksf.m_cost_kib,
            "t_cost": ksf.t_cost,
            "p_cost": ksf.p_cost,
            "salt": h([0u8; 16]),
            "output_len": 64,
        },
        "password": h(&y),
        "oprf_seed": h(&oprf_seed),
        "server_private_key": h(server_sk.to_bytes()),
        "server_public_key": h(server_pk),
        "oprf_key": h(opaque_oprf_key.to_bytes()),
        "blind_registration": h(blind_registration.to_bytes()),
        "envelope_nonce": h(&envelope_nonce),
        "blind_login": h(blind_login.to_bytes()),
        "client_keyshare_seed": h(&client_keyshare_seed),
        "client_nonce": h(&client_nonce),
        "masking_nonce": h(&masking_nonce),
        "server_keyshare_seed": h(&server_keyshare_seed),
        "server_nonce": h(&server_nonce),
        "oprf_output": h(oprf_output),
        "ksf_output": h(stretched),
        "randomized_password": h(randomized_password),
        "masking_key": h(&masking_key),
        "auth_key": h(&auth_key),
        "client_private_key_seed": h(&client_seed),
        "client_public_key": h(client_public_key),
        "registration_request": h(&registration_request),
        "registration_response": h(&registration_response),
        "registration_upload": h(&registration_upload),
        "export_key": h(&export_key),
        "credential_request": h(&credential_request),
        "credential_response": h(&credential_response),
        "credential_finalization": h(&credential_finalization),
        "session_key": h(&session_key),
    });

    // The sealed key and the transported key, with the keys of this login.
    let backup_key = bytes_of("bkv/v2 test vector: backup key", 32);
    let seal_nonce: [u8; 12] = bytes_of("bkv/v2 test vector: sealed_key nonce", 12)
        .try_into()
        .expect("12");
    let sealed_key = seal_with_nonce(
        &export_key,
        BACKUP_KEY_INFO,
        seal_nonce,
        account.as_bytes(),
        &backup_key,
    )
    .expect("seal");
    let version = RecordVersion(1);
    let transport_nonce: [u8; 12] = bytes_of("bkv/v2 test vector: transported_key nonce", 12)
        .try_into()
        .expect("12");
    let aad = transport_aad(&account, version);
    let transported_key = seal_with_nonce(
        &session_key,
        TRANSPORT_INFO,
        transport_nonce,
        &aad,
        &sealed_key,
    )
    .expect("transport");
    let okm = |ikm: &[u8], info: &[u8]| {
        let mut okm = [0u8; 32];
        hkdf::Hkdf::<Sha512>::new(None, ikm)
            .expand(info, &mut okm)
            .expect("expand");
        h(okm)
    };
    let sealed = json!({
        "description": "sealed_key = nonce (12) || AES-256-GCM(key = aes_key, nonce, plaintext = backup_key (32), aad = account) with the 16-byte tag after the ciphertext (60 bytes); aes_key = HKDF-SHA512(salt = none, i.e. 64 zero bytes, ikm = export_key (64), info = \"bkv/backup-key/v1\", L = 32). export_key is the OPAQUE vector's.",
        "account": h(account.as_bytes()),
        "export_key": h(&export_key),
        "info": h(BACKUP_KEY_INFO),
        "aes_key": okm(&export_key, BACKUP_KEY_INFO),
        "backup_key": h(&backup_key),
        "nonce": h(seal_nonce),
        "aad": h(account.as_bytes()),
        "sealed_key": h(&sealed_key),
    });
    let transported = json!({
        "description": "transported_key = nonce (12) || AES-256-GCM(key = aes_key, nonce, plaintext = sealed_key, aad = account || I2OSP(version, 8)) with the tag after the ciphertext; aes_key = HKDF-SHA512(salt = none, ikm = session_key (64), info = \"bkv/transport/v1\", L = 32). session_key is the OPAQUE vector's, sealed_key the sealed_key vector's.",
        "session_key": h(&session_key),
        "version": version.get(),
        "info": h(TRANSPORT_INFO),
        "aes_key": okm(&session_key, TRANSPORT_INFO),
        "nonce": h(transport_nonce),
        "aad": h(&aad),
        "sealed_key": h(&sealed_key),
        "transported_key": h(&transported_key),
    });

    // The share map.
    let identity = SigningKey::from_bytes(
        &bytes_of("bkv/v2 test vector: cluster identity key", 32)
            .try_into()
            .expect("32"),
    );
    let holders: Vec<ShareHolder> = [1u64, 2, 3]
        .iter()
        .map(|&node_id| {
            let secret = p256::SecretKey::from_slice(&bytes_of(
                &format!("bkv/v2 test vector: receive key {node_id}"),
                32,
            ))
            .expect("a P-256 scalar");
            let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                &secret.public_key(),
                false,
            );
            ShareHolder {
                node_id,
                receive_key: point.as_bytes().try_into().expect("65"),
            }
        })
        .collect();
    let map = ShareMap {
        cluster_name: CLUSTER.into(),
        epoch: 2,
        threshold: u16::try_from(threshold_for(holders.len())).expect("small"),
        holders,
    };
    let encoded = map.encode();
    let signature = identity.sign(&encoded).to_bytes();
    let share_map = json!({
        "description": "encoded = \"bkv/v2/share-map\" || I2OSP(len(cluster_name), 2) || cluster_name || I2OSP(epoch, 8) || I2OSP(threshold, 2) || I2OSP(n, 2) || n times (I2OSP(node_id, 8) || receive_key (65, SEC1 uncompressed P-256)); signature = Ed25519 (RFC 8032) signature of encoded by the cluster identity key; clients pin identity_public_key",
        "cluster_name": CLUSTER,
        "epoch": map.epoch,
        "threshold": map.threshold,
        "holders": map.holders.iter().map(|h_| json!({
            "node_id": h_.node_id,
            "receive_key": h(h_.receive_key),
        })).collect::<Vec<_>>(),
        "identity_public_key": h(identity.verifying_key().to_bytes()),
        "encoded": h(&encoded),
        "signature": h(signature),
    });

    // An account token.
    let issuer = SigningKey::from_bytes(
        &bytes_of("bkv/v2 test vector: token issuer key", 32)
            .try_into()
            .expect("32"),
    );
    let claims = Claims {
        iss: "bkv-dev".into(),
        sub: ACCOUNT.into(),
        aud: CLUSTER.into(),
        iat: 1_800_000_000,
        exp: 1_800_000_600,
        nbf: None,
    };
    let jwt = token::issue(&issuer, &claims);
    let mut parts = jwt.split('.');
    let (header64, claims64) = (parts.next().expect("header"), parts.next().expect("claims"));
    let decode = |p: &str| {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .expect("base64url");
        String::from_utf8(bytes).expect("utf-8")
    };
    let account_token = json!({
        "description": "compact JWS (RFC 7515): base64url without padding of header_json, '.', of claims_json, '.', of signature; signature = Ed25519 signature of the ASCII bytes header64 || \".\" || claims64 by the issuer key; the node verifies it with issuer_public_key, the key its configuration names for iss, at a time between iat and exp (here 1800000300)",
        "issuer_public_key": h(issuer.verifying_key().to_bytes()),
        "header_json": decode(header64),
        "claims_json": decode(claims64),
        "verified_at": 1_800_000_300u64,
        "token": jwt,
    });

    json!({
        "description": "Test vectors of bkv protocol v2's client formats besides the threshold OPRF (oprf-v2.json): OPAQUE as configured by bkv, the sealed and transported backup key, the share map and an account token. Byte strings are lowercase hex; integers inside byte strings are big-endian (I2OSP).",
        "opaque": opaque,
        "sealed_key": sealed,
        "transported_key": transported,
        "share_map": share_map,
        "account_token": account_token,
    })
}

#[test]
fn client_v2_vectors_match_the_committed_file() {
    crate::vector_files::match_or_write(FILE, &vectors(), "client_v2_vectors");
}

/// The committed file read back and checked through the public API only, as a third-party
/// client would use it: the server's OPAQUE answers to the vector's messages, the client's
/// finish, the keys opening the sealed and transported key, the share map and the token.
#[test]
fn client_v2_vectors_check_through_the_public_api() {
    let Some(v) = crate::vector_files::read(FILE) else {
        return; // the other test is rewriting the file right now
    };
    let x = |p: &str| -> Vec<u8> {
        let s = v.pointer(p).and_then(|s| s.as_str()).expect(p);
        hex::decode(s).expect("hex")
    };
    let n = |p: &str| v.pointer(p).and_then(Value::as_u64).expect(p);
    let account = AccountId::parse(ACCOUNT).expect("valid");

    // OPAQUE: the server, set up from the vector, answers the vector's messages with the
    // vector's bytes (the registration response is deterministic), and accepts the
    // finalization; the client's side is checked by the other test.
    let setup_bytes = [
        x("/opaque/oprf_seed"),
        x("/opaque/server_private_key"),
        x("/opaque/server_public_key"),
    ]
    .concat();
    let setup = ServerSetup::<Suite>::deserialize(&setup_bytes).expect("setup");
    let response = ServerRegistration::<Suite>::start(
        &setup,
        RegistrationRequest::deserialize(&x("/opaque/registration_request")).expect("request"),
        &x("/opaque/credential_identifier"),
    )
    .expect("start");
    assert_eq!(
        response.message.serialize().to_vec(),
        x("/opaque/registration_response")
    );
    let ksf = KsfParams {
        m_cost_kib: u32::try_from(n("/opaque/ksf/m_cost_kib")).expect("u32"),
        t_cost: u32::try_from(n("/opaque/ksf/t_cost")).expect("u32"),
        p_cost: u32::try_from(n("/opaque/ksf/p_cost")).expect("u32"),
    };
    assert_eq!(ksf, self::ksf());

    // Sealed and transported key.
    let export_key = ExportKey::take_from(&mut x("/opaque/export_key")).expect("64");
    let session_key = SessionKey::take_from(&mut x("/opaque/session_key")).expect("64");
    let sealed = open_transported(
        &session_key,
        &account,
        RecordVersion(n("/transported_key/version")),
        &x("/transported_key/transported_key"),
    )
    .expect("transported key opens");
    assert_eq!(sealed.as_bytes(), x("/sealed_key/sealed_key"));
    let key: BackupKey =
        open_backup_key(&export_key, &account, sealed.as_bytes()).expect("sealed key opens");
    assert_eq!(key.expose().to_vec(), x("/sealed_key/backup_key"));

    // Share map.
    let signed = SignedShareMap {
        encoded: x("/share_map/encoded"),
        signature: x("/share_map/signature").try_into().expect("64"),
    };
    let identity: [u8; 32] = x("/share_map/identity_public_key").try_into().expect("32");
    let map = signed.verify(&identity).expect("signed map");
    assert_eq!(map.cluster_name, CLUSTER);
    assert_eq!(map.epoch, n("/share_map/epoch"));
    assert_eq!(u64::from(map.threshold), n("/share_map/threshold"));
    assert_eq!(map.holders.len(), 3);

    // Token.
    let issuer_key: [u8; 32] = x("/account_token/issuer_public_key")
        .try_into()
        .expect("32");
    let mut issuers = TrustedIssuers::new(3600, 60);
    issuers.insert(
        "bkv-dev",
        ed25519_dalek::VerifyingKey::from_bytes(&issuer_key).expect("key"),
    );
    let jwt = v
        .pointer("/account_token/token")
        .and_then(Value::as_str)
        .expect("token");
    let verified = issuers
        .verify(jwt, CLUSTER, n("/account_token/verified_at"))
        .expect("the vector's token verifies");
    assert_eq!(verified.account, account);
}
