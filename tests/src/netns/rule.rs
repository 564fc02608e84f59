//! [`Rule`]: one packet-filter rule of a fault in the hub of a lab: which packets (from,
//! to, a port, a share of them) and what happens to them (dropped, refused with a TCP reset,
//! duplicated, queued to the delayer). Each carries a tag (an iptables comment) so that how
//! many packets it caught can be read back before it is removed.

use std::net::Ipv4Addr;

use super::lab::{FILTER_CHAIN, MANGLE_CHAIN};

/// The iptables table a rule lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `filter`: drops, rejects, the delayer queue.
    Filter,
    /// `mangle`: duplication (`TEE`).
    Mangle,
}

impl Table {
    /// The table's iptables name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Filter => "filter",
            Self::Mangle => "mangle",
        }
    }
}

/// One rule in the hub's fault chains. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The table.
    pub table: Table,
    /// The match and target, iptables syntax, without the chain.
    pub spec: String,
    /// The tag its packet count is read back by (`<kind>:<detail>`).
    pub tag: String,
}

/// Which packets a rule catches: from one address to another, optionally a TCP port at
/// either end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// Source address.
    pub from: Ipv4Addr,
    /// Destination address.
    pub to: Ipv4Addr,
    /// Destination TCP port.
    pub dport: Option<u16>,
    /// Source TCP port.
    pub sport: Option<u16>,
}

impl Flow {
    /// Every packet from `from` to `to`.
    pub fn between(from: Ipv4Addr, to: Ipv4Addr) -> Self {
        Self {
            from,
            to,
            dport: None,
            sport: None,
        }
    }

    fn matcher(&self) -> String {
        let mut m = format!("-s {}/32 -d {}/32", self.from, self.to);
        if self.dport.is_some() || self.sport.is_some() {
            m.push_str(" -p tcp");
        }
        if let Some(p) = self.dport {
            m.push_str(&format!(" --dport {p}"));
        }
        if let Some(p) = self.sport {
            m.push_str(&format!(" --sport {p}"));
        }
        m
    }
}

impl Rule {
    fn new(table: Table, flow: &Flow, extra: &str, target: &str, tag: &str) -> Self {
        let mut spec = flow.matcher();
        if !extra.is_empty() {
            spec.push(' ');
            spec.push_str(extra);
        }
        spec.push_str(&format!(" -m comment --comment {tag} -j {target}"));
        Self {
            table,
            spec,
            tag: tag.to_string(),
        }
    }

    /// Packets of `flow` vanish (a blackhole: the sender retransmits into nothing).
    pub fn drop(flow: &Flow, tag: &str) -> Self {
        Self::new(Table::Filter, flow, "", "DROP", tag)
    }

    /// TCP packets of `flow` are refused with a reset (open connections die, new ones are
    /// refused).
    pub fn reset(flow: &Flow, tag: &str) -> Self {
        // A flow with a port already matches TCP only.
        let extra = if flow.dport.is_none() && flow.sport.is_none() {
            "-p tcp"
        } else {
            ""
        };
        Self::new(
            Table::Filter,
            flow,
            extra,
            "REJECT --reject-with tcp-reset",
            tag,
        )
    }

    /// A random `percent` of `flow`'s packets vanish.
    pub fn lose(flow: &Flow, percent: u32, tag: &str) -> Self {
        let p = f64::from(percent.min(100)) / 100.0;
        Self::new(
            Table::Filter,
            flow,
            &format!("-m statistic --mode random --probability {p:.4}"),
            "DROP",
            tag,
        )
    }

    /// Every packet of `flow` arrives twice (`TEE` sends a copy straight to its destination).
    pub fn duplicate(flow: &Flow, tag: &str) -> Self {
        Self::new(
            Table::Mangle,
            flow,
            "",
            &format!("TEE --gateway {}", flow.to),
            tag,
        )
    }

    /// Packets of `flow` go to the delayer listening on queue `queue` (they pass untouched
    /// while none listens).
    pub fn queue(flow: &Flow, queue: u16, tag: &str) -> Self {
        Self::new(
            Table::Filter,
            flow,
            "",
            &format!("NFQUEUE --queue-num {queue} --queue-bypass"),
            tag,
        )
    }

    /// The `iptables-restore` line adding (`add`) or deleting the rule in its table's chain.
    pub fn line(&self, add: bool) -> String {
        let chain = match self.table {
            Table::Filter => FILTER_CHAIN,
            Table::Mangle => MANGLE_CHAIN,
        };
        self.line_in(chain, add)
    }

    /// The same, in `chain`.
    pub fn line_in(&self, chain: &str, add: bool) -> String {
        format!("{} {chain} {}", if add { "-A" } else { "-D" }, self.spec)
    }

    /// `(tag, packets)` of every tagged rule in `iptables-save -c` output.
    pub fn parse_counters(save: &str) -> Vec<(String, u64)> {
        save.lines()
            .filter_map(|l| {
                let rest = l.strip_prefix('[')?;
                let (counts, rule) = rest.split_once(']')?;
                let packets = counts.split(':').next()?.parse::<u64>().ok()?;
                let tag = rule
                    .split("--comment ")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .trim_matches('"')
                    .to_string();
                Some((tag, packets))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> Flow {
        Flow::between(Ipv4Addr::new(10, 66, 1, 2), Ipv4Addr::new(10, 66, 2, 2))
    }

    #[test]
    fn rules_read_as_iptables_lines() {
        assert_eq!(
            Rule::drop(&flow(), "drop:1-2").line(true),
            "-A BKV -s 10.66.1.2/32 -d 10.66.2.2/32 -m comment --comment drop:1-2 -j DROP"
        );
        assert_eq!(
            Rule::reset(&flow(), "rst").line(false),
            "-D BKV -s 10.66.1.2/32 -d 10.66.2.2/32 -p tcp -m comment --comment rst -j REJECT \
             --reject-with tcp-reset"
        );
        let mut client = flow();
        client.dport = Some(7000);
        assert_eq!(
            Rule::drop(&client, "cut").spec,
            "-s 10.66.1.2/32 -d 10.66.2.2/32 -p tcp --dport 7000 -m comment --comment cut -j DROP"
        );
        assert!(
            Rule::lose(&flow(), 25, "loss")
                .spec
                .contains("--probability 0.2500")
        );
        let dup = Rule::duplicate(&flow(), "dup");
        assert_eq!(dup.table, Table::Mangle);
        assert!(dup.line(true).starts_with("-A BKVM "));
        assert!(dup.spec.ends_with("-j TEE --gateway 10.66.2.2"));
        assert!(
            Rule::queue(&flow(), 7, "delay")
                .spec
                .ends_with("-j NFQUEUE --queue-num 7 --queue-bypass")
        );
    }

    #[test]
    fn counters_are_read_back_by_tag() {
        let save = "*filter\n:BKV - [0:0]\n[12:900] -A BKV -s 10.66.1.2/32 -d 10.66.2.2/32 -m \
                    comment --comment drop:1-2 -j DROP\n[3:120] -A BKV -s 10.66.2.2/32 -m comment \
                    --comment \"loss:2\" -j DROP\n[5:5] -A FORWARD -j BKV\nCOMMIT\n";
        assert_eq!(
            Rule::parse_counters(save),
            vec![("drop:1-2".to_string(), 12), ("loss:2".to_string(), 3)]
        );
    }
}
