//! The client port's connection limits: how many connections may be open at once, in all and
//! from one address, and how long one may live.
//!
//! [`ClientConnections::incoming`] accepts connections itself and hands tonic only those
//! within the limits; a connection past a limit is closed as soon as it is accepted (the
//! client sees the connection closed before TLS, and an SDK client tries another node),
//! counted, and logged at most every few seconds. A connection holds its place from the
//! accept, TLS handshake included, until it closes. Past `max_connection_age` + grace it is
//! closed whatever it is doing (tonic asks it to go away with an HTTP/2 GOAWAY at
//! `max_connection_age`, see `server.rs`).
//!
//! Accept errors (out of file descriptors, most often) never spin: the loop waits, from 10 ms
//! doubling up to 1 s, before it accepts again. At start the node raises its soft limit on open
//! files to the hard limit, and refuses to start if that leaves too few for
//! `limits.max_client_connections` ([`ensure_fd_limit`]).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Sleep;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::config::Limits;
use crate::limits::ClientAddress;
use crate::metrics::Metrics;

/// File descriptors kept for everything but client connections: the peer, admin and HTTP
/// ports, sled, the HSM module, logs.
pub const RESERVED_FDS: u64 = 1024;

/// Pending connections the kernel queues for the client port.
const BACKLOG: u32 = 1024;

/// Refusals are logged at most this often (with the count since the last line).
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// The limits, from `[limits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once.
    pub max_total: u32,
    /// Connections open at once from one [`ClientAddress`] (0: no such limit).
    pub max_per_address: u32,
    /// Closed this long after the accept, whatever they are doing (None: never).
    pub close_after: Option<Duration>,
}

impl ConnectionLimits {
    /// The limits `[limits]` sets.
    pub fn from_config(limits: &Limits) -> Self {
        Self {
            max_total: limits.max_client_connections,
            max_per_address: limits.max_client_connections_per_address,
            close_after: limits
                .max_connection_age()
                .map(|age| age + Duration::from_secs(limits.max_connection_age_grace_secs)),
        }
    }
}

/// Why a connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_client_connections` are open.
    Total,
    /// `max_client_connections_per_address` are open from its address.
    Address,
}

impl Refusal {
    /// The reason as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Total => "limit",
            Self::Address => "address_limit",
        }
    }
}

#[derive(Debug, Default)]
struct Table {
    open: u32,
    /// Open connections by address; an address leaves the table with its last connection,
    /// so the table never holds more entries than connections are open.
    by_address: HashMap<ClientAddress, u32>,
}

#[derive(Debug)]
struct RefusalLog {
    since_last: u64,
    last: Option<Instant>,
}

struct Shared {
    limits: ConnectionLimits,
    table: Mutex<Table>,
    refused: AtomicU64,
    log: Mutex<RefusalLog>,
    metrics: Option<Metrics>,
}

/// The client port's open connections. Cheap to clone.
#[derive(Clone)]
pub struct ClientConnections(Arc<Shared>);

impl std::fmt::Debug for ClientConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConnections")
            .field("limits", &self.0.limits)
            .field("open", &self.open())
            .finish()
    }
}

/// A connection's place within the limits, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    shared: Arc<Shared>,
    address: ClientAddress,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared(..)")
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut table) = self.shared.table.lock() {
            table.open = table.open.saturating_sub(1);
            if let Some(n) = table.by_address.get_mut(&self.address) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    table.by_address.remove(&self.address);
                }
            }
        }
        if let Some(m) = &self.shared.metrics {
            m.client_connection_closed();
        }
    }
}

impl ClientConnections {
    /// No connection open yet; `metrics` (if any) counts opens, closes and refusals.
    pub fn new(limits: ConnectionLimits, metrics: Option<Metrics>) -> Self {
        Self(Arc::new(Shared {
            limits,
            table: Mutex::new(Table::default()),
            refused: AtomicU64::new(0),
            log: Mutex::new(RefusalLog {
                since_last: 0,
                last: None,
            }),
            metrics,
        }))
    }

    /// Connections open now.
    pub fn open(&self) -> u32 {
        self.0.table.lock().map(|t| t.open).unwrap_or(0)
    }

    /// Connections refused since the start.
    pub fn refused(&self) -> u64 {
        self.0.refused.load(Ordering::Relaxed)
    }

    /// Takes a place for a connection from `peer`, or says which limit is full.
    pub fn admit(&self, peer: IpAddr) -> Result<Slot, Refusal> {
        let address = ClientAddress::of(peer);
        let limits = self.0.limits;
        let refusal = {
            let Ok(mut table) = self.0.table.lock() else {
                // A panic while holding the lock: refuse rather than count wrong.
                return Err(self.refuse(Refusal::Total, address));
            };
            let from_address = table.by_address.get(&address).copied().unwrap_or(0);
            if table.open >= limits.max_total {
                Some(Refusal::Total)
            } else if limits.max_per_address > 0 && from_address >= limits.max_per_address {
                Some(Refusal::Address)
            } else {
                table.open += 1;
                *table.by_address.entry(address).or_insert(0) += 1;
                None
            }
        };
        if let Some(refusal) = refusal {
            return Err(self.refuse(refusal, address));
        }
        if let Some(m) = &self.0.metrics {
            m.client_connection_opened();
        }
        Ok(Slot {
            shared: self.0.clone(),
            address,
        })
    }

    fn refuse(&self, refusal: Refusal, address: ClientAddress) -> Refusal {
        self.0.refused.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.0.metrics {
            m.client_connection_refused(refusal.as_str());
        }
        if let Ok(mut log) = self.0.log.lock() {
            log.since_last += 1;
            let due = log.last.is_none_or(|t| t.elapsed() >= REFUSAL_LOG_EVERY);
            if due {
                let limits = self.0.limits;
                tracing::warn!(
                    refused = log.since_last,
                    last_from = %address,
                    last_reason = refusal.as_str(),
                    max_client_connections = limits.max_total,
                    max_client_connections_per_address = limits.max_per_address,
                    "client connections refused (limits.max_client_connections*)"
                );
                log.since_last = 0;
                log.last = Some(Instant::now());
            }
        }
        refusal
    }

    /// Binds `addr` and accepts connections within the limits.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<LimitedIncoming> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(BACKLOG)?;
        Ok(self.incoming(listener))
    }

    /// Accepts connections on `listener` within the limits.
    pub fn incoming(&self, listener: TcpListener) -> LimitedIncoming {
        LimitedIncoming {
            listener,
            connections: self.clone(),
            pause: None,
            next_pause: MIN_PAUSE,
        }
    }
}

const MIN_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// The client port's accepted connections, within the limits: a stream for tonic's
/// `serve_with_incoming_shutdown`. It never yields an error.
#[derive(Debug)]
pub struct LimitedIncoming {
    listener: TcpListener,
    connections: ClientConnections,
    pause: Option<Pin<Box<Sleep>>>,
    next_pause: Duration,
}

impl LimitedIncoming {
    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// Accept errors that say nothing about the listener (the connection went away before it was
/// accepted): accept again at once.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

impl futures::Stream for LimitedIncoming {
    type Item = io::Result<ClientConn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(pause) = self.pause.as_mut() {
                if pause.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.pause = None;
            }
            let (stream, peer) = match self.listener.poll_accept(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(accepted)) => {
                    self.next_pause = MIN_PAUSE;
                    accepted
                }
                Poll::Ready(Err(e)) if transient(&e) => continue,
                Poll::Ready(Err(e)) => {
                    // Out of file descriptors or memory: the pending connection stays in the
                    // backlog and accepting again at once would spin.
                    let pause = self.next_pause;
                    tracing::warn!(error = %e, pause_ms = pause.as_millis() as u64, "client port: accept failed");
                    self.next_pause = (pause * 2).min(MAX_PAUSE);
                    self.pause = Some(Box::pin(tokio::time::sleep(pause)));
                    continue;
                }
            };
            let Ok(slot) = self.connections.admit(peer.ip()) else {
                // Closed at once: the client sees the connection end before TLS.
                drop(stream);
                continue;
            };
            // Best effort, as tonic's own listener does it.
            let _ = stream.set_nodelay(true);
            let close_at = self
                .connections
                .0
                .limits
                .close_after
                .map(|after| Box::pin(tokio::time::sleep(after)));
            return Poll::Ready(Some(Ok(ClientConn {
                stream,
                close_at,
                _slot: slot,
            })));
        }
    }
}

/// One accepted client connection: the TCP stream, its [`Slot`], and the time past which it
/// is closed.
#[derive(Debug)]
pub struct ClientConn {
    stream: TcpStream,
    close_at: Option<Pin<Box<Sleep>>>,
    _slot: Slot,
}

impl ClientConn {
    /// Whether the connection has outlived `max_connection_age` + grace (and registers the
    /// task to be woken when it does).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.close_at
            .as_mut()
            .is_some_and(|t| t.as_mut().poll(cx).is_ready())
    }
}

fn past_max_age() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "client connection closed: past limits.max_connection_age_secs and its grace",
    )
}

impl AsyncRead for ClientConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.expired(cx) {
            return Poll::Ready(Err(past_max_age()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.expired(cx) {
            return Poll::Ready(Err(past_max_age()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.expired(cx) {
            return Poll::Ready(Err(past_max_age()));
        }
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Connected for ClientConn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

/// Raises this process's soft limit on open files to its hard limit, and fails unless that
/// leaves room for `max_client_connections` plus [`RESERVED_FDS`]. Returns the soft limit
/// now in force (`None`: unlimited).
pub fn ensure_fd_limit(max_client_connections: u32) -> anyhow::Result<Option<u64>> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let needed = u64::from(max_client_connections) + RESERVED_FDS;
    let limit = getrlimit(Resource::Nofile);
    let raised = match limit.current {
        None => None,
        Some(current) => {
            // An unlimited hard limit cannot be the soft one (the kernel caps open files at
            // fs.nr_open): ask for what is needed.
            let target = limit.maximum.unwrap_or(needed.max(current));
            if target > current {
                let wanted = Rlimit {
                    current: Some(target),
                    maximum: limit.maximum,
                };
                match setrlimit(Resource::Nofile, wanted) {
                    Ok(()) => Some(target),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot raise the soft limit on open files");
                        Some(current)
                    }
                }
            } else {
                Some(current)
            }
        }
    };
    if let Some(soft) = raised {
        anyhow::ensure!(
            soft >= needed,
            "limits.max_client_connections: {max_client_connections} connections need {needed} \
             open files ({RESERVED_FDS} kept for the rest of the node), and this process may \
             open at most {soft} (RLIMIT_NOFILE hard limit): raise it (LimitNOFILE= in a \
             systemd unit, ulimit -Hn, the container's nofile ulimit) or lower the key"
        );
    }
    Ok(raised)
}

#[cfg(test)]
mod tests;
