//! Replay and duplicate storm: one attempt (same id, same blinded element) sent to every node
//! at once, many times over, while peer connections are reset; the same attempt id with
//! other blinded elements; leaked honest finishes replayed on every node, as they were and
//! with forged reset signatures; logins on the attackers' own attempts on every node and
//! forged finalizations and reset signatures on their tickets. Exactly one charge per
//! distinct attempt is committed, replays and forgeries undo no charge, and the usual
//! checkers hold.

use std::time::Duration;

use bkv_tests::chaos::audit::Audit;
use bkv_tests::chaos::{Attacker, ChaosCluster, Load, LoadSpec, VerifyOptions, chaos_options};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replays_and_duplicates_never_buy_a_guess() -> anyhow::Result<()> {
    let mut cc = ChaosCluster::start("c80_replay_storm", chaos_options(3)).await?;
    let load = Load::start(
        &cc,
        &LoadSpec {
            honest: 1,
            victims: 2,
            attackers: 4,
            guess_limit: 6,
            pause: Duration::from_millis(15),
            replays: true,
            seed: 80,
        },
    )
    .await?;
    let ids = cc.cluster.ids();
    let target = load
        .accounts
        .iter()
        .find(|h| h.account.starts_with("victim"))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no victim"))?;
    // A fresh account only the storm touches, so its charges can be counted exactly.
    let storm_owner = bkv_tests::chaos::Honest::new(
        "storm-owner",
        format!("storm-{}", target.account),
        &cc.canaries,
    );
    let version = storm_owner
        .register(&cc.kit, &cc.history, &cc.canaries, Some(6), 0)
        .await?
        .ok_or_else(|| anyhow::anyhow!("storm account not registered"))?;
    let leak = storm_owner
        .leaky_recover(&cc.kit, &cc.history, ids[0])
        .await?;

    // Phase 1: three attempts, each sent 8 times to every node concurrently, with resets.
    let storm = Attacker::new("storm");
    for round in 0..3 {
        let attempt = storm
            .guess(
                &cc.kit,
                &cc.history,
                &storm_owner.account,
                ids[round % ids.len()],
            )
            .await?;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..8 {
            for node in &ids {
                let (kit, h, a, node) =
                    (cc.kit.clone(), cc.history.clone(), attempt.clone(), *node);
                tasks.spawn(async move {
                    Attacker::new(format!("storm-{i}"))
                        .start(&kit, &h, a, node, "recover_start")
                        .await
                });
            }
        }
        cc.nemesis.reset_connections(&cc.cluster)?;
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        // The same id with another request: refused everywhere.
        for node in &ids {
            storm
                .conflict(&cc.kit, &cc.history, &attempt, *node)
                .await?;
        }
        // The owner's leaked finish replayed on every node, as it was and with a forged
        // reset signature.
        if let Some(leak) = &leak {
            for node in &ids {
                storm.replay(&cc.kit, &cc.history, leak, *node).await?;
                storm
                    .replay_forged_reset(&cc.kit, &cc.history, leak, *node)
                    .await?;
            }
        }
        // Logins on the storm's own attempt on every node (they charge nothing), and forged
        // finalizations and reset signatures with each ticket.
        for node in &ids {
            let logged = storm
                .login(&cc.kit, &cc.history, attempt.clone(), *node)
                .await?;
            if let Some(ticket) = &logged.ticket {
                storm
                    .forge_finish(&cc.kit, &cc.history, &storm_owner.account, ticket, *node)
                    .await?;
            }
        }
    }
    cc.sample_digests().await;
    let (_, accounts) = load.stop().await?;
    let summary = cc.verify(&accounts, &VerifyOptions::default()).await?;

    // The storm account: one charge by the owner's leaky recovery (reset by it), three by
    // the storm's attempts, whatever the duplicates and replays.
    let audit = Audit::read(cc.cluster.dir())?;
    let charges = audit
        .merged()
        .iter()
        .filter(|l| l.kind == "guess_charged" && l.version == Some(version))
        .count();
    assert_eq!(charges, 1 + 3, "charges on the storm account");
    // ... and none of the replays, logins or forged finishes reset them.
    let token = cc.kit.token(&storm_owner.account);
    let status = bkv_tests::raw::status(cc.kit.channel(ids[0])?, Some(&token))
        .await?
        .map_err(|s| anyhow::anyhow!("status of the storm account: {s:?}"))?;
    assert_eq!(status.guesses_used, 3, "guesses used on the storm account");
    assert_eq!(summary.figures["guess_bound.beyond_limit"], 0);
    Ok(())
}
