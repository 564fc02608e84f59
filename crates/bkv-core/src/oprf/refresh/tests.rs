//! Share refresh: refreshed shares combine (any `t` of them) to the direct output; a share
//! from before a refresh with shares from after it combines to something else; every
//! replica's check accepts honest commitments and refuses a changed key or a share off the
//! polynomial; a participant opens only pieces of this refresh addressed to it, one per
//! dealer.

use curve25519_dalek::scalar::Scalar;
use proptest::prelude::*;

use super::super::{
    Blind, Commitment, KeyShare, OprfError, OprfKey, P256PublicKey, ShareCiphertext, ShareContext,
    combine, encrypt_share, evaluate_directly, evaluate_share, oprf_input, split,
};
use super::*;
use crate::ids::AccountId;
use crate::oprf::tests::voters::Voters;

fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::SeedableRng::seed_from_u64(seed)
}

fn account() -> AccountId {
    AccountId::parse("alice@example.com").expect("valid")
}

fn context(threshold: u16, shares: &[KeyShare]) -> RefreshContext {
    RefreshContext {
        cluster_name: "test".into(),
        account: account(),
        version: 7_000_000,
        guess_limit: 10,
        reset_key: [9; 32],
        threshold,
        participants: shares.iter().map(|s| (s.index(), s.commitment())).collect(),
    }
}

fn shares_of(key: &OprfKey, ids: &[u64], t: usize, r: &mut rand::rngs::StdRng) -> Vec<KeyShare> {
    split(key, ids, t, r)
        .expect("split")
        .into_iter()
        .map(|(s, _)| s)
        .collect()
}

/// Runs a refresh with the real functions: every participant deals, every one applies the
/// pieces dealt to it. Returns the new shares (in the participants' order) and the pieces
/// (`dealt[a][b]`: dealt by participant `a` to participant `b`).
fn refresh(
    voters: &Voters,
    shares: &[KeyShare],
    ctx: &RefreshContext,
    r: &mut rand::rngs::StdRng,
) -> (Vec<KeyShare>, Vec<Vec<ShareCiphertext>>) {
    let keys: Vec<P256PublicKey> = ctx.ids().map(|x| voters.public(x)).collect();
    let dealt: Vec<Vec<ShareCiphertext>> = ctx
        .ids()
        .map(|x| deal_refresh(x, ctx, &keys, r).expect("deal"))
        .collect();
    let new = shares
        .iter()
        .enumerate()
        .map(|(b, share)| {
            let mine: Vec<ShareCiphertext> = dealt.iter().map(|d| d[b].clone()).collect();
            let zs = voters.zs(share.index(), &mine);
            apply_refresh(share, &voters.public(share.index()), ctx, &mine, &zs).expect("apply")
        })
        .collect();
    (new, dealt)
}

fn points(shares: &[KeyShare]) -> Vec<(u64, Commitment)> {
    shares.iter().map(|s| (s.index(), s.commitment())).collect()
}

/// The OPRF output from evaluations of `shares` (exactly those) on a fresh blind of
/// `password`, or `None` where they combine to the identity.
fn output(shares: &[&KeyShare], password: &[u8], r: &mut rand::rngs::StdRng) -> Option<Vec<u8>> {
    let input = oprf_input(&account(), password).expect("short");
    let (blind, blinded) = Blind::start(&input, r).expect("blind");
    let evaluations: Vec<_> = shares
        .iter()
        .map(|s| (s.index(), evaluate_share(s, &blinded, r).0))
        .collect();
    let combined = combine(&evaluations).ok()?;
    Some(blind.finish(&input, &combined).expose().to_vec())
}

fn direct(key: &OprfKey, password: &[u8]) -> Vec<u8> {
    let input = oprf_input(&account(), password).expect("short");
    evaluate_directly(key, &input)
        .expect("direct")
        .expose()
        .to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Five holders, threshold 3, refreshed twice: every refresh passes the replicas'
    /// check, every share changes, and any three shares of one generation combine to the
    /// direct output.
    #[test]
    fn refreshed_shares_combine_to_the_same_output(seed in any::<u64>()) {
        let mut r = rng(seed);
        let key = OprfKey::generate(&mut r);
        let ids = [1u64, 2, 3, 4, 5];
        let voters = Voters::new(&ids, &mut r);
        let first = shares_of(&key, &ids, 3, &mut r);
        let (second, _) = refresh(&voters, &first, &context(3, &first), &mut r);
        prop_assert_eq!(check_refresh(&points(&first), &points(&second), 3), Ok(()));
        let (third, _) = refresh(&voters, &second, &context(3, &second), &mut r);
        prop_assert_eq!(check_refresh(&points(&second), &points(&third), 3), Ok(()));
        prop_assert_eq!(check_refresh(&points(&first), &points(&third), 3), Ok(()));
        for (old, new) in first.iter().zip(&second) {
            prop_assert_eq!(old.index(), new.index());
            prop_assert_ne!(old.secret(), new.secret());
        }
        let want = direct(&key, b"hunter2");
        for generation in [&second, &third] {
            for trio in [[0usize, 1, 2], [0, 2, 4], [2, 3, 4]] {
                let chosen: Vec<&KeyShare> = trio.iter().map(|i| &generation[*i]).collect();
                prop_assert_eq!(output(&chosen, b"hunter2", &mut r), Some(want.clone()));
            }
        }
    }

    /// The test: shares stolen from node 1 before a refresh plus shares of nodes 2
    /// (and 3, up to the threshold) after it combine to nothing useful: not the output,
    /// for any threshold, and the same shares from one side of the refresh do give it.
    #[test]
    fn a_share_from_before_a_refresh_does_not_combine_with_shares_after_it(
        seed in any::<u64>(),
        t in 2usize..=4,
    ) {
        let mut r = rng(seed);
        let key = OprfKey::generate(&mut r);
        let ids: Vec<u64> = (1..=(2 * t as u64 - 1)).collect();
        let voters = Voters::new(&ids, &mut r);
        let before = shares_of(&key, &ids, t, &mut r);
        let ctx = context(u16::try_from(t).expect("small"), &before);
        let (after, _) = refresh(&voters, &before, &ctx, &mut r);
        let want = direct(&key, b"correct horse");
        // Node 1's old share with nodes 2..=t's new ones.
        let mixed: Vec<&KeyShare> = std::iter::once(&before[0]).chain(&after[1..t]).collect();
        let got = output(&mixed, b"correct horse", &mut r);
        prop_assert!(got.as_ref() != Some(&want), "a mixed set gave the output");
        // Every mix of old and new shares (at least one of each) misses it.
        for old_count in 1..t {
            let mixed: Vec<&KeyShare> = before[..old_count].iter().chain(&after[old_count..t]).collect();
            prop_assert!(output(&mixed, b"correct horse", &mut r).as_ref() != Some(&want));
        }
        // Not vacuous: the same nodes all before, or all after, give it.
        let old: Vec<&KeyShare> = before[..t].iter().collect();
        let new: Vec<&KeyShare> = after[..t].iter().collect();
        prop_assert_eq!(output(&old, b"correct horse", &mut r), Some(want.clone()));
        prop_assert_eq!(output(&new, b"correct horse", &mut r), Some(want));
    }
}

#[test]
fn the_replicas_check_refuses_another_key_and_a_share_off_the_polynomial() {
    let mut r = rng(3);
    let key = OprfKey::generate(&mut r);
    let ids = [1u64, 2, 3, 4, 5];
    let voters = Voters::new(&ids, &mut r);
    let old = shares_of(&key, &ids, 3, &mut r);
    let (new, _) = refresh(&voters, &old, &context(3, &old), &mut r);
    // Honest, over all five or over the first three participants only.
    assert_eq!(check_refresh(&points(&old), &points(&new), 3), Ok(()));
    let (three, _) = refresh(&voters, &old[..3], &context(3, &old[..3]), &mut r);
    assert_eq!(check_refresh(&points(&old), &points(&three), 3), Ok(()));
    // A fresh sharing of another key: consistent, but not the record's key.
    let other = shares_of(&OprfKey::generate(&mut r), &ids, 3, &mut r);
    assert_eq!(
        check_refresh(&points(&old), &points(&other), 3),
        Err(OprfError::RefreshChangesKey)
    );
    // One new commitment replaced by its old one: off the new polynomial.
    let mut stale = points(&new);
    stale[4] = (5, old[4].commitment());
    assert_eq!(
        check_refresh(&points(&old), &stale, 3),
        Err(OprfError::InconsistentCommitment {
            index: 5,
            threshold: 3
        })
    );
    // Exactly t new shares, one of them old: consistent with some polynomial, but it
    // shares another key.
    let mut mixed = points(&three);
    mixed[0] = (1, old[0].commitment());
    assert_eq!(
        check_refresh(&points(&old), &mixed, 3),
        Err(OprfError::RefreshChangesKey)
    );
    // Fewer than t new shares, or old commitments of fewer than t: refused.
    assert!(matches!(
        check_refresh(&points(&old), &points(&new)[..2], 3),
        Err(OprfError::BadThreshold { .. })
    ));
    assert!(matches!(
        check_refresh(&points(&old)[..2], &points(&new), 3),
        Err(OprfError::BadThreshold { .. })
    ));
}

#[test]
fn a_participant_opens_only_pieces_of_this_refresh_addressed_to_it_one_per_dealer() {
    let mut r = rng(5);
    let key = OprfKey::generate(&mut r);
    let voters = Voters::new(&[1, 2, 3, 4], &mut r);
    let shares = shares_of(&key, &[1, 2, 3], 2, &mut r);
    let ctx = context(2, &shares);
    let keys = [voters.public(1), voters.public(2), voters.public(3)];
    let from: Vec<Vec<ShareCiphertext>> = (1..=3)
        .map(|x| deal_refresh(x, &ctx, &keys, &mut r).expect("deal"))
        .collect();
    let to_1: Vec<ShareCiphertext> = from.iter().map(|d| d[0].clone()).collect();
    let apply_as_1 = |pieces: &[ShareCiphertext], ctx: &RefreshContext| {
        let zs = voters.zs(1, pieces);
        apply_refresh(&shares[0], &voters.public(1), ctx, pieces, &zs)
    };
    // The honest call works.
    apply_as_1(&to_1, &ctx).expect("honest");
    // One dealer's pieces alone, or a piece missing: refused before anything is opened.
    assert!(matches!(
        apply_as_1(&to_1[..1], &ctx),
        Err(OprfError::WrongCount { .. })
    ));
    // Dealer 1's piece where dealer 2's belongs (a piece added twice): does not open.
    assert_eq!(
        apply_as_1(&[to_1[0].clone(), to_1[0].clone(), to_1[2].clone()], &ctx).unwrap_err(),
        OprfError::ShareRejected
    );
    // A piece addressed to participant 2: does not open with participant 1's key.
    assert_eq!(
        apply_as_1(
            &[from[0][1].clone(), to_1[1].clone(), to_1[2].clone()],
            &ctx
        )
        .unwrap_err(),
        OprfError::ShareRejected
    );
    // The node's registration share ciphertext passed off as a piece: refused.
    let registration = encrypt_share(
        &voters.public(1),
        &shares[0],
        &ShareContext {
            cluster_name: ctx.cluster_name.clone(),
            account: ctx.account.clone(),
            node_id: 1,
            guess_limit: ctx.guess_limit,
            reset_key: ctx.reset_key,
            commitment: shares[0].commitment(),
        },
        &mut r,
    );
    assert_eq!(
        apply_as_1(&[registration, to_1[1].clone(), to_1[2].clone()], &ctx).unwrap_err(),
        OprfError::ShareRejected
    );
    // The same pieces under another record, another refresh of this record (its
    // commitments after this one), another participant set, limit or threshold: refused.
    let (next, _) = refresh(&voters, &shares, &ctx, &mut r);
    let other_account = AccountId::parse("bob@example.com").expect("valid");
    for other in [
        RefreshContext {
            account: other_account,
            ..ctx.clone()
        },
        RefreshContext {
            version: ctx.version + 1,
            ..ctx.clone()
        },
        context(2, &next),
        RefreshContext {
            guess_limit: 11,
            ..ctx.clone()
        },
        RefreshContext {
            threshold: 3,
            ..ctx.clone()
        },
    ] {
        assert_eq!(
            apply_as_1(&to_1, &other).unwrap_err(),
            OprfError::ShareRejected
        );
    }
    // A dealer or a share that is not a participant, participants out of order, a
    // threshold above their number: refused.
    assert_eq!(
        deal_refresh(4, &ctx, &keys, &mut r).unwrap_err(),
        OprfError::NotAParticipant { index: 4 }
    );
    let outsider = shares_of(&key, &[4], 1, &mut r);
    let zs = voters.zs(4, &to_1);
    assert_eq!(
        apply_refresh(&outsider[0], &voters.public(4), &ctx, &to_1, &zs).unwrap_err(),
        OprfError::NotAParticipant { index: 4 }
    );
    let mut unordered = ctx.clone();
    unordered.participants.swap(0, 1);
    assert_eq!(
        deal_refresh(1, &unordered, &keys, &mut r).unwrap_err(),
        OprfError::ParticipantsUnordered
    );
    assert!(matches!(
        deal_refresh(1, &context(4, &shares), &keys, &mut r),
        Err(OprfError::BadThreshold { .. })
    ));
}

/// Each dealer's pieces are the values of one polynomial of degree `t - 1` that is 0 at 0
/// (so any `t` of them interpolate to 0, and the rest lie on it), and each participant's
/// new share is its old one plus the pieces dealt to it.
#[test]
fn pieces_are_a_sharing_of_zero_added_to_the_old_share() {
    let mut r = rng(9);
    let key = OprfKey::generate(&mut r);
    let ids = [1u64, 2, 3, 4, 5];
    let voters = Voters::new(&ids, &mut r);
    let shares = shares_of(&key, &ids, 3, &mut r);
    let ctx = context(3, &shares);
    let (new, dealt) = refresh(&voters, &shares, &ctx, &mut r);
    // values[a][b]: the piece dealer a dealt to participant b, opened by b.
    let values: Vec<Vec<Scalar>> = dealt
        .iter()
        .zip(ctx.ids())
        .map(|(d, dealer)| {
            d.iter()
                .zip(ctx.ids())
                .map(|(piece, x)| {
                    let z = voters
                        .key(x)
                        .diffie_hellman(piece.ephemeral_public())
                        .expect("ecdh");
                    let plain = super::super::share_ciphertext::open_scalar(
                        &z,
                        piece,
                        &voters.public(x),
                        &ctx.piece(dealer, x),
                    )
                    .expect("opens");
                    Option::<Scalar>::from(Scalar::from_canonical_bytes(*plain)).expect("canonical")
                })
                .collect()
        })
        .collect();
    let xs: Vec<Scalar> = ids[..3].iter().map(|x| Scalar::from(*x)).collect();
    for row in &values {
        assert_ne!(row[0], Scalar::ZERO, "a random polynomial");
        let at_zero = super::super::shamir::lagrange(&xs, &Scalar::ZERO);
        let zero: Scalar = at_zero.iter().zip(row).map(|(w, v)| w * v).sum();
        assert_eq!(zero, Scalar::ZERO);
        for (b, x) in ids.iter().enumerate().skip(3) {
            let w = super::super::shamir::lagrange(&xs, &Scalar::from(*x));
            let on: Scalar = w.iter().zip(row).map(|(w, v)| w * v).sum();
            assert_eq!(on, row[b]);
        }
    }
    for (b, (old, new)) in shares.iter().zip(&new).enumerate() {
        let pieces: Scalar = values.iter().map(|row| row[b]).sum();
        assert_eq!(new.secret() - old.secret(), pieces);
    }
}
