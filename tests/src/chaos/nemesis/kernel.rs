//! The faults a [`Nemesis`] injects through the kernel, for a cluster running in a lab
//! ([`crate::netns`]): packet-filter rules in the lab's hub, `tbf` rate limits, the packet
//! delayer, and full disks. A cluster without the peer proxy gets the proxy's faults this way
//! too ([`Nemesis::partition`], [`Nemesis::link`], [`Nemesis::reset_connections`]):
//!
//! - `Fault::Blackhole` a -> b: a's packets to b are dropped (TCP retransmits into nothing);
//! - `Fault::Drop` a -> b: a's and b's TCP packets to each other are refused with a reset;
//! - `Fault::Delay` a -> b: a's packets to b go through the delayer (delay, jitter and so
//!   reordering);
//! - a reset: every TCP packet between nodes is refused with a reset for 300 ms.
//!
//! Faults only a kernel gives: packet loss ([`Nemesis::lose`]), duplication
//! ([`Nemesis::duplicate`]), a rate limit ([`Nemesis::rate_limit`]), a node cut off from the
//! clients but not from its peers ([`Nemesis::cut_from_clients`]), a partition that flaps by
//! itself ([`Nemesis::flap`]), and a full disk ([`Nemesis::fill_disk`]). Each is a `fault`
//! entry of the history; [`Nemesis::heal`] undoes them all, after reading how many packets
//! each rule caught into [`Nemesis::kernel_figures`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Nemesis;
use crate::chaos::history::{Entry, Role};
use crate::chaos::proxy::Fault;
use crate::cluster::{Cluster, LAB_PORTS};
use crate::netns::{Flow, Lab, Member, Rule};
use crate::process::{ChildGuard, workspace_binary};

/// How long a kernel reset refuses packets between nodes.
const RESET_FOR: Duration = Duration::from_millis(300);
/// Longest a flapping partition runs without a heal.
const MAX_FLAP: Duration = Duration::from_secs(600);
/// The first NFQUEUE number of the delayers.
const FIRST_QUEUE: u16 = 10;

/// A delayer process and where its figures go.
#[derive(Debug)]
struct Delayer {
    queue: u16,
    child: ChildGuard,
    log: PathBuf,
}

/// What a nemesis has done to a lab and must undo at the heal.
#[derive(Debug, Default)]
pub(super) struct KernelState {
    /// Rules in the hub's fault chains.
    rules: usize,
    /// Members with a rate limit.
    limited: BTreeSet<Member>,
    /// Delayers by `(delay ms, jitter ms)`.
    delayers: BTreeMap<(u64, u64), Delayer>,
    /// The flapping partition's switch and task (toggles counted).
    flap: Option<(watch::Sender<bool>, JoinHandle<u64>)>,
    /// Nodes whose data dir was made full.
    full: BTreeSet<u64>,
    /// Figures of the faults healed so far (packets by kind, flaps, full disks).
    figures: BTreeMap<String, u64>,
}

impl KernelState {
    fn count(&mut self, figure: &str, n: u64) {
        *self.figures.entry(figure.to_string()).or_default() += n;
    }
}

fn lab(cluster: &Cluster) -> anyhow::Result<Lab> {
    cluster.options().netns.clone().ok_or_else(|| {
        anyhow::anyhow!("the cluster has neither the peer proxy nor a lab to inject faults with")
    })
}

fn flow(lab: &Lab, from: u64, to: u64) -> Flow {
    Flow::between(lab.ip(Member::Node(from)), lab.ip(Member::Node(to)))
}

impl Nemesis {
    fn kernel_fault(&mut self, nodes: &[u64], what: String) {
        self.record(
            Entry::new(Role::Nemesis, "nemesis", "fault")
                .nodes(nodes)
                .detail(format!("kernel: {what}")),
        );
    }

    fn add_rules(&mut self, lab: &Lab, rules: &[Rule]) -> anyhow::Result<()> {
        lab.apply(rules, true)?;
        self.kernel.rules += rules.len();
        Ok(())
    }

    /// The rules of `fault` on the link `from -> to`.
    fn link_rules(
        &mut self,
        cluster: &Cluster,
        lab: &Lab,
        from: u64,
        to: u64,
        fault: Fault,
    ) -> anyhow::Result<Vec<Rule>> {
        let f = flow(lab, from, to);
        Ok(match fault {
            Fault::Pass => Vec::new(),
            Fault::Blackhole => vec![Rule::drop(&f, &format!("dropped:{from}-{to}"))],
            Fault::Drop => vec![
                Rule::reset(&f, &format!("refused:{from}-{to}")),
                Rule::reset(&flow(lab, to, from), &format!("refused:{to}-{from}")),
            ],
            Fault::Delay { base, jitter } => {
                let queue = self.delayer(cluster, lab, base, jitter)?;
                vec![Rule::queue(&f, queue, &format!("delayed:{from}-{to}"))]
            }
        })
    }

    /// The queue of the delayer for `(base, jitter)`, started in the hub if not running.
    fn delayer(
        &mut self,
        cluster: &Cluster,
        lab: &Lab,
        base: Duration,
        jitter: Duration,
    ) -> anyhow::Result<u16> {
        let key = (base.as_millis() as u64, jitter.as_millis() as u64);
        if let Some(d) = self.kernel.delayers.get(&key) {
            return Ok(d.queue);
        }
        let queue = FIRST_QUEUE
            + self
                .kernel
                .delayers
                .values()
                .map(|d| d.queue - FIRST_QUEUE + 1)
                .max()
                .unwrap_or(0);
        let log = cluster.dir().join(format!("netdelay-{queue}.log"));
        let out = std::fs::File::create(&log)?;
        let mut command = Lab::command_in(&lab.hub(), workspace_binary("bkv-netdelay")?);
        command
            .args(["--queue", &queue.to_string()])
            .args(["--delay-ms", &key.0.to_string()])
            .args(["--jitter-ms", &key.1.to_string()])
            .args(["--seed", &u64::from(queue).to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out));
        let child = ChildGuard::spawn(format!("bkv-netdelay on queue {queue}"), command)?;
        // It binds the queue within milliseconds; packets pass undelayed until then.
        std::thread::sleep(Duration::from_millis(50));
        self.kernel
            .delayers
            .insert(key, Delayer { queue, child, log });
        Ok(queue)
    }

    /// [`Nemesis::partition`] on a lab: the links between the groups cut both ways.
    pub(super) fn kernel_partition(
        &mut self,
        cluster: &Cluster,
        groups: &[Vec<u64>],
        fault: Fault,
    ) -> anyhow::Result<()> {
        let lab = lab(cluster)?;
        let mut rules = Vec::new();
        for (i, a) in groups.iter().enumerate() {
            for (j, b) in groups.iter().enumerate() {
                if i == j {
                    continue;
                }
                for from in a {
                    for to in b {
                        rules.extend(self.link_rules(cluster, &lab, *from, *to, fault)?);
                    }
                }
            }
        }
        self.add_rules(&lab, &rules)
    }

    /// [`Nemesis::link`] on a lab.
    pub(super) fn kernel_link(
        &mut self,
        cluster: &Cluster,
        from: u64,
        to: u64,
        fault: Fault,
    ) -> anyhow::Result<()> {
        let lab = lab(cluster)?;
        let rules = self.link_rules(cluster, &lab, from, to, fault)?;
        self.add_rules(&lab, &rules)
    }

    /// [`Nemesis::reset_connections`] on a lab: every TCP packet between two nodes is refused
    /// with a reset for a moment (open connections die; new ones pass afterwards).
    pub(super) fn kernel_reset(&mut self, cluster: &Cluster) -> anyhow::Result<u64> {
        let lab = lab(cluster)?;
        let ids = cluster.ids();
        let mut rules = Vec::new();
        for a in &ids {
            for b in &ids {
                if a != b {
                    rules.push(Rule::reset(&flow(&lab, *a, *b), &format!("reset:{a}-{b}")));
                }
            }
        }
        lab.apply(&rules, true)?;
        std::thread::sleep(RESET_FOR);
        let refused = packets(&lab, "reset:");
        lab.apply(&rules, false)?;
        self.kernel.count("packets_reset", refused);
        Ok(refused)
    }

    /// Drops `percent` of the packets from and to `node`: its peer links, and its client
    /// links if `clients`.
    pub fn lose(
        &mut self,
        cluster: &Cluster,
        node: u64,
        percent: u32,
        clients: bool,
    ) -> anyhow::Result<()> {
        let lab = lab(cluster)?;
        let mut others: Vec<Member> = cluster
            .ids()
            .into_iter()
            .filter(|i| *i != node)
            .map(Member::Node)
            .collect();
        if clients {
            others.push(Member::Clients);
        }
        let me = lab.ip(Member::Node(node));
        let mut rules = Vec::new();
        for o in others {
            let ip = lab.ip(o);
            rules.push(Rule::lose(
                &Flow::between(me, ip),
                percent,
                &format!("lost:{node}"),
            ));
            rules.push(Rule::lose(
                &Flow::between(ip, me),
                percent,
                &format!("lost:{node}"),
            ));
        }
        self.add_rules(&lab, &rules)?;
        self.kernel_fault(
            &[node],
            format!(
                "{percent}% packet loss on node {node}'s {}links",
                if clients { "peer and client " } else { "peer " }
            ),
        );
        Ok(())
    }

    /// Every packet into and out of `node` (peers and clients) arrives twice.
    pub fn duplicate(&mut self, cluster: &Cluster, node: u64) -> anyhow::Result<()> {
        let lab = lab(cluster)?;
        let me = lab.ip(Member::Node(node));
        let mut rules = Vec::new();
        for o in lab
            .members()
            .into_iter()
            .filter(|m| *m != Member::Node(node))
        {
            let ip = lab.ip(o);
            let tag = format!("duplicated:{node}");
            rules.push(Rule::duplicate(&Flow::between(me, ip), &tag));
            rules.push(Rule::duplicate(&Flow::between(ip, me), &tag));
        }
        self.add_rules(&lab, &rules)?;
        self.kernel_fault(&[node], format!("every packet of node {node} duplicated"));
        Ok(())
    }

    /// Limits `node`'s traffic to `kbit` kbit/s each way (`tbf`).
    pub fn rate_limit(&mut self, cluster: &Cluster, node: u64, kbit: u64) -> anyhow::Result<()> {
        let lab = lab(cluster)?;
        lab.rate_limit(Member::Node(node), kbit)?;
        self.kernel.limited.insert(Member::Node(node));
        self.kernel_fault(
            &[node],
            format!("node {node} limited to {kbit} kbit/s (tbf)"),
        );
        Ok(())
    }

    /// Cuts `node` off from the clients (its client port, both ways) but not from its
    /// peers; the harness still reaches its admin and HTTP ports.
    pub fn cut_from_clients(&mut self, cluster: &Cluster, node: u64) -> anyhow::Result<()> {
        let lab = lab(cluster)?;
        let (me, clients) = (lab.ip(Member::Node(node)), lab.ip(Member::Clients));
        let port = LAB_PORTS.client;
        let tag = format!("cut:{node}");
        let rules = [
            Rule::drop(
                &Flow {
                    dport: Some(port),
                    ..Flow::between(clients, me)
                },
                &tag,
            ),
            Rule::drop(
                &Flow {
                    sport: Some(port),
                    ..Flow::between(me, clients)
                },
                &tag,
            ),
        ];
        self.add_rules(&lab, &rules)?;
        self.kernel_fault(
            &[node],
            format!("node {node} cut off from the clients, not from its peers"),
        );
        Ok(())
    }

    /// Cuts `node` off from the other nodes (both ways, packets dropped) and lets it back,
    /// again and again every `period`, until the heal (at most 10 minutes). No fail-closed
    /// window: the node may serve while it is joined.
    pub fn flap(&mut self, cluster: &Cluster, node: u64, period: Duration) -> anyhow::Result<()> {
        let lab = lab(cluster)?;
        self.stop_flap();
        let mut rules = Vec::new();
        for o in cluster.ids().into_iter().filter(|i| *i != node) {
            rules.push(Rule::drop(
                &flow(&lab, node, o),
                &format!("flapped:{node}-{o}"),
            ));
            rules.push(Rule::drop(
                &flow(&lab, o, node),
                &format!("flapped:{o}-{node}"),
            ));
        }
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let mut on = false;
            let mut toggles = 0u64;
            while !*stopped.borrow() && started.elapsed() < MAX_FLAP {
                on = !on;
                let set = if on { rules.as_slice() } else { &[] };
                if lab.set_flap(set).is_ok() {
                    toggles += 1;
                }
                tokio::select! {
                    () = tokio::time::sleep(period) => {}
                    _ = stopped.changed() => {}
                }
            }
            let _ = lab.set_flap(&[]);
            toggles
        });
        self.kernel.flap = Some((stop, task));
        self.kernel_fault(
            &[node],
            format!(
                "node {node} flapping: cut off from its peers and back every {} ms",
                period.as_millis()
            ),
        );
        Ok(())
    }

    fn stop_flap(&mut self) -> Option<JoinHandle<u64>> {
        let (stop, task) = self.kernel.flap.take()?;
        let _ = stop.send(true);
        Some(task)
    }

    /// Fills `node`'s data dir (a `tmpfs` of the lab, see `ClusterOptions::data_disk_mib`):
    /// the file system shrinks to what it holds, so the next appends, snapshots and audit
    /// lines find no space. The node keeps running; what it does about it is up to it.
    pub fn fill_disk(&mut self, cluster: &Cluster, node: u64) -> anyhow::Result<()> {
        anyhow::ensure!(
            cluster.options().netns.is_some() && cluster.options().data_disk_mib > 0,
            "full disks need a lab and data_disk_mib"
        );
        let dir = cluster.node(node)?.data_dir().to_path_buf();
        let used = Lab::disk_used_kib(&dir)?;
        // Two pages of slack: the next writes fill them.
        Lab::resize_disk(&dir, used + 8)?;
        self.kernel.full.insert(node);
        // For the audit checker: this node may lose audit lines from now on.
        self.history
            .info(Entry::new(Role::Nemesis, "nemesis", "disk_full").node(node));
        self.kernel_fault(
            &[node],
            format!("node {node}'s disk full ({used} KiB used)"),
        );
        Ok(())
    }

    /// The figures of the kernel faults healed so far: packets `dropped`, `refused`, `lost`,
    /// `duplicated`, `delayed`, `reordered`, `cut`, `flapped`, `rate_dropped`, `reset`;
    /// `flap_toggles`, `full_disks`.
    pub fn kernel_figures(&self) -> BTreeMap<String, u64> {
        self.kernel.figures.clone()
    }

    /// Undoes every kernel fault (reading its figures first); nodes whose disk was full are
    /// killed, to be restarted by the heal with their space back.
    pub(super) async fn heal_kernel(&mut self, cluster: &mut Cluster) -> anyhow::Result<()> {
        let Some(lab) = cluster.options().netns.clone() else {
            return Ok(());
        };
        if let Some(task) = self.stop_flap() {
            let toggles = tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(0);
            self.kernel.count("flap_toggles", toggles);
        }
        if self.kernel.rules > 0 {
            for (tag, n) in lab.counters()? {
                let kind = tag.split(':').next().unwrap_or("other").to_string();
                self.kernel.count(&format!("packets_{kind}"), n);
            }
            self.kernel.rules = 0;
        }
        lab.flush()?;
        for member in std::mem::take(&mut self.kernel.limited) {
            let dropped = lab.rate_limit_drops(member);
            self.kernel.count("packets_rate_dropped", dropped);
            lab.unlimit(member)?;
        }
        for (_, mut d) in std::mem::take(&mut self.kernel.delayers) {
            d.child.kill();
            let text = std::fs::read_to_string(&d.log).unwrap_or_default();
            if let Some(last) = text.lines().rev().find(|l| l.starts_with("delayed=")) {
                for part in last.split_whitespace() {
                    if let Some((k, v)) = part.split_once('=')
                        && matches!(k, "delayed" | "reordered")
                    {
                        self.kernel
                            .count(&format!("packets_{k}"), v.parse::<u64>().unwrap_or(0));
                    }
                }
            }
        }
        for node in std::mem::take(&mut self.kernel.full) {
            let dir = cluster.node(node)?.data_dir().to_path_buf();
            Lab::resize_disk(&dir, cluster.options().data_disk_mib * 1024)?;
            // Its storage may have failed for good: restart it, as after a storage failpoint.
            cluster.kill9(node)?;
            self.kernel.count("full_disks", 1);
        }
        Ok(())
    }
}

/// Packets caught so far by the hub's rules whose tag starts with `prefix`.
fn packets(lab: &Lab, prefix: &str) -> u64 {
    lab.counters()
        .map(|c| {
            c.iter()
                .filter(|(t, _)| t.starts_with(prefix))
                .map(|(_, n)| n)
                .sum()
        })
        .unwrap_or(0)
}
