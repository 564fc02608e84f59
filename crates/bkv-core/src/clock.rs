//! The wall clock, read by the nodes and handed to the state machine in entries (which
//! reads no clock of its own).

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time, Unix milliseconds (0 before 1970, `u64::MAX` past its range).
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
