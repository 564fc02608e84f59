//! The kernel-level fault harness: a private network of Linux network namespaces that a test
//! makes for itself, so that faults can be injected by the kernel (packet filters and queueing
//! disciplines) instead of a user-space proxy.
//!
//! A lab is one *hub* namespace that routes between *member* namespaces, each joined to it by
//! a veth pair on a private /24 used nowhere else (`10.66.<k>.0/24`: the hub is `.1`, the
//! member `.2`): node `i` lives in its own namespace at `10.66.<i>.2`, the clients (the test
//! process itself) at `10.66.200.2`. The host's own namespace gets no address, no route and no
//! interface of the lab: nothing a test sends can leave the machine. Every packet between two
//! members crosses the hub's `FORWARD` chain, where the faults are rules (see
//! [`crate::chaos::nemesis`]'s kernel faults), and the hub's veth toward a member, where a rate
//! limit is a `tbf` queueing discipline.
//!
//! - [`run`]: a test body run inside a fresh lab. The test process makes the lab, re-executes
//!   its own test inside the client namespace, and removes the lab when that child ends, also
//!   when it fails, panics or is killed; labs left by crashed runs are removed first.
//! - [`Lab`]: the child's view of its lab (namespaces, addresses, commands inside them, small
//!   file systems for full-disk faults).
//! - [`Rule`]: a packet-filter rule of a fault, tagged so that its packet count can be read.

mod guard;
mod lab;
mod rule;
mod runner;

pub use guard::{LAB_PREFIX, sweep_stale};
pub use lab::{CLIENT_SUBNET, Lab, Member};
pub use rule::{Flow, Rule, Table};
pub use runner::{REQUIRE_ENV, run};
