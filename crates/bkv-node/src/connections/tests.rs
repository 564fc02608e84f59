//! Tests of the client port's connection limits over real loopback sockets (127.0.0.0/8 gives
//! each test as many client addresses as it needs).

use std::net::Ipv4Addr;

use futures::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;

fn limits(max_total: u32, max_per_address: u32, close_after: Option<Duration>) -> ConnectionLimits {
    ConnectionLimits {
        max_total,
        max_per_address,
        close_after,
    }
}

/// A listener on a free loopback port, with the limits.
async fn listen(l: ConnectionLimits) -> (ClientConnections, LimitedIncoming, SocketAddr) {
    let connections = ClientConnections::new(l, None);
    let incoming = connections
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .unwrap();
    let addr = incoming.local_addr().unwrap();
    (connections, incoming, addr)
}

/// Connects to `to` from the loopback address `127.0.0.<from>`.
async fn connect_from(from: u8, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, from), 0)))
        .unwrap();
    socket.connect(to).await.unwrap()
}

/// Whether the server closed `stream` within 2 s (EOF or reset), rather than keeping it.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut byte)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => false,
        Err(_) => false,
    }
}

/// Accepts whatever arrives, keeping the connections, until `n` are held or 5 s pass.
async fn accept_n(incoming: &mut LimitedIncoming, n: usize) -> Vec<ClientConn> {
    let mut held = Vec::new();
    let until = Instant::now() + Duration::from_secs(5);
    while held.len() < n && Instant::now() < until {
        let left = until.saturating_duration_since(Instant::now());
        if let Ok(Some(Ok(conn))) = tokio::time::timeout(left, incoming.next()).await {
            held.push(conn);
        }
    }
    held
}

#[tokio::test]
async fn past_the_total_limit_connections_are_closed_at_once_and_places_come_back() {
    let (connections, mut incoming, addr) = listen(limits(3, 0, None)).await;
    let mut clients = Vec::new();
    for from in 1..=5u8 {
        clients.push(connect_from(from, addr).await);
    }
    // Three are accepted; the accept loop goes on and closes the other two as it meets them.
    let mut held = accept_n(&mut incoming, 3).await;
    assert_eq!(held.len(), 3);
    let driver = tokio::spawn(async move {
        // Keep accepting (and refusing) in the background.
        let mut kept = Vec::new();
        while let Some(Ok(conn)) = incoming.next().await {
            kept.push(conn);
        }
    });
    let mut closed = 0;
    for client in &mut clients[3..] {
        closed += usize::from(closed_by_server(client).await);
    }
    assert_eq!(closed, 2, "the two past the limit are closed");
    assert_eq!(connections.open(), 3);
    assert_eq!(connections.refused(), 2);

    // The accepted ones work: each carries bytes to its client.
    for conn in &mut held {
        let peer = conn.stream.peer_addr().unwrap();
        conn.write_all(b"ping").await.unwrap();
        let client = clients
            .iter_mut()
            .find(|c| c.local_addr().unwrap() == peer)
            .expect("an accepted connection is one of ours");
        let mut buf = [0u8; 4];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
    }

    // A connection that closes gives its place back.
    held.pop();
    assert_eq!(connections.open(), 2);
    let mut late = connect_from(9, addr).await;
    assert!(
        !closed_by_server(&mut late).await,
        "admitted after a place freed"
    );
    assert_eq!(connections.open(), 3);
    driver.abort();
}

#[tokio::test]
async fn one_address_is_held_to_its_own_limit_while_others_get_in() {
    let (connections, mut incoming, addr) = listen(limits(100, 2, None)).await;
    let mut from_one = Vec::new();
    for _ in 0..4 {
        from_one.push(connect_from(7, addr).await);
    }
    let mut other = connect_from(8, addr).await;
    let held = accept_n(&mut incoming, 3).await;
    assert_eq!(
        held.len(),
        3,
        "two from 127.0.0.7 and the one from 127.0.0.8"
    );
    let driver = tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Some(Ok(conn)) = incoming.next().await {
            kept.push(conn);
        }
    });
    let mut closed = 0;
    for client in &mut from_one {
        closed += usize::from(closed_by_server(client).await);
    }
    assert_eq!(closed, 2);
    assert!(!closed_by_server(&mut other).await);
    assert_eq!(connections.open(), 3);
    // The table holds one entry per address with open connections, no more.
    drop(held);
    assert_eq!(connections.open(), 0);
    assert!(connections.0.table.lock().unwrap().by_address.is_empty());
    driver.abort();
}

#[tokio::test]
async fn a_connection_is_closed_past_its_age_and_grace_even_mid_read() {
    let (_connections, mut incoming, addr) =
        listen(limits(10, 0, Some(Duration::from_millis(300)))).await;
    let mut client = connect_from(1, addr).await;
    let mut conn = accept_n(&mut incoming, 1).await.pop().unwrap();
    let started = Instant::now();
    // The server side waits for data that never comes: the read fails at 300 ms.
    let mut buf = [0u8; 8];
    let read = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
        .await
        .expect("the read ends");
    let err = read.expect_err("closed by age");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(250), "closed early: {took:?}");
    // Writes fail too, and the client sees the end once the server drops it.
    assert!(conn.write_all(b"late").await.is_err());
    drop(conn);
    assert!(closed_by_server(&mut client).await);
}

#[test]
fn the_config_gives_the_limits_and_the_fd_limit_is_enough_for_the_defaults() {
    let config = Limits::default();
    let l = ConnectionLimits::from_config(&config);
    assert_eq!(l.max_total, config.max_client_connections);
    assert_eq!(
        l.close_after,
        Some(Duration::from_secs(
            config.max_connection_age_secs + config.max_connection_age_grace_secs
        ))
    );
    let off = Limits {
        max_connection_age_secs: 0,
        ..Limits::default()
    };
    assert_eq!(ConnectionLimits::from_config(&off).close_after, None);
    // This process may open enough files for the defaults (it raises its soft limit).
    let soft = ensure_fd_limit(config.max_client_connections).unwrap();
    assert!(soft.is_none_or(|s| s >= u64::from(config.max_client_connections) + RESERVED_FDS));
    // A limit no machine allows is refused with the key named.
    let err = ensure_fd_limit(u32::MAX)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("limits.max_client_connections"), "{err}");
}
