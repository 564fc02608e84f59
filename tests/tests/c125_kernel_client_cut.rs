//! A node cut off from the clients but not from its peers, on the lab harness
//! (`bkv_tests::netns`): the packet filter drops the clients' packets to a follower's client
//! port and its answers, while Raft between the nodes flows. Clients that start there fail
//! over to the others (honest recoveries and registrations keep succeeding), attackers aimed
//! at it get nothing; then the same for the leader, which keeps leading (its peers hear it)
//! while every client write reaches it forwarded by a follower. Every checker holds.

use std::time::Duration;

use bkv_tests::chaos::lab::lab_options;
use bkv_tests::chaos::{Attacker, ChaosCluster, Honest, Load, LoadSpec, Outcome, VerifyOptions};
use bkv_tests::netns;

#[test]
fn a_node_cut_off_from_clients_but_not_peers_keeps_every_invariant() -> anyhow::Result<()> {
    netns::run(
        "a_node_cut_off_from_clients_but_not_peers_keeps_every_invariant",
        3,
        Duration::from_secs(900),
        |lab| async move {
            let mut cc = ChaosCluster::start("c125_kernel_client_cut", lab_options(3, lab)).await?;
            let load = Load::start(
                &cc,
                &LoadSpec {
                    honest: 3,
                    victims: 2,
                    attackers: 2,
                    seed: 125,
                    ..LoadSpec::default()
                },
            )
            .await?;
            let ids = cc.cluster.ids();
            let victim = load.victim();
            let leader = cc.observe_leader(Duration::from_secs(20)).await?;
            let follower = *ids.iter().find(|i| **i != leader).unwrap_or(&1);
            for (phase, node) in [("follower", follower), ("leader", leader)] {
                cc.nemesis.cut_from_clients(&cc.cluster, node)?;
                // Attackers aimed at it get nothing.
                let a = Attacker::new(format!("cut-{phase}"))
                    .guess(&cc.kit, &cc.history, &victim, node)
                    .await?;
                anyhow::ensure!(a.ticket.is_none(), "the cut-off {phase} answered a client");
                // Honest clients whose first endpoint is the cut node fail over.
                let first = cc.kit.nodes().iter().position(|n| *n == node).unwrap_or(0);
                let probe = Honest::new(
                    format!("cut-probe-{phase}"),
                    format!("cut-probe-{phase}"),
                    &cc.canaries,
                );
                let registered = probe
                    .register(&cc.kit, &cc.history, &cc.canaries, None, first)
                    .await?;
                anyhow::ensure!(
                    registered.is_some(),
                    "a client starting at the cut-off {phase} could not register elsewhere"
                );
                let recovered = probe.recover(&cc.kit, &cc.history, first).await?;
                anyhow::ensure!(
                    recovered == Outcome::Ok,
                    "a client starting at the cut-off {phase} could not recover: {recovered:?}"
                );
                // Raft still flows: the cut node follows (or keeps leading).
                tokio::time::sleep(Duration::from_secs(3)).await;
                cc.sample_digests().await;
                let view = cc.cluster.node_view(node).await?;
                anyhow::ensure!(
                    view.serving,
                    "the {phase} cut off from the clients stopped serving its peers: {}",
                    view.not_serving_reason
                );
                println!(
                    "{phase} {node} cut off from the clients: still serving, term {}",
                    view.term
                );
                cc.nemesis.heal(&mut cc.cluster).await?;
            }
            let (_, accounts) = load.stop().await?;
            let summary = cc.verify(&accounts, &VerifyOptions::default()).await?;
            let cut = summary
                .figures
                .get("kernel.packets_cut")
                .copied()
                .unwrap_or(0);
            println!("client packets dropped at the cut: {cut}");
            anyhow::ensure!(cut > 0, "the cut dropped no packet");
            Ok(())
        },
    )
}
