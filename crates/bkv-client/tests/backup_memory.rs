//! A large backup encrypted and restored in constant memory: a generated stream (never
//! stored) goes through the [`Encryptor`](bkv_client::backup::Encryptor) into a pipe, and
//! the [`Decryptor`](bkv_client::backup::Decryptor) on the other end checks every byte
//! against the same generator. The work runs in a child process (this test binary again,
//! with only the ignored `child_round_trip` selected), so that its peak resident memory
//! (`VmHWM` in /proc/self/status) is its own and not that of other tests.
//!
//! Size: `BKV_BACKUP_MEMORY_BYTES`, 1 GiB unless set. The cipher is optimized in test
//! builds too (root Cargo.toml), so 1 GiB takes about 10 s in a debug build (both
//! directions; peak resident memory about 3 MiB).

use std::io::{self, Read, Write as _};
use std::process::Command;
use std::time::{Duration, Instant};

use bkv_client::backup::{BackupKey, Decryptor, Encryptor, StreamError};
use bkv_devkit::testing::{GeneratedStream, LARGE_STREAM_VAR, large_stream_len, peak_resident_kib};

/// Resident memory the child may reach, plaintext and ciphertext streams included.
const LIMIT_KIB: u64 = 100 * 1024;

/// The child's longest run; the test fails rather than hang.
const CHILD_DEADLINE: Duration = Duration::from_secs(600);

/// The child: encrypts the generated stream into a pipe on one thread, decrypts it on this
/// one, compares, and prints its figures.
#[test]
#[ignore = "run by large_backup_round_trips_in_constant_memory in a process of its own"]
fn child_round_trip() {
    let len = large_stream_len();
    let key = BackupKey::generate();
    let (reader, writer) = io::pipe().expect("pipe");
    let start = Instant::now();
    let writer_key = BackupKey::from_bytes(*key.expose());
    let encrypting = std::thread::spawn(move || -> Result<u64, StreamError> {
        let mut enc = Encryptor::new(&writer_key, writer)?;
        let copied = io::copy(&mut GeneratedStream::new(len), &mut enc)?;
        enc.finish()?;
        Ok(copied)
    });
    let mut dec = Decryptor::new(&key, reader).expect("the header arrives and verifies");
    let mut expected = GeneratedStream::new(len);
    let mut restored = 0u64;
    while let Some(chunk) = dec.next_chunk().expect("every chunk authenticates") {
        assert!(expected.matches(chunk), "chunk at byte {restored} differs");
        restored += chunk.len() as u64;
    }
    assert_eq!(encrypting.join().expect("encrypting thread"), Ok(len));
    assert_eq!(restored, len);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "BKV_MEMORY bytes={len} secs={secs:.1} mib_per_s={:.0} vm_hwm_kib={}",
        len as f64 / (1 << 20) as f64 / secs,
        peak_resident_kib(None).expect("VmHWM in /proc/self/status")
    );
}

#[test]
fn large_backup_round_trips_in_constant_memory() {
    let len = large_stream_len();
    let mut child = Command::new(std::env::current_exe().expect("this test binary"))
        .args(["child_round_trip", "--exact", "--ignored", "--nocapture"])
        .env(LARGE_STREAM_VAR, len.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let deadline = Instant::now() + CHILD_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not finish within {CHILD_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut out)
        .expect("child output");
    assert!(status.success(), "the child failed: {out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("BKV_MEMORY "))
        .unwrap_or_else(|| panic!("no figures from the child: {out}"));
    println!("{line}");
    let hwm: u64 = line
        .split_whitespace()
        .find_map(|f| f.strip_prefix("vm_hwm_kib="))
        .and_then(|v| v.parse().ok())
        .expect("vm_hwm_kib");
    assert!(
        hwm < LIMIT_KIB,
        "peak resident memory {hwm} KiB for {len} bytes is over {LIMIT_KIB} KiB"
    );
    io::stdout().flush().expect("stdout");
}
