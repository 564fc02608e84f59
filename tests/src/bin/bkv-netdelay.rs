//! `bkv-netdelay`: the packet delayer of the kernel-fault harness, standing in for
//! `tc netem delay` on kernels without `sch_netem`. The harness starts it inside the hub
//! namespace of a test network (see `bkv_tests::netns`) and sends it packets with an
//! iptables `NFQUEUE` rule; it holds each packet `delay + random(0..jitter)` and then lets it
//! go. With a jitter larger than the gap between two packets of a stream, packets leave out
//! of order: TCP sees reordering as well as delay.
//!
//! ```text
//! bkv-netdelay --queue N --delay-ms D [--jitter-ms J] [--max-seconds S] [--seed X]
//! ```
//!
//! Once a second it prints `delayed=<packets> reordered=<packets> held=<packets>`. It stops by
//! itself after `--max-seconds` (default 6 hours); the harness kills it at the heal. A packet
//! it holds when it dies is lost, as on a link that goes down; while no delayer listens on the
//! queue, the rule's `--queue-bypass` lets packets through.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Write as _;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

/// What the command line asks for.
#[derive(Debug)]
struct Args {
    queue: u16,
    delay: Duration,
    jitter: Duration,
    max: Duration,
    seed: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        queue: 0,
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        max: Duration::from_secs(6 * 3600),
        seed: 1,
    };
    let mut queue = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| anyhow::anyhow!("{flag}: {value:?} is not a number"))
        };
        match flag.as_str() {
            "--queue" => queue = Some(u16::try_from(number()?)?),
            "--delay-ms" => args.delay = Duration::from_millis(number()?),
            "--jitter-ms" => args.jitter = Duration::from_millis(number()?),
            "--max-seconds" => args.max = Duration::from_secs(number()?),
            "--seed" => args.seed = number()?,
            _ => anyhow::bail!(
                "unknown flag {flag}; usage: bkv-netdelay --queue N --delay-ms D [--jitter-ms J] \
                 [--max-seconds S] [--seed X]"
            ),
        }
    }
    args.queue = queue.ok_or_else(|| anyhow::anyhow!("--queue is required"))?;
    Ok(args)
}

/// A packet held until `due`; `seq` is its arrival order.
struct Held {
    due: Instant,
    seq: u64,
    message: nfq::Message,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let mut queue = nfq::Queue::open()?;
    queue.bind(args.queue)?;
    // Headers are enough: the payload is never read or changed.
    queue.set_copy_range(args.queue, 64)?;
    queue.set_queue_max_len(args.queue, 8192)?;
    // A full queue lets packets through rather than dropping them: this tool delays.
    queue.set_fail_open(args.queue, true)?;
    queue.set_nonblocking(true);
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut held: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    let (mut arrived, mut delayed, mut reordered, mut released_max) = (0u64, 0u64, 0u64, 0u64);
    let started = Instant::now();
    let mut report = started;
    let jitter_ms = u64::try_from(args.jitter.as_millis()).unwrap_or(u64::MAX);
    println!(
        "bkv-netdelay: queue {} delay {} ms jitter {} ms",
        args.queue,
        args.delay.as_millis(),
        jitter_ms
    );
    while started.elapsed() < args.max {
        // Take every packet waiting now.
        loop {
            match queue.recv() {
                Ok(mut message) => {
                    arrived += 1;
                    message.set_verdict(nfq::Verdict::Accept);
                    let extra = if jitter_ms == 0 {
                        0
                    } else {
                        rng.gen_range(0..jitter_ms)
                    };
                    held.push(Reverse(Held {
                        due: Instant::now() + args.delay + Duration::from_millis(extra),
                        seq: arrived,
                        message,
                    }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Let go of every packet that is due.
        let now = Instant::now();
        while held.peek().is_some_and(|Reverse(h)| h.due <= now) {
            let Some(Reverse(h)) = held.pop() else { break };
            if h.seq < released_max {
                reordered += 1;
            }
            released_max = released_max.max(h.seq);
            delayed += 1;
            queue.verdict(h.message)?;
        }
        if report.elapsed() >= Duration::from_secs(1) {
            report = Instant::now();
            println!(
                "delayed={delayed} reordered={reordered} held={}",
                held.len()
            );
            let _ = std::io::stdout().flush();
        }
        // 1 ms resolution: the delays asked for are tens of milliseconds.
        let idle = held
            .peek()
            .map_or(Duration::from_millis(1), |Reverse(h)| {
                h.due.saturating_duration_since(Instant::now())
            })
            .min(Duration::from_millis(1));
        std::thread::sleep(idle);
    }
    Ok(())
}
