//! [`PeerProxy`]: a fault-injecting TCP proxy in front of every node's peer (Raft) listener.
//!
//! Each node advertises its proxy front (`advertise.peer`) instead of its own peer port, so
//! every Raft RPC and forwarded write between nodes crosses the proxy. The proxy tells which
//! node opened a connection by the socket's owner process (`/proc/net/tcp` and
//! `/proc/<pid>/fd`, a `bkv-node` whose `--config` lies in the cluster's dir), so faults are
//! set per directed link `from -> to` for the bytes that flow that way, whichever side opened
//! the connection:
//!
//! - [`Fault::Pass`]: bytes flow;
//! - [`Fault::Drop`]: connections between the two nodes are closed, new ones are closed on
//!   accept (a connection needs both directions, so a drop either way cuts the pair);
//! - [`Fault::Blackhole`]: bytes that way stop (the proxy stops reading them, so the sender's
//!   TCP backs up as behind a real blackhole; they flow again after the heal);
//! - [`Fault::Delay`]: bytes that way arrive `base + random(0..jitter)` later, in order.
//!
//! [`PeerProxy::reset`] closes existing connections with a TCP reset (new ones pass). The
//! bytes that cross the proxy are captured to `link-<from>-<to>.bin` files (bounded), for the
//! canary scan. TLS stays end to end: the proxy never sees plaintext.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What happens to the bytes of one directed link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Bytes flow.
    #[default]
    Pass,
    /// The connections between the two nodes are closed, new ones closed on accept.
    Drop,
    /// Bytes this way stop: connections stay open and stall until the link heals.
    Blackhole,
    /// Bytes this way arrive late: `base` plus a random part below `jitter`, in order.
    Delay {
        /// Fixed part.
        base: Duration,
        /// Upper bound of the random part.
        jitter: Duration,
    },
}

/// Node id used for connections whose opener is not a node of the cluster.
pub const UNKNOWN_SOURCE: u64 = 0;

/// Counters of what the proxy did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted and forwarded.
    pub connections: u64,
    /// Connections closed on accept because of a drop.
    pub refused: u64,
    /// Open connections closed by a drop.
    pub dropped: u64,
    /// Open connections reset.
    pub resets: u64,
    /// Bytes forwarded.
    pub bytes_passed: u64,
    /// Bytes held back by a blackhole.
    pub bytes_blackholed: u64,
    /// Chunks delivered late.
    pub chunks_delayed: u64,
    /// Connections whose opener was not recognised as a node.
    pub unknown_sources: u64,
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    refused: AtomicU64,
    dropped: AtomicU64,
    resets: AtomicU64,
    bytes_passed: AtomicU64,
    bytes_blackholed: AtomicU64,
    chunks_delayed: AtomicU64,
    unknown_sources: AtomicU64,
}

/// How a connection is told to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Run,
    Close,
    Reset,
}

#[derive(Debug)]
struct Conn {
    src: u64,
    dst: u64,
    end: Arc<watch::Sender<End>>,
}

#[derive(Debug)]
struct Capture {
    dir: PathBuf,
    budget: u64,
    files: HashMap<(u64, u64), File>,
}

#[derive(Debug)]
struct Inner {
    marker: String,
    rules: RwLock<BTreeMap<(u64, u64), Fault>>,
    conns: Mutex<HashMap<u64, Conn>>,
    next_conn: AtomicU64,
    counters: Counters,
    capture: Mutex<Option<Capture>>,
    rng: Mutex<StdRng>,
}

/// A node's front: the address it advertises, and where its peer listener is now.
type Front = (SocketAddr, Arc<RwLock<SocketAddr>>);

/// The proxy of a test cluster. See the module documentation. Its tasks stop when it is
/// dropped.
#[derive(Debug)]
pub struct PeerProxy {
    inner: Arc<Inner>,
    fronts: Mutex<BTreeMap<u64, Front>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data: a panic elsewhere cannot leave it inconsistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PeerProxy {
    /// A proxy for the nodes whose command line contains `marker` (the cluster's dir),
    /// capturing up to `capture_budget` bytes into `capture_dir` (none if `None`).
    pub fn new(marker: impl Into<String>, capture_dir: Option<&Path>, capture_budget: u64) -> Self {
        let capture = capture_dir.map(|dir| Capture {
            dir: dir.to_path_buf(),
            budget: capture_budget,
            files: HashMap::new(),
        });
        Self {
            inner: Arc::new(Inner {
                marker: marker.into(),
                rules: RwLock::new(BTreeMap::new()),
                conns: Mutex::new(HashMap::new()),
                next_conn: AtomicU64::new(1),
                counters: Counters::default(),
                capture: Mutex::new(capture),
                rng: Mutex::new(StdRng::seed_from_u64(0x5eed)),
            }),
            fronts: Mutex::new(BTreeMap::new()),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Opens a front for node `id` whose peer listener is `upstream`; returns the front's
    /// address (what the node advertises). A second call for the same id (a node added
    /// again under its id, on new ports) keeps the front and points it at `upstream`.
    pub fn add_target(&self, id: u64, upstream: SocketAddr) -> anyhow::Result<SocketAddr> {
        if let Some((front, target)) = lock(&self.fronts).get(&id) {
            *target.write().unwrap_or_else(PoisonError::into_inner) = upstream;
            return Ok(*front);
        }
        let target = Arc::new(RwLock::new(upstream));
        let std_listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        std_listener.set_nonblocking(true)?;
        let front = std_listener.local_addr()?;
        let listener = TcpListener::from_std(std_listener)?;
        let inner = self.inner.clone();
        let task = tokio::spawn(accept_loop(inner, listener, id, target.clone()));
        lock(&self.tasks).push(task);
        lock(&self.fronts).insert(id, (front, target));
        Ok(front)
    }

    /// The front of node `id`, if it has one.
    pub fn front(&self, id: u64) -> Option<SocketAddr> {
        lock(&self.fronts).get(&id).map(|(f, _)| *f)
    }

    /// Sets the fault of the link `from -> to`. A drop closes the pair's connections now.
    pub fn set(&self, from: u64, to: u64, fault: Fault) {
        {
            let mut rules = self
                .inner
                .rules
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if fault == Fault::Pass {
                rules.remove(&(from, to));
            } else {
                rules.insert((from, to), fault);
            }
        }
        if fault == Fault::Drop {
            let n = self.end_where(End::Close, |c| {
                (c.src, c.dst) == (from, to) || (c.src, c.dst) == (to, from)
            });
            self.inner.counters.dropped.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Sets the same fault both ways between `a` and `b`.
    pub fn set_pair(&self, a: u64, b: u64, fault: Fault) {
        self.set(a, b, fault);
        self.set(b, a, fault);
    }

    /// Cuts every link between nodes of different `groups`, both ways, with `fault`.
    pub fn partition(&self, groups: &[Vec<u64>], fault: Fault) {
        for (i, g) in groups.iter().enumerate() {
            for h in groups.iter().skip(i + 1) {
                for a in g {
                    for b in h {
                        self.set_pair(*a, *b, fault);
                    }
                }
            }
        }
    }

    /// The fault of the link `from -> to`.
    pub fn fault(&self, from: u64, to: u64) -> Fault {
        self.inner.fault(from, to)
    }

    /// Every link back to [`Fault::Pass`].
    pub fn heal(&self) {
        self.inner
            .rules
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Resets (TCP RST) the open connections between `a` and `b`; returns how many.
    pub fn reset(&self, a: u64, b: u64) -> u64 {
        let n = self.end_where(End::Reset, |c| {
            (c.src, c.dst) == (a, b) || (c.src, c.dst) == (b, a)
        });
        self.inner.counters.resets.fetch_add(n, Ordering::Relaxed);
        n
    }

    /// Resets every open connection; returns how many.
    pub fn reset_all(&self) -> u64 {
        let n = self.end_where(End::Reset, |_| true);
        self.inner.counters.resets.fetch_add(n, Ordering::Relaxed);
        n
    }

    /// Open connections as `(from, to)` pairs of the node that opened them and its target.
    pub fn open_connections(&self) -> Vec<(u64, u64)> {
        let mut v: Vec<_> = lock(&self.inner.conns)
            .values()
            .map(|c| (c.src, c.dst))
            .collect();
        v.sort_unstable();
        v
    }

    /// The counters so far.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProxyStats {
            connections: get(&c.connections),
            refused: get(&c.refused),
            dropped: get(&c.dropped),
            resets: get(&c.resets),
            bytes_passed: get(&c.bytes_passed),
            bytes_blackholed: get(&c.bytes_blackholed),
            chunks_delayed: get(&c.chunks_delayed),
            unknown_sources: get(&c.unknown_sources),
        }
    }

    fn end_where(&self, end: End, pick: impl Fn(&Conn) -> bool) -> u64 {
        let mut n = 0;
        for c in lock(&self.inner.conns).values() {
            if pick(c) {
                let _ = c.end.send(end);
                n += 1;
            }
        }
        n
    }
}

impl Drop for PeerProxy {
    fn drop(&mut self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
        for c in lock(&self.inner.conns).values() {
            let _ = c.end.send(End::Close);
        }
    }
}

impl Inner {
    fn fault(&self, from: u64, to: u64) -> Fault {
        self.rules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(from, to))
            .copied()
            .unwrap_or_default()
    }

    fn capture(&self, from: u64, to: u64, bytes: &[u8]) {
        let mut guard = lock(&self.capture);
        let Some(cap) = guard.as_mut() else { return };
        if cap.budget == 0 {
            return;
        }
        let n = bytes
            .len()
            .min(usize::try_from(cap.budget).unwrap_or(usize::MAX));
        let file = match cap.files.entry((from, to)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let path = cap.dir.join(format!("link-{from}-{to}.bin"));
                match File::options().create(true).append(true).open(path) {
                    Ok(f) => e.insert(f),
                    Err(_) => return,
                }
            }
        };
        if file.write_all(&bytes[..n]).is_ok() {
            cap.budget -= n as u64;
        }
    }

    fn delay(&self, base: Duration, jitter: Duration) -> Duration {
        let extra = if jitter.is_zero() {
            Duration::ZERO
        } else {
            let ms = u64::try_from(jitter.as_micros()).unwrap_or(u64::MAX);
            Duration::from_micros(lock(&self.rng).gen_range(0..ms.max(1)))
        };
        base + extra
    }
}

async fn accept_loop(
    inner: Arc<Inner>,
    listener: TcpListener,
    dst: u64,
    target: Arc<RwLock<SocketAddr>>,
) {
    loop {
        let Ok((client, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let inner = inner.clone();
        let upstream = *target.read().unwrap_or_else(PoisonError::into_inner);
        tokio::spawn(async move {
            let marker = inner.marker.clone();
            let front = client.local_addr().ok();
            let src = tokio::task::spawn_blocking(move || owner_node(peer, front, &marker))
                .await
                .ok()
                .flatten();
            let src = src.unwrap_or_else(|| {
                inner
                    .counters
                    .unknown_sources
                    .fetch_add(1, Ordering::Relaxed);
                UNKNOWN_SOURCE
            });
            serve(inner, client, src, dst, upstream).await;
        });
    }
}

async fn serve(inner: Arc<Inner>, client: TcpStream, src: u64, dst: u64, upstream: SocketAddr) {
    if inner.fault(src, dst) == Fault::Drop || inner.fault(dst, src) == Fault::Drop {
        inner.counters.refused.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let server =
        match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(upstream)).await {
            Ok(Ok(s)) => s,
            // The node is down: close the client's connection, as a dead host would refuse it.
            _ => return,
        };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    inner.counters.connections.fetch_add(1, Ordering::Relaxed);
    let id = inner.next_conn.fetch_add(1, Ordering::Relaxed);
    let (end_tx, end_rx) = watch::channel(End::Run);
    let end_tx = Arc::new(end_tx);
    lock(&inner.conns).insert(
        id,
        Conn {
            src,
            dst,
            end: end_tx.clone(),
        },
    );
    let (client_r, client_w) = client.into_split();
    let (server_r, server_w) = server.into_split();
    let up = pump(inner.clone(), client_r, server_w, src, dst, end_rx.clone());
    let down = pump(inner.clone(), server_r, client_w, dst, src, end_rx);
    // Either direction ending ends the connection: the other pump is told to close (unless
    // a reset is under way) and finishes on its own, so that each sets its socket's linger
    // on a reset.
    tokio::pin!(up, down);
    let close_other = || {
        end_tx.send_if_modified(|e| {
            let run = *e == End::Run;
            if run {
                *e = End::Close;
            }
            run
        });
    };
    tokio::select! {
        () = &mut up => { close_other(); down.await }
        () = &mut down => { close_other(); up.await }
    }
    lock(&inner.conns).remove(&id);
}

/// Moves bytes `from -> to` through the link's fault until either side closes or the
/// connection is told to end.
async fn pump(
    inner: Arc<Inner>,
    mut reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    from: u64,
    to: u64,
    mut end: watch::Receiver<End>,
) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>(1024);
    let deliver = tokio::spawn(deliver(writer, rx, end.clone()));
    let mut last = Instant::now();
    let mut buf = vec![0u8; 16 * 1024];
    let mut closed = false;
    loop {
        let n = tokio::select! {
            r = reader.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            changed = end.changed() => {
                let e = *end.borrow();
                if changed.is_err() || e == End::Close {
                    closed = true;
                    break;
                }
                if e == End::Reset {
                    let _ = reader.as_ref().set_zero_linger();
                    break;
                }
                continue;
            }
        };
        let bytes = &buf[..n];
        inner.capture(from, to, bytes);
        // Behind a blackhole the chunk waits, and nothing more is read: the sender's TCP
        // backs up as it would behind a real one, and what it sent arrives after the heal
        // (as TCP's retransmissions would deliver it), never a stream with a hole in it.
        let mut held = false;
        while inner.fault(from, to) == Fault::Blackhole {
            if !held {
                held = true;
                inner
                    .counters
                    .bytes_blackholed
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
                changed = end.changed() => {
                    let e = *end.borrow();
                    if changed.is_err() || e == End::Close {
                        closed = true;
                    }
                    if e == End::Reset {
                        let _ = reader.as_ref().set_zero_linger();
                    }
                    if e != End::Run {
                        break;
                    }
                }
            }
        }
        if *end.borrow() != End::Run {
            break;
        }
        let at = match inner.fault(from, to) {
            Fault::Pass => Instant::now(),
            Fault::Delay { base, jitter } => {
                inner
                    .counters
                    .chunks_delayed
                    .fetch_add(1, Ordering::Relaxed);
                Instant::now() + inner.delay(base, jitter)
            }
            // Set again between the two reads of the fault: wait on the next pass.
            Fault::Blackhole => Instant::now(),
            Fault::Drop => {
                closed = true;
                break;
            }
        };
        // In order: never before the previous chunk.
        last = last.max(at);
        if tx.send((last, bytes.to_vec())).await.is_err() {
            break;
        }
        inner
            .counters
            .bytes_passed
            .fetch_add(n as u64, Ordering::Relaxed);
    }
    drop(tx);
    if closed {
        // Pending delayed bytes are lost with the connection, as on a real cut.
        deliver.abort();
    } else {
        // Bytes already read are delivered, then the write side closes (or, on a reset,
        // the deliverer leaves the socket to be reset).
        let _ = deliver.await;
    }
}

async fn deliver(
    mut writer: OwnedWriteHalf,
    mut rx: mpsc::Receiver<(Instant, Vec<u8>)>,
    mut end: watch::Receiver<End>,
) {
    loop {
        let item = tokio::select! {
            item = rx.recv() => item,
            _ = end.changed() => return finish(writer, *end.borrow()),
        };
        // The channel closed: the other side is done; dropping the writer sends a FIN,
        // unless the pump closed it because of a reset (both may be ready at once).
        let Some((at, bytes)) = item else {
            return finish(writer, *end.borrow());
        };
        tokio::select! {
            () = tokio::time::sleep_until(at) => {}
            _ = end.changed() => return finish(writer, *end.borrow()),
        }
        tokio::select! {
            r = writer.write_all(&bytes) => if r.is_err() { return },
            _ = end.changed() => return finish(writer, *end.borrow()),
        }
    }
}

/// Ends a write side: on a reset, with no FIN first, so that the socket's close (with a zero
/// linger) sends a reset.
fn finish(writer: OwnedWriteHalf, end: End) {
    if end == End::Reset {
        let _ = writer.as_ref().set_zero_linger();
        writer.forget();
    }
}

/// The id of the cluster node whose process owns the client socket `peer` connected to
/// `front`, if any: the socket's inode from `/proc/net/tcp`, then the `bkv-node` process
/// (with `marker` in its command line) holding that inode.
pub fn owner_node(peer: SocketAddr, front: Option<SocketAddr>, marker: &str) -> Option<u64> {
    let inode = socket_inode(peer, front)?;
    let link = format!("socket:[{inode}]");
    for (pid, id) in node_processes(marker) {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == link.as_str()) {
                return Some(id);
            }
        }
    }
    None
}

/// `(pid, node id)` of every `bkv-node` process whose `--config` file is
/// `<...marker...>/node<N>.toml`.
fn node_processes(marker: &str) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !args.first().is_some_and(|a| a.contains("bkv-node")) {
            continue;
        }
        let Some(config) = args
            .iter()
            .position(|a| a == "--config")
            .and_then(|i| args.get(i + 1))
        else {
            continue;
        };
        if !config.contains(marker) {
            continue;
        }
        let id = Path::new(config)
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.strip_prefix("node"))
            .and_then(|s| s.parse::<u64>().ok());
        if let Some(id) = id {
            out.push((pid, id));
        }
    }
    out
}

/// The inode of the IPv4 TCP socket whose local address is `local` (and whose remote is
/// `remote`, when given).
fn socket_inode(local: SocketAddr, remote: Option<SocketAddr>) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (Some(l), Some(r), Some(inode)) = (cols.get(1), cols.get(2), cols.get(9)) else {
            continue;
        };
        if parse_proc_addr(l) != Some(local) {
            continue;
        }
        if let Some(remote) = remote
            && parse_proc_addr(r) != Some(remote)
        {
            continue;
        }
        return inode.parse().ok();
    }
    None
}

/// `0100007F:1F90` (IPv4 as the kernel prints it on a little-endian host, port in hex).
fn parse_proc_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddr::from((Ipv4Addr::from(ip.to_le_bytes()), port)))
}

#[cfg(test)]
mod tests;
