//! [`Nemesis`]: the faults a chaos run injects, each recorded in the [`History`] as a
//! `fault` entry; partitions that leave a node in a minority, and storage failures, also open
//! a `fail_closed` window for the node (closed by [`Nemesis::heal`] or when the fault is
//! undone), in which it must release nothing. A failing HSM opens a `keys_closed` window
//! instead: the node can open no record and seal no ticket, so no login and no key may come
//! from it; a password test it serves is still charged through Raft and evaluated by the
//! share-holders (protocol v2), which the guess bound checks. Link faults go through the
//! cluster's peer proxy, or through the kernel when the cluster runs in a lab ([`kernel`]).

mod kernel;

use std::collections::BTreeSet;
use std::time::Duration;

use super::history::{Entry, History, Role};
use super::proxy::Fault;
use crate::cluster::Cluster;
use crate::node::ProcessState;

/// The failpoints of the node's storage: a node learns that they fail only when it next
/// writes.
const STORAGE_FAILPOINTS: &[&str] = &[
    "log_append",
    "log_flush",
    "vote_save",
    "sm_apply",
    "snapshot_persist",
];

/// Whether failpoint `spec` sets a storage failpoint.
fn names_storage(spec: &str) -> bool {
    spec.split(';')
        .filter_map(|e| e.split('=').next())
        .any(|name| STORAGE_FAILPOINTS.contains(&name.trim()))
}

/// Injects faults into a cluster and records them.
#[derive(Debug)]
pub struct Nemesis {
    history: History,
    /// Faults injected so far.
    pub faults: u64,
    fail_closed: BTreeSet<u64>,
    keys_closed: BTreeSet<u64>,
    failpoints: BTreeSet<u64>,
    kernel: kernel::KernelState,
}

impl Nemesis {
    /// A nemesis writing to `history`.
    pub fn new(history: History) -> Self {
        Self {
            history,
            faults: 0,
            fail_closed: BTreeSet::new(),
            keys_closed: BTreeSet::new(),
            failpoints: BTreeSet::new(),
            kernel: kernel::KernelState::default(),
        }
    }

    fn record(&mut self, entry: Entry) {
        self.faults += 1;
        self.history.info(entry);
    }

    /// Opens a fail-closed window for `node` (it must release nothing until it closes).
    pub fn begin_fail_closed(&mut self, node: u64, why: &str) {
        if self.fail_closed.insert(node) {
            self.history.info(
                Entry::new(Role::Nemesis, "nemesis", "fail_closed_begin")
                    .node(node)
                    .detail(why),
            );
        }
    }

    /// Closes `node`'s fail-closed window.
    pub fn end_fail_closed(&mut self, node: u64) {
        if self.fail_closed.remove(&node) {
            self.history
                .info(Entry::new(Role::Nemesis, "nemesis", "fail_closed_end").node(node));
        }
    }

    /// Opens a keys-closed window for `node` (no login and no key may come from it until it
    /// closes).
    pub fn begin_keys_closed(&mut self, node: u64, why: &str) {
        if self.keys_closed.insert(node) {
            self.history.info(
                Entry::new(Role::Nemesis, "nemesis", "keys_closed_begin")
                    .node(node)
                    .detail(why),
            );
        }
    }

    /// Closes `node`'s keys-closed window.
    pub fn end_keys_closed(&mut self, node: u64) {
        if self.keys_closed.remove(&node) {
            self.history
                .info(Entry::new(Role::Nemesis, "nemesis", "keys_closed_end").node(node));
        }
    }

    /// Cuts the links between `groups` both ways with `fault` (`Drop` or `Blackhole`); every
    /// node of a group without a majority of `voters` gets a fail-closed window.
    pub fn partition(
        &mut self,
        cluster: &Cluster,
        groups: &[Vec<u64>],
        fault: Fault,
        voters: usize,
    ) -> anyhow::Result<()> {
        match cluster.proxy() {
            Some(p) => p.partition(groups, fault),
            None => self.kernel_partition(cluster, groups, fault)?,
        }
        let all: Vec<u64> = groups.iter().flatten().copied().collect();
        self.record(
            Entry::new(Role::Nemesis, "nemesis", "fault")
                .nodes(&all)
                .detail(format!("partition {groups:?} by {fault:?}")),
        );
        if matches!(fault, Fault::Drop | Fault::Blackhole) {
            for g in groups {
                if g.len() * 2 <= voters {
                    for n in g {
                        self.begin_fail_closed(*n, "in a minority partition");
                    }
                }
            }
        }
        Ok(())
    }

    /// Cuts `node` off from `others` both ways.
    pub fn isolate(
        &mut self,
        cluster: &Cluster,
        node: u64,
        others: &[u64],
        fault: Fault,
    ) -> anyhow::Result<()> {
        let voters = others.len() + 1;
        self.partition(cluster, &[vec![node], others.to_vec()], fault, voters)
    }

    /// Sets one directed link's fault (one-way blackhole, delay...).
    pub fn link(
        &mut self,
        cluster: &Cluster,
        from: u64,
        to: u64,
        fault: Fault,
    ) -> anyhow::Result<()> {
        match cluster.proxy() {
            Some(p) => p.set(from, to, fault),
            None => self.kernel_link(cluster, from, to, fault)?,
        }
        self.record(
            Entry::new(Role::Nemesis, "nemesis", "fault")
                .nodes(&[from, to])
                .detail(format!("link {from}->{to} {fault:?}")),
        );
        Ok(())
    }

    /// Resets every open peer connection.
    pub fn reset_connections(&mut self, cluster: &Cluster) -> anyhow::Result<u64> {
        let n = match cluster.proxy() {
            Some(p) => p.reset_all(),
            None => self.kernel_reset(cluster)?,
        };
        self.record(
            Entry::new(Role::Nemesis, "nemesis", "fault").detail(format!("reset {n} connections")),
        );
        Ok(n)
    }

    /// kill -9.
    pub fn kill9(&mut self, cluster: &mut Cluster, node: u64) -> anyhow::Result<()> {
        cluster.kill9(node)?;
        self.record(
            Entry::new(Role::Nemesis, "nemesis", "fault")
                .node(node)
                .detail("kill -9"),
        );
        Ok(())
    }

    /// SIGSTOP.
    pub fn sigstop(&mut self, cluster: &mut Cluster, node: u64) -> anyhow::Result<()> {
        cluster.sigstop(node)?;
        self.record(
            Entry::new(Role::Nemesis, "nemesis", "fault")
                .node(node)
                .detail("SIGSTOP"),
        );
        Ok(())
    }

    /// SIGCONT.
    pub fn sigcont(&mut self, cluster: &mut Cluster, node: u64) -> anyhow::Result<()> {
        cluster.sigcont(node)?;
        self.history.info(
            Entry::new(Role::Nemesis, "nemesis", "undo")
                .node(node)
                .detail("SIGCONT"),
        );
        Ok(())
    }

    /// Starts a node that is down again (same data dir).
    pub async fn restart(&mut self, cluster: &mut Cluster, node: u64) -> anyhow::Result<()> {
        cluster.restart(node).await?;
        self.history.info(
            Entry::new(Role::Nemesis, "nemesis", "undo")
                .node(node)
                .detail("restart"),
        );
        Ok(())
    }

    /// Makes `node`'s HSM fail to seal and unseal under the cluster key
    /// (`hsm_seal=error;hsm_unseal=error`) and opens a keys-closed window for it.
    pub async fn hsm_failure(&mut self, cluster: &Cluster, node: u64) -> anyhow::Result<()> {
        let spec = "hsm_seal=error;hsm_unseal=error";
        self.failpoint(cluster, node, spec, false).await?;
        self.begin_keys_closed(node, &format!("failpoint {spec}"));
        Ok(())
    }

    /// Sets failpoints on a running node (`PUT /failpoints`). `fail_closed` opens a window
    /// for the node (storage made to fail).
    pub async fn failpoint(
        &mut self,
        cluster: &Cluster,
        node: u64,
        spec: &str,
        fail_closed: bool,
    ) -> anyhow::Result<()> {
        let answer = cluster
            .node(node)?
            .http_send("PUT", "/failpoints", spec, Duration::from_secs(3))
            .await?;
        anyhow::ensure!(
            answer.status == 200,
            "node {node}: PUT /failpoints {spec:?} answered {} {} (is it the failpoints build?)",
            answer.status,
            answer.body.trim()
        );
        self.failpoints.insert(node);
        self.record(
            Entry::new(Role::Nemesis, "nemesis", "fault")
                .node(node)
                .detail(format!("failpoint {spec}")),
        );
        if fail_closed {
            if names_storage(spec) {
                self.begin_when_stopped(cluster, node, spec).await;
            } else {
                self.begin_fail_closed(node, &format!("failpoint {spec}"));
            }
        }
        Ok(())
    }

    /// Opens `node`'s fail-closed window once its Raft has stopped on storage failpoint
    /// `spec` (waiting up to 10 s). Until then the node has not met the failure: a follower learns
    /// of it at the next append it receives, and may meanwhile forward a write the majority
    /// commits and answer it, which is safe (the guess bound judges that answer) but not
    /// failing closed.
    pub async fn begin_when_stopped(&mut self, cluster: &Cluster, node: u64, spec: &str) {
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(view) = cluster.node_view(node).await
                && !view.serving
                && view.not_serving_reason.contains("raft stopped")
            {
                self.begin_fail_closed(
                    node,
                    &format!(
                        "failpoint {spec}, raft stopped {} ms after it was set",
                        started.elapsed().as_millis()
                    ),
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.history.info(
            Entry::new(Role::Nemesis, "nemesis", "note")
                .node(node)
                .detail(format!(
                    "failpoint {spec}: raft still running after 10 s, no fail-closed window"
                )),
        );
    }

    /// Turns a node's failpoints off (`DELETE /failpoints`), if it is up.
    pub async fn clear_failpoints(&mut self, cluster: &Cluster, node: u64) -> anyhow::Result<()> {
        let answer = cluster
            .node(node)?
            .http_send("DELETE", "/failpoints", "", Duration::from_secs(3))
            .await?;
        anyhow::ensure!(
            answer.status == 200,
            "node {node}: DELETE /failpoints failed"
        );
        self.failpoints.remove(&node);
        self.history.info(
            Entry::new(Role::Nemesis, "nemesis", "undo")
                .node(node)
                .detail("failpoints cleared"),
        );
        Ok(())
    }

    /// Undoes every fault: fail-closed and keys-closed windows close, links pass (proxy and kernel faults),
    /// frozen nodes continue, failpoints are cleared, nodes that are down restart (a node
    /// whose Raft stopped on an injected failure, or whose disk was full, is restarted too).
    /// Records `heal`.
    pub async fn heal(&mut self, cluster: &mut Cluster) -> anyhow::Result<()> {
        // Windows close before any fault is undone: a request stalled by a cut link (its
        // bytes held by the proxy, or its packets retransmitted by TCP) may reach the
        // majority once the link passes again and be answered then, properly committed.
        let windows: Vec<u64> = self.fail_closed.iter().copied().collect();
        for n in windows {
            self.end_fail_closed(n);
        }
        let windows: Vec<u64> = self.keys_closed.iter().copied().collect();
        for n in windows {
            self.end_keys_closed(n);
        }
        if let Some(p) = cluster.proxy() {
            p.heal();
        }
        self.heal_kernel(cluster).await?;
        for id in cluster.ids() {
            if cluster.node(id)?.state() == ProcessState::Stopped {
                cluster.sigcont(id)?;
            }
        }
        let broken: Vec<u64> = self.failpoints.iter().copied().collect();
        for id in broken {
            let up = cluster.node_mut(id)?.is_up();
            if up {
                let _ = self.clear_failpoints(cluster, id).await;
                // A node whose storage failed has stopped its Raft for good: restart it.
                cluster.kill9(id)?;
            }
            self.failpoints.remove(&id);
        }
        for id in cluster.ids() {
            if !cluster.node_mut(id)?.is_up() {
                cluster.restart(id).await?;
            }
        }
        self.history
            .info(Entry::new(Role::Nemesis, "nemesis", "heal").nodes(&cluster.ids()));
        Ok(())
    }
}
