//! Property tests: any t-of-n with 1 <= t <= n <= 7 and random node ids. Every t-subset of
//! verified evaluations combines to the direct output, fewer than t do not; tampered
//! evaluations and proofs fail; commitments of another polynomial fail the consistency
//! check; shares travel and open only unmodified, under their own context.
//!
//! Case counts are small: each case does dozens of group operations.

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use proptest::prelude::*;
use rand::{Rng, RngCore};

use super::super::share_ciphertext::open_share_with;
use super::super::suite::random_nonzero_scalar;
use super::super::{
    Blind, Commitment, DleqProof, EvaluatedElement, KeyShare, OprfError, OprfKey, ShareCiphertext,
    ShareContext, SoftwareShareKey, check_commitments, combine, encrypt_share, evaluate_directly,
    evaluate_share, open_share, oprf_input, share_matches, split, threshold_for, verify_evaluation,
};
use super::rng;
use crate::ids::AccountId;

/// `(node ids, t)`: 1 to 7 distinct nonzero ids, small or anywhere in u64, and `1 <= t <= n`.
fn ids_and_threshold() -> impl Strategy<Value = (Vec<u64>, usize)> {
    (1usize..=7).prop_flat_map(|n| {
        let id = prop_oneof![1u64..=10, 1u64..=u64::MAX];
        (
            proptest::collection::btree_set(id, n).prop_map(|s| s.into_iter().collect()),
            1..=n,
        )
    })
}

/// The subsets of `0..n` with `size` members.
fn subsets(n: usize, size: usize) -> Vec<Vec<usize>> {
    (0u32..1 << n)
        .filter(|mask| mask.count_ones() as usize == size)
        .map(|mask| (0..n).filter(|i| mask & (1 << i) != 0).collect())
        .collect()
}

fn alice() -> AccountId {
    AccountId::parse("alice@example.com").expect("valid")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_t_subset_combines_to_the_direct_output(
        (ids, t) in ids_and_threshold(),
        seed in any::<u64>(),
    ) {
        let mut r = rng(seed);
        let password = format!("password {}", r.gen_range(0..1000));
        let input = oprf_input(&alice(), password.as_bytes()).expect("short");
        let key = OprfKey::generate(&mut r);
        let direct = evaluate_directly(&key, &input).expect("evaluate");

        let shares = split(&key, &ids, t, &mut r).expect("split");
        let points: Vec<(u64, Commitment)> =
            shares.iter().map(|(s, k)| (s.index(), *k)).collect();
        prop_assert_eq!(check_commitments(&points, t), Ok(()));

        let b = random_nonzero_scalar(&mut r);
        let (_, blinded) = Blind::with_scalar(b, &input).expect("blind");
        let evaluations: Vec<(u64, EvaluatedElement)> = shares
            .iter()
            .map(|(share, commitment)| {
                let (z, proof) = evaluate_share(share, &blinded, &mut r);
                assert_eq!(verify_evaluation(commitment, &blinded, &z, &proof), Ok(()));
                (share.index(), z)
            })
            .collect();
        let output_of = |members: &[usize]| {
            let chosen: Vec<_> = members.iter().map(|&i| evaluations[i]).collect();
            let combined = combine(&chosen).expect("combine");
            let (blind, _) = Blind::with_scalar(b, &input).expect("blind");
            blind.finish(&input, &combined)
        };
        for members in subsets(ids.len(), t) {
            prop_assert_eq!(&output_of(&members), &direct, "subset {:?}", members);
        }
        if t > 1 {
            for members in subsets(ids.len(), t - 1) {
                prop_assert_ne!(&output_of(&members), &direct, "too few: {:?}", members);
            }
        }
        // More than t points lie on the same polynomial: they combine to k * B too.
        if ids.len() > t {
            let all: Vec<usize> = (0..ids.len()).collect();
            prop_assert_eq!(&output_of(&all), &direct);
        }
    }

    #[test]
    fn tampered_evaluations_and_proofs_fail(
        (ids, t) in ids_and_threshold(),
        seed in any::<u64>(),
    ) {
        let mut r = rng(seed);
        let key = OprfKey::generate(&mut r);
        let shares = split(&key, &ids, t, &mut r).expect("split");
        let input = oprf_input(&alice(), b"pw").expect("short");
        let (_, blinded) = Blind::start(&input, &mut r).expect("blind");
        let (_, other_blinded) = Blind::start(&input, &mut r).expect("blind");
        let i = r.gen_range(0..shares.len());
        let (share, commitment) = &shares[i];
        let (z, proof) = evaluate_share(share, &blinded, &mut r);
        prop_assert_eq!(verify_evaluation(commitment, &blinded, &z, &proof), Ok(()));

        let shifted = EvaluatedElement::from_point(z.point() + RistrettoPoint::mul_base(&Scalar::ONE));
        prop_assert_eq!(
            verify_evaluation(commitment, &blinded, &shifted, &proof),
            Err(OprfError::ProofRejected)
        );
        prop_assert_eq!(
            verify_evaluation(commitment, &other_blinded, &z, &proof),
            Err(OprfError::ProofRejected)
        );
        // (With t = 1 every share is k itself: all commitments are equal.)
        if let Some((_, other)) = shares.iter().find(|(_, k)| k != commitment) {
            prop_assert_eq!(
                verify_evaluation(other, &blinded, &z, &proof),
                Err(OprfError::ProofRejected)
            );
        }
        // Single bits of the proof flipped (16 random ones per case): refused at parse or at
        // verification.
        let bytes = proof.to_bytes();
        for bit in (0..16).map(|_| r.gen_range(0..bytes.len() * 8)) {
            let mut flipped = bytes;
            flipped[bit / 8] ^= 1 << (bit % 8);
            if let Ok(p) = DleqProof::parse(&flipped) {
                prop_assert_eq!(
                    verify_evaluation(commitment, &blinded, &z, &p),
                    Err(OprfError::ProofRejected),
                    "bit {}", bit
                );
            }
        }
        // Another node's honest answer under this node's index does not verify either.
        let (wrong_share_z, _) = evaluate_share(&KeyShare::from_bytes(
            share.index(),
            OprfKey::generate(&mut r).to_bytes().as_ref(),
        ).expect("share"), &blinded, &mut r);
        prop_assert_eq!(
            verify_evaluation(commitment, &blinded, &wrong_share_z, &proof),
            Err(OprfError::ProofRejected)
        );
    }

    #[test]
    fn commitments_of_another_polynomial_fail_the_check(
        (ids, t) in ids_and_threshold(),
        seed in any::<u64>(),
    ) {
        let mut r = rng(seed);
        let key = OprfKey::generate(&mut r);
        let mut honest: Vec<(u64, Commitment)> = split(&key, &ids, t, &mut r)
            .expect("split")
            .into_iter()
            .map(|(s, k)| (s.index(), k))
            .collect();
        // Any order is fine: the first t define the polynomial.
        for i in (1..honest.len()).rev() {
            honest.swap(i, r.gen_range(0..=i));
        }
        prop_assert_eq!(check_commitments(&honest, t), Ok(()));

        // The same key split again: another polynomial (for t >= 2), or another key.
        let other_key = if t >= 2 { key } else { OprfKey::generate(&mut r) };
        let other: Vec<(u64, Commitment)> = split(&other_key, &ids, t, &mut r)
            .expect("split")
            .into_iter()
            .map(|(s, k)| (s.index(), k))
            .collect();
        let j = r.gen_range(0..honest.len());
        let mut mixed = honest.clone();
        mixed[j].1 = other.iter().find(|(x, _)| *x == mixed[j].0).expect("same ids").1;
        let result = check_commitments(&mixed, t);
        if honest.len() > t {
            prop_assert!(
                matches!(result, Err(OprfError::InconsistentCommitment { threshold, .. }) if threshold == t),
                "{:?}", result
            );
        } else {
            // With n = t any t points define a polynomial: nothing to check against.
            prop_assert_eq!(result, Ok(()));
        }
        // A commitment copied to another index is caught the same way (with t >= 2; with
        // t = 1 all commitments are k * G). A swap of two commitments is not always caught:
        // the swapped points lie on another polynomial of degree t - 1 when the Lagrange
        // basis of the first point is -1 at the last (ids 3, 5, 8, 9 with t = 3 has such
        // orders).
        if honest.len() > t && t >= 2 {
            let mut moved = honest.clone();
            let last = moved.len() - 1;
            moved[last].1 = moved[0].1;
            prop_assert!(check_commitments(&moved, t).is_err());
        }
    }

    #[test]
    fn shares_open_only_unmodified_under_their_own_context(seed in any::<u64>(), node_id in 1u64..) {
        let mut r = rng(seed);
        let node_key = SoftwareShareKey::generate(&mut r);
        let recipient = node_key.public();
        let key = OprfKey::generate(&mut r);
        let (share, commitment) = split(&key, &[node_id], 1, &mut r)
            .expect("split")
            .pop()
            .expect("one share");
        let mut reset_key = [0u8; 32];
        r.fill_bytes(&mut reset_key);
        let context = ShareContext {
            cluster_name: format!("cluster-{}", r.next_u32()),
            account: alice(),
            node_id,
            guess_limit: r.next_u32() % 100 + 1,
            reset_key,
            commitment,
        };
        let ciphertext = encrypt_share(&recipient, &share, &context, &mut r);
        let z = node_key.diffie_hellman(ciphertext.ephemeral_public()).expect("ecdh");
        let opened = open_share(&z, &ciphertext, &recipient, &context).expect("opens");
        prop_assert_eq!(opened.index(), node_id);
        prop_assert_eq!(opened.to_bytes(), share.to_bytes());
        prop_assert!(share_matches(&opened, &commitment));

        // Every single bit of the ciphertext flipped: refused at parse or at open.
        let bytes = *ciphertext.as_bytes();
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes;
            flipped[bit / 8] ^= 1 << (bit % 8);
            if let Ok(c) = ShareCiphertext::parse(&flipped) {
                prop_assert!(open_share(&z, &c, &recipient, &context).is_err(), "bit {}", bit);
            }
        }
        // Every single bit of the context flipped.
        let context_bytes = context.to_bytes();
        for bit in 0..context_bytes.len() * 8 {
            let mut flipped = context_bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(
                open_share_with(&z, &ciphertext, &recipient, &flipped, node_id).err(),
                Some(OprfError::ShareRejected),
                "context bit {}", bit
            );
        }
        // Another recipient key (same Z) or another Z.
        let other = SoftwareShareKey::generate(&mut r).public();
        prop_assert_eq!(
            open_share(&z, &ciphertext, &other, &context).err(),
            Some(OprfError::ShareRejected)
        );
        let mut wrong_z = *z;
        wrong_z[0] ^= 1;
        prop_assert_eq!(
            open_share(&wrong_z, &ciphertext, &recipient, &context).err(),
            Some(OprfError::ShareRejected)
        );
    }
}

#[test]
fn a_share_encrypted_under_another_commitment_is_refused_after_decryption() {
    let mut r = rng(9);
    let node_key = SoftwareShareKey::generate(&mut r);
    let key = OprfKey::generate(&mut r);
    let shares = split(&key, &[1, 2], 2, &mut r).expect("split");
    let (share_1, _) = &shares[0];
    let (_, commitment_2) = &shares[1];
    // The client (buggy or lying) binds share 1 to node 1 but to node 2's commitment.
    let context = ShareContext {
        cluster_name: "c".into(),
        account: alice(),
        node_id: 1,
        guess_limit: 10,
        reset_key: [5; 32],
        commitment: *commitment_2,
    };
    let ciphertext = encrypt_share(&node_key.public(), share_1, &context, &mut r);
    let z = node_key
        .diffie_hellman(ciphertext.ephemeral_public())
        .expect("ecdh");
    assert_eq!(
        open_share(&z, &ciphertext, &node_key.public(), &context).err(),
        Some(OprfError::ShareMismatch)
    );
    assert!(!share_matches(share_1, commitment_2));
}

#[test]
fn split_combine_and_check_refuse_bad_indices_and_thresholds() {
    let mut r = rng(10);
    let key = OprfKey::generate(&mut r);
    assert_eq!(
        split(&key, &[1, 0, 2], 2, &mut r).err(),
        Some(OprfError::ZeroIndex)
    );
    assert_eq!(
        split(&key, &[4, 2, 4], 2, &mut r).err(),
        Some(OprfError::DuplicateIndex { index: 4 })
    );
    assert_eq!(
        split(&key, &[1, 2, 3], 0, &mut r).err(),
        Some(OprfError::BadThreshold { threshold: 0, n: 3 })
    );
    assert_eq!(
        split(&key, &[1, 2, 3], 4, &mut r).err(),
        Some(OprfError::BadThreshold { threshold: 4, n: 3 })
    );
    let shares = split(&key, &[1, 2, 3], 2, &mut r).expect("split");
    let points: Vec<(u64, Commitment)> = shares.iter().map(|(s, k)| (s.index(), *k)).collect();
    assert_eq!(
        check_commitments(&points, 4),
        Err(OprfError::BadThreshold { threshold: 4, n: 3 })
    );
    let mut dup = points.clone();
    dup[2].0 = 1;
    assert_eq!(
        check_commitments(&dup, 2),
        Err(OprfError::DuplicateIndex { index: 1 })
    );
    let input = oprf_input(&alice(), b"pw").expect("short");
    let (_, blinded) = Blind::start(&input, &mut r).expect("blind");
    let (z, _) = evaluate_share(&shares[0].0, &blinded, &mut r);
    assert_eq!(combine(&[]).err(), Some(OprfError::NoEvaluations));
    assert_eq!(
        combine(&[(1, z), (1, z)]).err(),
        Some(OprfError::DuplicateIndex { index: 1 })
    );
    assert_eq!(combine(&[(0, z)]).err(), Some(OprfError::ZeroIndex));
    // At indices 1 and 2, λ = (2, -1): Z at 1 and 2Z at 2 cancel.
    let double = EvaluatedElement::from_point(z.point() + z.point());
    assert_eq!(
        combine(&[(1, z), (2, double)]).err(),
        Some(OprfError::IdentityCombination)
    );
}

#[test]
fn thresholds_are_majorities() {
    assert_eq!(
        (1..=7).map(threshold_for).collect::<Vec<_>>(),
        vec![1, 2, 2, 3, 3, 4, 4]
    );
}
