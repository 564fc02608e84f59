//! Strict parsing of everything that comes from the network: wrong lengths, non-canonical
//! encodings and the identity are refused with the field named; secrets never show in
//! `Debug`.

use super::super::{
    Blind, BlindedElement, Commitment, DleqProof, EvaluatedElement, HardenedPassword, KeyShare,
    OprfError, OprfInput, OprfKey, P256PublicKey, ResetKey, ResetPublicKey, ShareCiphertext,
    SoftwareShareKey, oprf_input,
};
use super::{rng, unhex};
use crate::ids::AccountId;
use crate::protocol::ExportKey;

/// RFC 9496 appendix A.2: encodings every ristretto255 decoder must refuse (non-canonical
/// field elements, negative field elements, non-square x^2, and others).
const BAD_RISTRETTO: &[&str] = &[
    "00ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "f3ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "ed57ffd8c914fb201471d1c3d245ce3c746fcbe63a3679d51b6a516ebebe0e20",
    "c34c4e1826e5d403b78e246e88aa051c36ccf0aafebffe137d148a2bf9104562",
    "c940e5a4404157cfb1628b108db051a8d439e1a421394ec4ebccb9ec92a8ac78",
    "47cfc5497c53dc8e61c91d17fd626ffb1c49e2bca94eed052281b510b1117a24",
    "f1c6165d33367351b0da8f6e4511010c68174a03b6581212c71c0e1d026c3c72",
    "87260f7a2f12495118360f02c26a470f450dadf34a413d21042b43b9d93e1309",
    "26948d35ca62e643e26a83177332e6b6afeb9d08e4268b650f1f5bbd8d81d371",
    "4eac077a713c57b4f4397629a4145982c661f48044dd3f96427d40b147d9742f",
    "de6a7b00deadc788eb6b6c8d20c0ae96c2f2019078fa604fee5b87d6e989ad7b",
    "bcab477be20861e01e4a0e295284146a510150d9817763caf1a6f4b422d67042",
    "2a292df7e32cababbd9de088d1d1abec9fc0440f637ed2fba145094dc14bea08",
    "f4a9e534fc0d216c44b218fa0c42d99635a0127ee2e53c712f70609649fdff22",
    "8268436f8c4126196cf64b3c7ddbda90746a378625f9813dd9b8457077256731",
    "2810e5cbc2cc4d4eece54f61c6f69758e289aa7ab440b3cbeaa21995c2f4232b",
    "3eb858e78f5a7254d8c9731174a94f76755fd3941c0ac93735c07ba14579630e",
    "a45fdc55c76448c049a1ab33f17023edfb2be3581e9c7aade8a6125215e04220",
    "d483fe813c6ba647ebbfd3ec41adca1c6130c2beeee9d9bf065c8d151c5f396e",
    "8a2e1d30050198c65a54483123960ccc38aef6848e1ec8f5f780e8523769ba32",
    "32888462f8b486c68ad7dd9610be5192bbeaf3b443951ac1a8118419d9fa097b",
    "227142501b9d4355ccba290404bde41575b037693cef1f438c47f8fbf35d1165",
    "5c37cc491da847cfeb9281d407efc41e15144c876e0170b499a96a22ed31e01e",
    "445425117cb8c90edcbc7c1cc0e74f747f2c1efa5630a967c64f287792a48a4b",
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
];

/// The group order l, little-endian: the smallest non-canonical scalar.
const ORDER: &str = "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010";

/// The P-256 generator, uncompressed.
const P256_G: &str = "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296\
                      4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5";
/// The P-256 field prime.
const P256_P: &str = "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff";

fn check_element(parse: fn(&[u8]) -> Result<[u8; 32], OprfError>, what: &'static str) {
    let g = unhex("e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76");
    assert_eq!(
        parse(&g),
        Ok(g.clone().try_into().expect("32")),
        "basepoint"
    );
    assert_eq!(parse(&[0; 32]), Err(OprfError::Identity { what }));
    for len in [0, 31, 33, 64] {
        assert_eq!(
            parse(&vec![1; len]),
            Err(OprfError::WrongLength {
                what,
                expected: 32,
                actual: len
            })
        );
    }
    for bad in BAD_RISTRETTO {
        assert_eq!(
            parse(&unhex(bad)),
            Err(OprfError::NotRistretto { what }),
            "{bad}"
        );
    }
}

#[test]
fn elements_refuse_identity_non_canonical_and_wrong_length() {
    check_element(
        |b| Commitment::parse(b).map(|e| *e.as_bytes()),
        "commitment",
    );
    check_element(
        |b| BlindedElement::parse(b).map(|e| *e.as_bytes()),
        "blinded_element",
    );
    check_element(
        |b| EvaluatedElement::parse(b).map(|e| *e.as_bytes()),
        "evaluated_element",
    );
}

#[test]
fn elements_revalidate_when_deserialized() {
    let g = unhex("e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76");
    let k = Commitment::parse(&g).expect("basepoint");
    let bytes = postcard::to_stdvec(&k).expect("serialize");
    assert_eq!(bytes, g, "postcard writes the 32 bytes as they are");
    assert_eq!(postcard::from_bytes::<Commitment>(&bytes).ok(), Some(k));
    assert!(postcard::from_bytes::<Commitment>(&[0; 32]).is_err());
    assert!(postcard::from_bytes::<Commitment>(&unhex(BAD_RISTRETTO[1])).is_err());
}

#[test]
fn proofs_refuse_non_canonical_and_zero_scalars() {
    let one = {
        let mut b = [0u8; 32];
        b[0] = 1;
        b
    };
    let good = [one, one].concat();
    assert!(DleqProof::parse(&good).is_ok());
    assert_eq!(
        DleqProof::parse(&good[..63]),
        Err(OprfError::WrongLength {
            what: "proof",
            expected: 64,
            actual: 63
        })
    );
    let order = unhex(ORDER);
    for bad in [
        [order.as_slice(), &one].concat(),
        [one.as_slice(), &order].concat(),
        [one.as_slice(), &[0xff; 32]].concat(),
    ] {
        assert_eq!(
            DleqProof::parse(&bad),
            Err(OprfError::NonCanonicalScalar { what: "proof" })
        );
    }
    assert_eq!(
        DleqProof::parse(&[[0u8; 32], one].concat()),
        Err(OprfError::ZeroScalar { what: "proof" })
    );
    assert_eq!(
        DleqProof::parse(&[one, [0u8; 32]].concat()),
        Err(OprfError::ZeroScalar { what: "proof" })
    );
}

#[test]
fn key_shares_and_keys_refuse_zero_index_zero_and_non_canonical_scalars() {
    let mut one = [0u8; 32];
    one[0] = 1;
    assert_eq!(KeyShare::from_bytes(3, &one).map(|s| s.index()), Ok(3));
    assert_eq!(
        KeyShare::from_bytes(0, &one).err(),
        Some(OprfError::ZeroIndex)
    );
    assert_eq!(
        KeyShare::from_bytes(1, &[0; 32]).err(),
        Some(OprfError::ZeroScalar { what: "key_share" })
    );
    assert_eq!(
        KeyShare::from_bytes(1, &unhex(ORDER)).err(),
        Some(OprfError::NonCanonicalScalar { what: "key_share" })
    );
    assert_eq!(
        KeyShare::from_bytes(1, &one[..31]).err(),
        Some(OprfError::WrongLength {
            what: "key_share",
            expected: 32,
            actual: 31
        })
    );
    assert_eq!(
        OprfKey::from_bytes(&[0; 32]).err(),
        Some(OprfError::ZeroScalar { what: "oprf_key" })
    );
}

#[test]
fn p256_keys_must_be_uncompressed_canonical_and_on_the_curve() {
    let what = "p256_public_key";
    let g = unhex(P256_G);
    assert_eq!(
        P256PublicKey::parse(&g).map(|k| k.as_bytes().to_vec()),
        Ok(g.clone())
    );
    let compressed_g = [&[0x03][..], &g[1..33]].concat();
    assert_eq!(
        P256PublicKey::parse(&compressed_g).err(),
        Some(OprfError::WrongLength {
            what,
            expected: 65,
            actual: 33
        })
    );
    for tag in [0x00, 0x02, 0x03, 0x06, 0x07] {
        let mut b = g.clone();
        b[0] = tag;
        assert_eq!(
            P256PublicKey::parse(&b).err(),
            Some(OprfError::NotUncompressed { what, tag })
        );
    }
    assert_eq!(
        P256PublicKey::parse(&[0]).err(),
        Some(OprfError::WrongLength {
            what,
            expected: 65,
            actual: 1
        })
    );
    let mut off_curve = g.clone();
    off_curve[64] ^= 1;
    assert_eq!(
        P256PublicKey::parse(&off_curve).err(),
        Some(OprfError::NotOnCurve { what })
    );
    // x = p: a non-canonical coordinate.
    let mut x_is_p = g.clone();
    x_is_p[1..33].copy_from_slice(&unhex(P256_P));
    assert_eq!(
        P256PublicKey::parse(&x_is_p).err(),
        Some(OprfError::NotOnCurve { what })
    );
    // y + p: the same point's y, non-canonical.
    let y = num_add(&g[33..65], &unhex(P256_P));
    if let Some(y) = y {
        let mut big_y = g.clone();
        big_y[33..65].copy_from_slice(&y);
        assert_eq!(
            P256PublicKey::parse(&big_y).err(),
            Some(OprfError::NotOnCurve { what })
        );
    }
}

/// Big-endian `a + b` if it fits in 32 bytes.
fn num_add(a: &[u8], b: &[u8]) -> Option<Vec<u8>> {
    let mut out = vec![0u8; 32];
    let mut carry = 0u16;
    for i in (0..32).rev() {
        let s = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = s as u8;
        carry = s >> 8;
    }
    (carry == 0).then_some(out)
}

#[test]
fn share_ciphertexts_need_their_length_and_a_valid_ephemeral_key() {
    let g = unhex(P256_G);
    let good = [g.as_slice(), &[7u8; 60]].concat();
    let c = ShareCiphertext::parse(&good).expect("valid layout");
    assert_eq!(c.ephemeral_public()[..], g[..]);
    assert_eq!(
        ShareCiphertext::parse(&good[..124]).err(),
        Some(OprfError::WrongLength {
            what: "share_ciphertext",
            expected: 125,
            actual: 124
        })
    );
    let mut bad_tag = good.clone();
    bad_tag[0] = 0x02;
    assert_eq!(
        ShareCiphertext::parse(&bad_tag).err(),
        Some(OprfError::NotUncompressed {
            what: "ephemeral_public_key",
            tag: 0x02
        })
    );
    let mut off_curve = good.clone();
    off_curve[10] ^= 0x40;
    assert_eq!(
        ShareCiphertext::parse(&off_curve).err(),
        Some(OprfError::NotOnCurve {
            what: "ephemeral_public_key"
        })
    );
}

#[test]
fn reset_public_keys_refuse_small_order_and_undecodable_points() {
    let what = "reset_public_key";
    let key = ResetKey::derive(&ExportKey::take_from(&mut [5u8; 64]).expect("64 bytes"));
    assert!(ResetPublicKey::parse(&key.public()).is_ok());
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let order_two = unhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
    for weak in [identity.to_vec(), order_two] {
        assert_eq!(
            ResetPublicKey::parse(&weak).err(),
            Some(OprfError::NotEd25519 { what })
        );
    }
    // The first y that is not the y-coordinate of any point.
    let undecodable = (2u8..=255)
        .map(|y| {
            let mut b = [0u8; 32];
            b[0] = y;
            b
        })
        .find(|b| ed25519_dalek::VerifyingKey::from_bytes(b).is_err())
        .expect("about half of all y have no point");
    assert_eq!(
        ResetPublicKey::parse(&undecodable).err(),
        Some(OprfError::NotEd25519 { what })
    );
    assert_eq!(
        ResetPublicKey::parse(&[1; 31]).err(),
        Some(OprfError::WrongLength {
            what,
            expected: 32,
            actual: 31
        })
    );
}

#[test]
fn oprf_inputs_stop_at_65535_bytes() {
    let account = AccountId::parse("alice").expect("valid");
    let max_password = vec![b'x'; OprfInput::MAX_LEN - 2 - 5];
    assert_eq!(
        oprf_input(&account, &max_password).map(|i| i.as_bytes().len()),
        Ok(OprfInput::MAX_LEN)
    );
    let too_long = vec![b'x'; max_password.len() + 1];
    assert_eq!(
        oprf_input(&account, &too_long).err(),
        Some(OprfError::InputTooLong {
            actual: OprfInput::MAX_LEN + 1,
            max: OprfInput::MAX_LEN
        })
    );
    assert_eq!(
        oprf_input(&account, b"pw").map(|i| i.as_bytes().to_vec()),
        Ok(b"\x00\x05alicepw".to_vec())
    );
}

#[test]
fn secrets_are_redacted_in_debug() {
    let mut r = rng(3);
    let key = OprfKey::generate(&mut r);
    let share = KeyShare::from_bytes(4, key.to_bytes().as_ref()).expect("share");
    let input = OprfInput::new(b"secret password").expect("short");
    let (blind, _) = Blind::start(&input, &mut r).expect("blind");
    let hardened: HardenedPassword = super::super::evaluate_directly(&key, &input).expect("y");
    let reset = ResetKey::derive(&ExportKey::take_from(&mut [5u8; 64]).expect("64 bytes"));
    let node_key = SoftwareShareKey::generate(&mut r);
    let shown =
        format!("{key:?} {share:?} {input:?} {blind:?} {hardened:?} {reset:?} {node_key:?}");
    assert_eq!(
        shown,
        "OprfKey(<redacted>) KeyShare(index 4, <redacted>) OprfInput(<redacted>) \
         Blind(<redacted>) HardenedPassword(<redacted>) ResetKey(<redacted>) \
         SoftwareShareKey(<redacted>)"
    );
}
