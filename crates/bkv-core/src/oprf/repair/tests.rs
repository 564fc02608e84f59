//! Share repair: the repaired share is the polynomial's value at the target (it combines with
//! the others to the direct output); what the target and fewer than `t - 1` helpers see is
//! the same whatever the other helpers' shares are; a helper opens nothing but pieces of
//! this repair addressed to it, one per dealer.

use curve25519_dalek::scalar::Scalar;
use proptest::prelude::*;

use super::super::shamir::lagrange;
use super::super::share_ciphertext::open_scalar;
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

fn context(target: u64, helpers: &[u64]) -> RepairContext {
    RepairContext {
        cluster_name: "test".into(),
        account: AccountId::parse("alice@example.com").expect("valid"),
        version: 7_000_000,
        guess_limit: 10,
        reset_key: [9; 32],
        target,
        helpers: helpers.to_vec(),
    }
}

/// Every ciphertext of one repair, as the parties made them.
struct Run {
    /// `dealt[a][b]`: the piece dealt by helper `a` to helper `b` (indices into helpers).
    dealt: Vec<Vec<ShareCiphertext>>,
    /// One sum per helper.
    sums: Vec<ShareCiphertext>,
}

/// Runs the three steps with the real functions; returns the target's share and the run.
fn repair(
    voters: &Voters,
    shares: &[KeyShare],
    ctx: &RepairContext,
    r: &mut rand::rngs::StdRng,
) -> (KeyShare, Run) {
    let keys: Vec<P256PublicKey> = ctx.helpers.iter().map(|h| voters.public(*h)).collect();
    let share_of = |id: u64| shares.iter().find(|s| s.index() == id).expect("a share");
    let dealt: Vec<Vec<ShareCiphertext>> = ctx
        .helpers
        .iter()
        .map(|h| deal(share_of(*h), ctx, &keys, r).expect("deal"))
        .collect();
    let target_key = voters.public(ctx.target);
    let sums: Vec<ShareCiphertext> = ctx
        .helpers
        .iter()
        .enumerate()
        .map(|(b, h)| {
            let mine: Vec<ShareCiphertext> = dealt.iter().map(|d| d[b].clone()).collect();
            let zs = voters.zs(*h, &mine);
            combine_pieces((*h, &voters.public(*h)), ctx, &mine, &zs, &target_key, r)
                .expect("combine")
        })
        .collect();
    let commitments: Vec<(u64, Commitment)> = ctx
        .helpers
        .iter()
        .map(|h| (*h, share_of(*h).commitment()))
        .collect();
    let expected = repaired_commitment(&commitments, ctx.target).expect("commitment");
    let zs = voters.zs(ctx.target, &sums);
    let share = take_repaired(&target_key, ctx, &sums, &zs, &expected).expect("take");
    (share, Run { dealt, sums })
}

/// Opens a piece or a sum with the software key of `id`, under `context`.
fn open_as(voters: &Voters, id: u64, ct: &ShareCiphertext, context: &[u8]) -> Scalar {
    let z = voters
        .key(id)
        .diffie_hellman(ct.ephemeral_public())
        .expect("ecdh");
    let plain = open_scalar(&z, ct, &voters.public(id), context).expect("opens");
    Option::from(Scalar::from_canonical_bytes(*plain)).expect("canonical")
}

/// The shares of `key` for `ids`, threshold `t`, without their commitments.
fn shares_of(key: &OprfKey, ids: &[u64], t: usize, r: &mut rand::rngs::StdRng) -> Vec<KeyShare> {
    split(key, ids, t, r)
        .expect("split")
        .into_iter()
        .map(|(s, _)| s)
        .collect()
}

fn secret(share: &KeyShare) -> Scalar {
    *share.secret()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Three of five replaced one after the other (each repair by a different set of
    /// helpers, the later ones among the repaired): every repaired share is `f(x_j)`, and
    /// evaluations of any `t` shares, old and repaired, combine to the direct output.
    #[test]
    fn a_repaired_share_is_the_polynomials_value_at_the_target(seed in any::<u64>()) {
        let mut r = rng(seed);
        let key = OprfKey::generate(&mut r);
        let original = [1u64, 2, 3, 4, 5];
        let voters = Voters::new(&[1, 2, 3, 4, 5, 6, 7, 8], &mut r);
        let mut shares: Vec<KeyShare> = shares_of(&key, &original, 3, &mut r);
        for (target, helpers) in [(6u64, [1u64, 2, 3]), (7, [3, 4, 6]), (8, [2, 6, 7])] {
            let (repaired, _) = repair(&voters, &shares, &context(target, &helpers), &mut r);
            shares.push(repaired);
        }
        let direct_of_poly = |x: u64| {
            // f(x) from shares 1, 2, 3 (the original polynomial).
            let xs: Vec<Scalar> = [1u64, 2, 3].iter().map(|i| Scalar::from(*i)).collect();
            let w = lagrange(&xs, &Scalar::from(x));
            w[0] * secret(&shares[0]) + w[1] * secret(&shares[1]) + w[2] * secret(&shares[2])
        };
        for s in &shares[5..] {
            prop_assert_eq!(secret(s), direct_of_poly(s.index()));
        }
        let input = oprf_input(&context(1, &[2]).account, b"hunter2").expect("short");
        let direct = evaluate_directly(&key, &input).expect("direct");
        for trio in [[6usize, 7, 8], [1, 6, 7], [4, 5, 7]] {
            let (blind, blinded) = Blind::start(&input, &mut r).expect("blind");
            let evaluations: Vec<_> = trio
                .iter()
                .map(|i| {
                    let share = &shares[*i - 1];
                    let (z, _) = evaluate_share(share, &blinded, &mut r);
                    (share.index(), z)
                })
                .collect();
            let combined = combine(&evaluations).expect("combine");
            let out = blind.finish(&input, &combined);
            prop_assert_eq!(out.expose(), direct.expose());
        }
    }

    /// Five voters, threshold 3; node 6 repaired by helpers 1, 2 and 3. The target and helper
    /// 1 together (two parties, one fewer than the threshold) hold: shares 1 and 6, every
    /// piece addressed to helper 1, the pieces helper 1 dealt, and the three sums. For any
    /// other value of helper 2's share (with helper 3's the one the polynomial through
    /// shares 1 and 6 then gives), there are pieces of helpers 2 and 3, each set summing
    /// to their weighted shares, that give exactly that view: it says nothing of share 2
    /// or 3. Three parties (the target and helpers 1 and 2) compute share 3.
    #[test]
    fn the_target_and_one_helper_learn_nothing_of_another_share(seed in any::<u64>()) {
        let mut r = rng(seed);
        let key = OprfKey::generate(&mut r);
        let voters = Voters::new(&[1, 2, 3, 4, 5, 6], &mut r);
        let shares: Vec<KeyShare> = shares_of(&key, &[1, 2, 3, 4, 5], 3, &mut r);
        let ctx = context(6, &[1, 2, 3]);
        let (k6, run) = repair(&voters, &shares, &ctx, &mut r);
        let (k1, k2, k3) = (secret(&shares[0]), secret(&shares[1]), secret(&shares[2]));

        // The coalition's view, opened with the keys of node 1 and node 6.
        let to_1: Vec<Scalar> = (0..3)
            .map(|a| open_as(&voters, 1, &run.dealt[a][0], &ctx.piece(ctx.helpers[a], 1)))
            .collect();
        let sums: Vec<Scalar> = (0..3)
            .map(|b| open_as(&voters, 6, &run.sums[b], &ctx.sum(ctx.helpers[b])))
            .collect();
        // What helper 1 dealt it knows from its own randomness; here read back by the
        // recipients' keys, which the test has.
        let by_1: Vec<Scalar> = (0..3)
            .map(|b| open_as(&voters, ctx.helpers[b], &run.dealt[0][b], &ctx.piece(1, ctx.helpers[b])))
            .collect();
        let hidden = |a: usize, b: usize| {
            open_as(&voters, ctx.helpers[b], &run.dealt[a][b], &ctx.piece(ctx.helpers[a], ctx.helpers[b]))
        };

        // Another world: share 2 is anything; shares 1 and 6 the same, so share 3 follows.
        let k2_other = Scalar::random(&mut r);
        prop_assume!(k2_other != k2);
        let xs: Vec<Scalar> = [1u64, 2, 3].iter().map(|i| Scalar::from(*i)).collect();
        let w6 = lagrange(&xs, &Scalar::from(6u64));
        // k6 = w6[0] k1 + w6[1] k2 + w6[2] k3, kept with k2 -> k2_other:
        let k3_other = k3 + w6[1] * (k2 - k2_other) * w6[2].invert();
        prop_assert_eq!(w6[0] * k1 + w6[1] * k2_other + w6[2] * k3_other, secret(&k6));
        let (c2_shift, c3_shift) = (w6[1] * (k2_other - k2), w6[2] * (k3_other - k3));
        // Pieces of the other world: those the coalition sees unchanged, the shifts put on
        // the pieces 2 -> 3 and 3 -> 3, which only helper 3 sees.
        let other = |a: usize, b: usize| match (a, b) {
            (1, 2) => hidden(1, 2) + c2_shift,
            (2, 2) => hidden(2, 2) + c3_shift,
            _ => hidden(a, b),
        };
        // Each dealer's pieces sum to its weighted share in the other world...
        prop_assert_eq!(other(1, 0) + other(1, 1) + other(1, 2), w6[1] * k2_other);
        prop_assert_eq!(other(2, 0) + other(2, 1) + other(2, 2), w6[2] * k3_other);
        // ...and the coalition's view is the same: pieces to 1, pieces by 1, every sum.
        for a in 0..3 {
            prop_assert_eq!(other(a, 0), to_1[a]);
            prop_assert_eq!(other(0, a), by_1[a]);
            let sum_b = other(0, a) + other(1, a) + other(2, a);
            prop_assert_eq!(sum_b, sums[a]);
        }
        // Not vacuous: three parties (the threshold) have share 3 from shares 1, 2, 6.
        let xs3: Vec<Scalar> = [1u64, 2, 6].iter().map(|i| Scalar::from(*i)).collect();
        let w3 = lagrange(&xs3, &Scalar::from(3u64));
        prop_assert_eq!(w3[0] * k1 + w3[1] * k2 + w3[2] * secret(&k6), k3);
    }
}

#[test]
fn a_helper_opens_only_pieces_of_this_repair_addressed_to_it_one_per_dealer() {
    let mut r = rng(5);
    let key = OprfKey::generate(&mut r);
    let voters = Voters::new(&[1, 2, 3, 4], &mut r);
    let shares: Vec<KeyShare> = shares_of(&key, &[1, 2, 3], 2, &mut r);
    let ctx = context(4, &[1, 2]);
    let keys = [voters.public(1), voters.public(2)];
    let from_1 = deal(&shares[0], &ctx, &keys, &mut r).expect("deal");
    let from_2 = deal(&shares[1], &ctx, &keys, &mut r).expect("deal");
    let target = voters.public(4);
    let combine_as_1 = |pieces: &[ShareCiphertext], ctx: &RepairContext| {
        let zs = voters.zs(1, pieces);
        combine_pieces(
            (1, &voters.public(1)),
            ctx,
            pieces,
            &zs,
            &target,
            &mut rng(1),
        )
    };
    // The honest call works.
    combine_as_1(&[from_1[0].clone(), from_2[0].clone()], &ctx).expect("honest");
    // One dealer's pieces alone (its weighted share would come back): refused.
    assert!(matches!(
        combine_as_1(&[from_1[0].clone()], &ctx),
        Err(OprfError::WrongCount { .. })
    ));
    // Dealer 1's piece where dealer 2's belongs: does not open under dealer 2's context.
    assert_eq!(
        combine_as_1(&[from_1[0].clone(), from_1[0].clone()], &ctx).unwrap_err(),
        OprfError::ShareRejected
    );
    // A piece addressed to helper 2: does not open with helper 1's key.
    assert_eq!(
        combine_as_1(&[from_1[1].clone(), from_2[0].clone()], &ctx).unwrap_err(),
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
        combine_as_1(&[registration, from_2[0].clone()], &ctx).unwrap_err(),
        OprfError::ShareRejected
    );
    // Pieces of this repair under another target, version or helper set: refused.
    for other in [
        RepairContext {
            target: 3,
            ..ctx.clone()
        },
        RepairContext {
            version: ctx.version + 1,
            ..ctx.clone()
        },
        RepairContext {
            guess_limit: 11,
            ..ctx.clone()
        },
    ] {
        assert_eq!(
            combine_as_1(&[from_1[0].clone(), from_2[0].clone()], &other).unwrap_err(),
            OprfError::ShareRejected
        );
    }
    // A helper not in the set, a target among the helpers, helpers out of order: refused.
    let zs = voters.zs(3, &[from_1[0].clone(), from_2[0].clone()]);
    assert_eq!(
        combine_pieces(
            (3, &voters.public(3)),
            &ctx,
            &[from_1[0].clone(), from_2[0].clone()],
            &zs,
            &target,
            &mut r
        )
        .unwrap_err(),
        OprfError::NotAHelper { index: 3 }
    );
    assert!(deal(&shares[0], &context(2, &[1, 2]), &keys, &mut r).is_err());
    assert_eq!(
        deal(&shares[0], &context(4, &[2, 1]), &keys, &mut r).unwrap_err(),
        OprfError::HelpersUnordered
    );
}

#[test]
fn the_target_keeps_a_share_only_if_it_matches_the_commitment() {
    let mut r = rng(6);
    let key = OprfKey::generate(&mut r);
    let voters = Voters::new(&[1, 2, 3, 4], &mut r);
    let shares: Vec<KeyShare> = shares_of(&key, &[1, 2, 3], 2, &mut r);
    let ctx = context(4, &[1, 2]);
    let (_, run) = repair(&voters, &shares, &ctx, &mut r);
    let target = voters.public(4);
    let zs = voters.zs(4, &run.sums);
    // The commitment of another point of the polynomial (node 3's): refused.
    assert_eq!(
        take_repaired(&target, &ctx, &run.sums, &zs, &shares[2].commitment()).unwrap_err(),
        OprfError::ShareMismatch
    );
    // A sum missing: refused before anything is opened.
    assert!(matches!(
        take_repaired(
            &target,
            &ctx,
            &run.sums[..1],
            &zs[..1],
            &shares[2].commitment()
        ),
        Err(OprfError::WrongCount { .. })
    ));
    // The commitment every node computes is the share's.
    let expected = repaired_commitment(
        &[(1, shares[0].commitment()), (2, shares[1].commitment())],
        4,
    )
    .expect("commitment");
    let k4 = take_repaired(&target, &ctx, &run.sums, &zs, &expected).expect("take");
    assert_eq!(k4.commitment(), expected);
    // The target among the helpers has no commitment of its own to compute.
    assert_eq!(
        repaired_commitment(&[(1, shares[0].commitment())], 1).unwrap_err(),
        OprfError::DuplicateIndex { index: 1 }
    );
}
