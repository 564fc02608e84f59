//! The proxy against a local echo server (the test process is no node, so its connections
//! come from [`UNKNOWN_SOURCE`]).

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::*;

const TARGET: u64 = 7;

async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

async fn setup() -> (PeerProxy, SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let proxy = PeerProxy::new("no-such-cluster-dir", Some(dir.path()), 1 << 20);
    let upstream = echo_server().await;
    let front = proxy.add_target(TARGET, upstream).unwrap();
    (proxy, front, dir)
}

/// Sends `msg` and reads the echo within `wait`: `Ok(Some(bytes))`, `Ok(None)` on timeout,
/// `Err` if the connection broke.
async fn echo(s: &mut TcpStream, msg: &[u8], wait: Duration) -> std::io::Result<Option<Vec<u8>>> {
    s.write_all(msg).await?;
    let mut got = vec![0u8; msg.len()];
    match tokio::time::timeout(wait, s.read_exact(&mut got)).await {
        Ok(Ok(_)) => Ok(Some(got)),
        Ok(Err(e)) => Err(e),
        Err(_) => Ok(None),
    }
}

#[tokio::test]
async fn bytes_pass_and_are_captured() {
    let (proxy, front, dir) = setup().await;
    let mut s = TcpStream::connect(front).await.unwrap();
    let got = echo(&mut s, b"hello", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some(&b"hello"[..]));
    let stats = proxy.stats();
    assert_eq!(stats.connections, 1);
    assert_eq!(stats.unknown_sources, 1);
    assert!(stats.bytes_passed >= 10);
    assert_eq!(proxy.open_connections(), vec![(UNKNOWN_SOURCE, TARGET)]);
    let up = std::fs::read(dir.path().join(format!("link-0-{TARGET}.bin"))).unwrap();
    let down = std::fs::read(dir.path().join(format!("link-{TARGET}-0.bin"))).unwrap();
    assert_eq!(
        (up.as_slice(), down.as_slice()),
        (&b"hello"[..], &b"hello"[..])
    );
}

#[tokio::test]
async fn a_one_way_blackhole_stalls_that_way_and_heals_without_a_hole() {
    let (proxy, front, _dir) = setup().await;
    let mut s = TcpStream::connect(front).await.unwrap();
    assert!(
        echo(&mut s, b"a", Duration::from_secs(5))
            .await
            .unwrap()
            .is_some()
    );
    // The echo's way back is cut: the request arrives, the answer stalls.
    proxy.set(TARGET, UNKNOWN_SOURCE, Fault::Blackhole);
    assert_eq!(
        echo(&mut s, b"b", Duration::from_millis(300))
            .await
            .unwrap(),
        None
    );
    assert!(proxy.stats().bytes_blackholed >= 1);
    proxy.heal();
    // What was held back arrives, then new bytes flow on the same connection.
    let mut held = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut held))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&held, b"b");
    assert_eq!(
        echo(&mut s, b"c", Duration::from_secs(5))
            .await
            .unwrap()
            .as_deref(),
        Some(&b"c"[..])
    );
}

#[tokio::test]
async fn a_delay_holds_bytes_back_in_order() {
    let (proxy, front, _dir) = setup().await;
    let mut s = TcpStream::connect(front).await.unwrap();
    proxy.set(
        UNKNOWN_SOURCE,
        TARGET,
        Fault::Delay {
            base: Duration::from_millis(200),
            jitter: Duration::from_millis(50),
        },
    );
    let started = std::time::Instant::now();
    let got = echo(&mut s, b"0123456789", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some(&b"0123456789"[..]));
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    assert!(proxy.stats().chunks_delayed >= 1);
}

#[tokio::test]
async fn a_drop_closes_open_connections_and_refuses_new_ones() {
    let (proxy, front, _dir) = setup().await;
    let mut s = TcpStream::connect(front).await.unwrap();
    assert!(
        echo(&mut s, b"x", Duration::from_secs(5))
            .await
            .unwrap()
            .is_some()
    );
    proxy.set(UNKNOWN_SOURCE, TARGET, Fault::Drop);
    // The open connection ends: EOF or an error, never an echo.
    let mut buf = [0u8; 8];
    let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    // A new one is accepted, then closed at once.
    let mut s2 = TcpStream::connect(front).await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(5), s2.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    let stats = proxy.stats();
    assert_eq!((stats.dropped, stats.refused), (1, 1));
    proxy.set(UNKNOWN_SOURCE, TARGET, Fault::Pass);
    let mut s3 = TcpStream::connect(front).await.unwrap();
    assert!(
        echo(&mut s3, b"y", Duration::from_secs(5))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_reset_sends_rst_and_new_connections_pass() {
    let (proxy, front, _dir) = setup().await;
    let mut s = TcpStream::connect(front).await.unwrap();
    assert!(
        echo(&mut s, b"x", Duration::from_secs(5))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(proxy.reset(UNKNOWN_SOURCE, TARGET), 1);
    let mut buf = [0u8; 8];
    let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    match read {
        Ok(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        other => panic!("expected a reset, got {other:?}"),
    }
    let mut s2 = TcpStream::connect(front).await.unwrap();
    assert!(
        echo(&mut s2, b"z", Duration::from_secs(5))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(proxy.stats().resets, 1);
}

#[tokio::test]
async fn partitions_set_both_directions_between_groups() {
    let proxy = PeerProxy::new("x", None, 0);
    proxy.partition(&[vec![1], vec![2, 3]], Fault::Blackhole);
    for (a, b) in [(1, 2), (2, 1), (1, 3), (3, 1)] {
        assert_eq!(proxy.fault(a, b), Fault::Blackhole, "{a}->{b}");
    }
    assert_eq!(proxy.fault(2, 3), Fault::Pass);
    proxy.heal();
    assert_eq!(proxy.fault(1, 2), Fault::Pass);
}

#[test]
fn proc_addresses_parse() {
    assert_eq!(
        parse_proc_addr("0100007F:1F90"),
        Some(SocketAddr::from(([127, 0, 0, 1], 8080)))
    );
    assert_eq!(parse_proc_addr("nonsense"), None);
}

#[tokio::test]
async fn the_socket_of_a_connection_is_found_in_proc() {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = TcpStream::connect(addr).await.unwrap();
    let (_server, peer) = listener.accept().await.unwrap();
    let inode = socket_inode(peer, Some(addr)).expect("socket in /proc/net/tcp");
    let link = format!("socket:[{inode}]");
    let ours = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == link.as_str()));
    assert!(
        ours,
        "inode {inode} of {peer} is not one of this process's sockets"
    );
    drop(client);
    // This process is no bkv-node: no node owns the socket.
    assert_eq!(owner_node(peer, Some(addr), "anything"), None);
}
