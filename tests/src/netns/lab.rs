//! [`Lab`]: one test network of namespaces, as the code inside it sees it: which namespace
//! and address each member has, commands run inside a namespace, the hub's packet-filter
//! rules, and small file systems that a test can fill (a node's data dir on a `tmpfs`).

use std::fmt;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::rule::{Rule, Table};

/// The subnet number of the clients' namespace (`10.66.200.0/24`).
pub const CLIENT_SUBNET: u8 = 200;

/// The filter chain of fault rules in the hub (jumped to from `FORWARD`).
pub(super) const FILTER_CHAIN: &str = "BKV";
/// The mangle chain of fault rules in the hub (duplication).
pub(super) const MANGLE_CHAIN: &str = "BKVM";
/// The filter chain of a flapping partition, switched on and off by itself.
pub(super) const FLAP_CHAIN: &str = "BKVFLAP";

/// A member of a lab: a node, or the clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Member {
    /// Node `id` (1..=the lab's capacity).
    Node(u64),
    /// The clients: the test process and every client it runs.
    Clients,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Node(id) => write!(f, "node {id}"),
            Self::Clients => f.write_str("the clients"),
        }
    }
}

/// A lab, seen from inside (cheap to clone). Made by [`super::run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lab {
    prefix: String,
    capacity: u64,
}

impl Lab {
    /// The lab named `prefix` with namespaces for nodes `1..=capacity`.
    pub(super) fn new(prefix: impl Into<String>, capacity: u64) -> Self {
        Self {
            prefix: prefix.into(),
            capacity,
        }
    }

    /// The lab's name: the prefix of its namespaces and mounts (`bkvt-<pid>-<n>`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How many nodes it has namespaces for (ids `1..=capacity`).
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Every member: the nodes, then the clients.
    pub fn members(&self) -> Vec<Member> {
        (1..=self.capacity)
            .map(Member::Node)
            .chain([Member::Clients])
            .collect()
    }

    /// The namespace of `member`.
    pub fn ns(&self, member: Member) -> String {
        match member {
            Member::Node(id) => format!("{}-n{id}", self.prefix),
            Member::Clients => format!("{}-cl", self.prefix),
        }
    }

    /// The hub's namespace.
    pub fn hub(&self) -> String {
        format!("{}-hub", self.prefix)
    }

    /// The file that names namespace `ns` (for `nsenter --net=`).
    pub fn ns_path(ns: &str) -> PathBuf {
        Path::new("/run/netns").join(ns)
    }

    /// The subnet number of `member` (`10.66.<k>.0/24`).
    pub(super) fn subnet(member: Member) -> u8 {
        match member {
            // Ids are at most the capacity, which `run` keeps below 100.
            Member::Node(id) => u8::try_from(id).unwrap_or(u8::MAX),
            Member::Clients => CLIENT_SUBNET,
        }
    }

    /// `member`'s address.
    pub fn ip(&self, member: Member) -> Ipv4Addr {
        Ipv4Addr::new(10, 66, Self::subnet(member), 2)
    }

    /// The hub's interface toward `member` (where traffic into the member queues).
    pub fn hub_link(member: Member) -> String {
        match member {
            Member::Node(id) => format!("n{id}"),
            Member::Clients => "cl".into(),
        }
    }

    /// The member's own interface (where traffic out of the member queues).
    pub const MEMBER_LINK: &'static str = "eth0";

    /// A command that runs `program` inside namespace `ns` (`nsenter --net=...`): the
    /// process keeps its id (nsenter execs it), so signals reach it directly.
    pub fn command_in(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", Self::ns_path(ns).display()))
            .arg("--")
            .arg(program);
        c
    }

    /// Runs `program args` inside `ns` with `stdin` as its input; fails with its output
    /// unless it succeeds.
    pub fn exec(ns: &str, program: &str, args: &[&str], stdin: &str) -> anyhow::Result<Output> {
        let mut c = Self::command_in(ns, program);
        c.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot run {program} in {ns}: {e}"))?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        anyhow::ensure!(
            out.status.success(),
            "{program} {} in {ns} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(out)
    }

    /// Adds (`add`) or deletes rules in the hub, all in one `iptables-restore`.
    pub fn apply(&self, rules: &[Rule], add: bool) -> anyhow::Result<()> {
        if rules.is_empty() {
            return Ok(());
        }
        let mut script = String::new();
        for table in [Table::Filter, Table::Mangle] {
            let mine: Vec<&Rule> = rules.iter().filter(|r| r.table == table).collect();
            if mine.is_empty() {
                continue;
            }
            script.push_str(&format!("*{}\n", table.name()));
            for r in mine {
                script.push_str(&r.line(add));
                script.push('\n');
            }
            script.push_str("COMMIT\n");
        }
        self.restore(&script)
    }

    /// Runs an `iptables-restore` script in the hub, leaving the rules it does not name.
    fn restore(&self, script: &str) -> anyhow::Result<()> {
        Self::exec(
            &self.hub(),
            "iptables-restore",
            &["-w", "5", "--noflush"],
            script,
        )?;
        Ok(())
    }

    /// Empties the fault chains of the hub (every fault rule goes).
    pub fn flush(&self) -> anyhow::Result<()> {
        let script = format!(
            "*filter\n-F {FILTER_CHAIN}\n-F {FLAP_CHAIN}\nCOMMIT\n*mangle\n-F {MANGLE_CHAIN}\nCOMMIT\n"
        );
        self.restore(&script)
    }

    /// Packets matched so far by each tagged fault rule of the hub, by tag.
    pub fn counters(&self) -> anyhow::Result<Vec<(String, u64)>> {
        let out = Self::exec(&self.hub(), "iptables-save", &["-c"], "")?;
        Ok(Rule::parse_counters(&String::from_utf8_lossy(&out.stdout)))
    }

    /// Replaces the flapping chain's rules with `rules` (none: the flap is off).
    pub fn set_flap(&self, rules: &[Rule]) -> anyhow::Result<()> {
        let mut script = format!("*filter\n-F {FLAP_CHAIN}\n");
        for r in rules {
            script.push_str(&r.line_in(FLAP_CHAIN, true));
            script.push('\n');
        }
        script.push_str("COMMIT\n");
        self.restore(&script)
    }

    /// Limits the traffic into and out of `member` to `kbit` kbit/s (a `tbf` on the hub's
    /// veth toward it and on its own).
    pub fn rate_limit(&self, member: Member, kbit: u64) -> anyhow::Result<()> {
        // A burst of a few full-size packets, and up to 500 ms of queue before a drop.
        let rate = format!("{kbit}kbit");
        let tbf = |ns: &str, dev: &str| {
            Self::exec(
                ns,
                "tc",
                &[
                    "qdisc", "replace", "dev", dev, "root", "tbf", "rate", &rate, "burst", "16kb",
                    "latency", "500ms",
                ],
                "",
            )
        };
        tbf(&self.hub(), &Self::hub_link(member))?;
        tbf(&self.ns(member), Self::MEMBER_LINK)?;
        Ok(())
    }

    /// Removes a rate limit set by [`Self::rate_limit`] (nothing if there is none).
    pub fn unlimit(&self, member: Member) -> anyhow::Result<()> {
        for (ns, dev) in [
            (self.hub(), Self::hub_link(member)),
            (self.ns(member), Self::MEMBER_LINK.to_string()),
        ] {
            // `tc qdisc del` fails when the default qdisc is in place: nothing to undo.
            let _ = Self::exec(&ns, "tc", &["qdisc", "del", "dev", &dev, "root"], "");
        }
        Ok(())
    }

    /// Bytes and packets that a member's rate limit dropped so far (both directions).
    pub fn rate_limit_drops(&self, member: Member) -> u64 {
        let mut dropped = 0;
        for (ns, dev) in [
            (self.hub(), Self::hub_link(member)),
            (self.ns(member), Self::MEMBER_LINK.to_string()),
        ] {
            if let Ok(out) = Self::exec(&ns, "tc", &["-s", "qdisc", "show", "dev", &dev], "") {
                dropped += parse_tc_dropped(&String::from_utf8_lossy(&out.stdout));
            }
        }
        dropped
    }

    /// Mounts a `tmpfs` of `mib` MiB at `dir` (made if missing), named after the lab so that a
    /// crashed run's mounts are found and removed.
    pub fn mount_disk(&self, dir: &Path, mib: u64) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        let source = format!("{}-disk", self.prefix);
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m,mode=0700")])
            .arg(&source)
            .arg(dir)
            .status()?;
        anyhow::ensure!(status.success(), "mount tmpfs at {} failed", dir.display());
        Ok(())
    }

    /// Resizes the `tmpfs` at `dir` to `kib` KiB (it must stay at least what it holds).
    pub fn resize_disk(dir: &Path, kib: u64) -> anyhow::Result<()> {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={kib}k")])
            .arg(dir)
            .status()?;
        anyhow::ensure!(
            status.success(),
            "remount of {} to {kib} KiB failed",
            dir.display()
        );
        Ok(())
    }

    /// KiB in use on the file system at `dir` (`df`).
    pub fn disk_used_kib(dir: &Path) -> anyhow::Result<u64> {
        let out = Command::new("df")
            .args(["--output=used", "-k"])
            .arg(dir)
            .output()?;
        anyhow::ensure!(out.status.success(), "df {} failed", dir.display());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("df {}: no figure", dir.display()))
    }

    /// Unmounts every file system of this lab mounted under `root` (lazily: a process that
    /// still has a file open there does not stop it).
    pub fn unmount_under(&self, root: &Path) {
        for (source, target) in mounts() {
            if source.starts_with(&self.prefix) && target.starts_with(root) {
                let _ = Command::new("umount").arg("-l").arg(&target).status();
            }
        }
    }
}

/// `(source, mount point)` of every mount of this process's mount namespace.
pub(super) fn mounts() -> Vec<(String, PathBuf)> {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.to_string(), PathBuf::from(f.next()?)))
        })
        .collect()
}

/// The `dropped N` figures of `tc -s qdisc show`, summed.
fn parse_tc_dropped(text: &str) -> u64 {
    text.split("dropped ")
        .skip(1)
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_have_their_own_namespace_and_address() {
        let lab = Lab::new("bkvt-1-0", 3);
        assert_eq!(lab.ns(Member::Node(2)), "bkvt-1-0-n2");
        assert_eq!(lab.ns(Member::Clients), "bkvt-1-0-cl");
        assert_eq!(lab.hub(), "bkvt-1-0-hub");
        assert_eq!(lab.ip(Member::Node(3)).to_string(), "10.66.3.2");
        assert_eq!(lab.ip(Member::Clients).to_string(), "10.66.200.2");
        assert_eq!(lab.members().len(), 4);
        assert_eq!(Lab::hub_link(Member::Node(1)), "n1");
    }

    #[test]
    fn tc_drop_counts_are_read() {
        let text = "qdisc tbf 8001: root refcnt 2 rate 256Kbit burst 16Kb lat 500ms \n Sent 1234 \
                    bytes 20 pkt (dropped 7, overlimits 3 requeues 0) \n";
        assert_eq!(parse_tc_dropped(text), 7);
        assert_eq!(parse_tc_dropped("nothing"), 0);
    }
}
