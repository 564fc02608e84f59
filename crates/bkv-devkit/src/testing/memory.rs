//! Tests of constant memory: how large a stream to push (`BKV_BACKUP_MEMORY_BYTES`, 1 GiB
//! unless set) and a process's peak resident memory (`VmHWM` of /proc/<pid>/status).

/// The environment variable that sets [`large_stream_len`].
pub const LARGE_STREAM_VAR: &str = "BKV_BACKUP_MEMORY_BYTES";

/// Bytes a constant-memory test streams: `BKV_BACKUP_MEMORY_BYTES`, or 1 GiB. Panics on a
/// value that is not a number (test support).
pub fn large_stream_len() -> u64 {
    std::env::var(LARGE_STREAM_VAR)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{LARGE_STREAM_VAR}={v:?} is not a number of bytes"))
        })
        .unwrap_or(1 << 30)
}

/// The peak resident memory (`VmHWM`, a high-water mark) of process `pid`, or of this one,
/// in KiB; `None` once the process is gone (or on a system without /proc).
pub fn peak_resident_kib(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_string(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_peak() {
        let own = peak_resident_kib(None).expect("/proc/self/status has VmHWM");
        assert!(own > 0);
        assert_eq!(
            peak_resident_kib(Some(std::process::id())).map(|k| k >= own),
            Some(true)
        );
    }
}
