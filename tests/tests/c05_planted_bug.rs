//! The checkers catch a real bug in a real node: every node runs with the planted bug of the
//! failpoints build (`planted_charge_reuse`: half of the recovery starts are answered with
//! the account's last charge instead of a committed one), under a seeded load of owners and
//! attackers. In protocol v2 that alone releases nothing: each share-holder evaluates only a
//! charge its own applied state holds for this attempt and blinded element. So the nodes
//! also evaluate their shares unchecked (`lie_evaluate_unchecked`), as nodes whose share
//! evaluation has the bug too. The run must FAIL: the guess bound finds password tests
//! (share evaluations) that map to no committed charge, and the share-evaluation checker
//! finds nodes that evaluated one charge for several attempts. The seed and the part of the
//! history that broke the invariant are printed, as for any failing run. Should this test
//! ever pass a run with the bug on, the checkers have regressed.

use std::time::Duration;

use bkv_tests::chaos::excerpt::excerpt;
use bkv_tests::chaos::{ChaosCluster, Load, LoadSpec, VerifyOptions, chaos_options};

const SEED: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_answers_without_a_committed_charge_fails_the_guess_bound() -> anyhow::Result<()>
{
    let mut options = chaos_options(3);
    options.node_env.push((
        "BKV_FAILPOINTS".into(),
        "planted_charge_reuse=50%error;lie_evaluate_unchecked=on".into(),
    ));
    let mut cc = ChaosCluster::start("c05_planted_bug", options).await?;
    let load = Load::start(
        &cc,
        &LoadSpec {
            honest: 1,
            victims: 2,
            attackers: 3,
            guess_limit: 3,
            pause: Duration::from_millis(30),
            replays: true,
            seed: SEED,
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    cc.sample_digests().await;
    let (_, accounts) = load.stop().await?;
    // Judged as any run, without failing here: this run must fail.
    let summary = cc
        .observe_and_check(&accounts, &VerifyOptions::default())
        .await?;
    for v in &summary.verdicts {
        println!("{}", v.summary());
    }
    let gb = summary
        .verdict("guess_bound")
        .ok_or_else(|| anyhow::anyhow!("no guess_bound verdict"))?;
    anyhow::ensure!(
        !gb.passed(),
        "seed {SEED}: the planted bug went unnoticed: {}",
        gb.summary()
    );
    let uncharged = gb
        .violations
        .iter()
        .filter(|v| v.contains("maps to no distinct committed charge"))
        .count();
    anyhow::ensure!(
        uncharged > 0,
        "seed {SEED}: no release was found without a committed charge: {}",
        gb.summary()
    );
    let se = summary
        .verdict("share_evaluations")
        .ok_or_else(|| anyhow::anyhow!("no share_evaluations verdict"))?;
    anyhow::ensure!(
        se.violations
            .iter()
            .any(|v| v.contains("was answered for attempt") || v.contains("twice")),
        "seed {SEED}: no charge evaluated for two attempts was found: {}",
        se.summary()
    );
    let shown = excerpt(&cc.history.entries(), &summary.verdicts);
    anyhow::ensure!(
        shown.contains("\"released\":true"),
        "the excerpt shows no release:\n{shown}"
    );
    println!(
        "CHAOS FAILURE (expected, planted bug) seed {SEED}: guess_bound VIOLATED ({uncharged} \
         releases without a committed charge, {} guesses beyond the limit), history {}\n{shown}",
        gb.figures.get("beyond_limit").copied().unwrap_or(0),
        cc.history
            .path()
            .map_or_else(|| "-".into(), |p| p.display().to_string()),
    );
    Ok(())
}
