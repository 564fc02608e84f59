//! [`LabGuard`]: a lab's namespaces, veth pairs, routes and fault chains, made by the test
//! process before its test runs inside them, and removed when the guard drops (whatever the
//! test did): the processes left in its namespaces are killed by id, its `tmpfs` mounts
//! unmounted, its namespaces deleted (which removes the veth pairs). [`sweep_stale`] does the
//! same for labs whose test process is gone (a crashed or killed run): their namespaces and
//! mounts are named `bkvt-<pid>-...`.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::lab::{FILTER_CHAIN, FLAP_CHAIN, Lab, MANGLE_CHAIN, mounts};

/// The prefix of every lab's namespaces and mounts: `bkvt-<pid of the test process>-<n>`.
pub const LAB_PREFIX: &str = "bkvt-";

/// A lab that exists until this guard drops.
#[derive(Debug)]
pub(super) struct LabGuard {
    lab: Lab,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

impl LabGuard {
    /// Makes a lab with namespaces for nodes `1..=capacity` and the clients, each joined to
    /// the hub by a veth pair, with routes through the hub and empty fault chains.
    pub(super) fn create(capacity: u64) -> anyhow::Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        anyhow::ensure!(
            (1..100).contains(&capacity),
            "a lab holds 1 to 99 nodes, not {capacity}"
        );
        let prefix = format!(
            "{LAB_PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        // The guard exists from the first namespace on, so a failure half-way cleans up.
        let guard = Self {
            lab: Lab::new(prefix, capacity),
        };
        guard.build()?;
        Ok(guard)
    }

    fn build(&self) -> anyhow::Result<()> {
        let lab = &self.lab;
        let hub = lab.hub();
        ip(&["netns", "add", &hub])?;
        ip(&["-n", &hub, "link", "set", "lo", "up"])?;
        Lab::exec(&hub, "sysctl", &["-qw", "net.ipv4.ip_forward=1"], "")?;
        for member in lab.members() {
            let ns = lab.ns(member);
            let k = Lab::subnet(member);
            let link = Lab::hub_link(member);
            ip(&["netns", "add", &ns])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n",
                &hub,
                "link",
                "add",
                "name",
                &link,
                "type",
                "veth",
                "peer",
                "name",
                Lab::MEMBER_LINK,
                "netns",
                &ns,
            ])?;
            ip(&[
                "-n",
                &hub,
                "addr",
                "add",
                &format!("10.66.{k}.1/24"),
                "dev",
                &link,
            ])?;
            ip(&["-n", &hub, "link", "set", &link, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("10.66.{k}.2/24"),
                "dev",
                Lab::MEMBER_LINK,
            ])?;
            ip(&["-n", &ns, "link", "set", Lab::MEMBER_LINK, "up"])?;
            ip(&[
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                &format!("10.66.{k}.1"),
            ])?;
        }
        let chains = format!(
            "*filter\n:{FILTER_CHAIN} - [0:0]\n:{FLAP_CHAIN} - [0:0]\n-A FORWARD -j {FLAP_CHAIN}\n\
             -A FORWARD -j {FILTER_CHAIN}\nCOMMIT\n*mangle\n:{MANGLE_CHAIN} - [0:0]\n\
             -A FORWARD -j {MANGLE_CHAIN}\nCOMMIT\n"
        );
        Lab::exec(&hub, "iptables-restore", &["-w", "5", "--noflush"], &chains)?;
        Ok(())
    }

    /// The lab.
    pub(super) fn lab(&self) -> &Lab {
        &self.lab
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        remove(self.lab.prefix());
    }
}

/// The namespaces whose name starts with `prefix`.
fn namespaces(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Removes every namespace and mount named `<prefix>...`, killing (SIGKILL, by id) the
/// processes still inside those namespaces first.
fn remove(prefix: &str) {
    // Nodes and delayers first, so that nothing holds a namespace or a mount.
    for ns in namespaces(prefix) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &ns]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if pid.parse::<u32>().is_ok() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
        }
    }
    for (source, target) in mounts() {
        if source.starts_with(prefix) {
            let _ = Command::new("umount").arg("-l").arg(&target).status();
        }
    }
    for ns in namespaces(prefix) {
        let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    }
}

/// Removes the labs of test processes that are gone (`bkvt-<pid>-...` with no process
/// `<pid>`): what a crashed or killed run left. Labs of running tests are left alone.
pub fn sweep_stale() {
    let mut owners: Vec<String> = namespaces(LAB_PREFIX)
        .into_iter()
        .chain(mounts().into_iter().map(|(source, _)| source))
        .filter_map(|name| {
            let pid = name
                .strip_prefix(LAB_PREFIX)?
                .split('-')
                .next()?
                .to_string();
            pid.parse::<u32>().is_ok().then_some(pid)
        })
        .collect();
    owners.sort();
    owners.dedup();
    for pid in owners {
        if !Path::new("/proc").join(&pid).exists() {
            eprintln!("removing the lab of a test process that is gone ({LAB_PREFIX}{pid}-*)");
            remove(&format!("{LAB_PREFIX}{pid}-"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::lab::Member;
    use super::*;

    #[test]
    fn a_lab_has_a_namespace_per_member_and_the_hub() {
        let lab = Lab::new("bkvt-7-0", 2);
        let names: Vec<String> = lab.members().into_iter().map(|m| lab.ns(m)).collect();
        assert_eq!(names, ["bkvt-7-0-n1", "bkvt-7-0-n2", "bkvt-7-0-cl"]);
        assert!(lab.hub().starts_with(LAB_PREFIX));
        assert_eq!(Member::Node(1).to_string(), "node 1");
    }
}
