//! [`ChunkGuard`]: keeps incoming snapshot chunks contiguous before openraft writes them.
//!
//! openraft 0.9 seeks to a chunk's offset and writes there; into a `Cursor<Vec<u8>>` an
//! offset far past the data would allocate the whole gap. The leader sends chunks in order
//! and retries a failed chunk at the same offset, so a chunk of the stream being received
//! may start anywhere up to the end of what was received, never past it.

use std::sync::{Arc, Mutex, PoisonError};

/// The stream being received: snapshot id and end of the data received so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChunkGuard {
    current: Arc<Mutex<Option<(String, u64)>>>,
}

impl ChunkGuard {
    /// Whether a chunk may be handed to openraft. Chunks of another stream are let
    /// through: openraft refuses those that do not start at 0 without writing them.
    pub(crate) fn admits(&self, snapshot_id: &str, offset: u64) -> bool {
        let cur = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        match &*cur {
            Some((id, end)) if id == snapshot_id => offset <= *end,
            _ => true,
        }
    }

    /// Records a chunk openraft accepted.
    pub(crate) fn accepted(&self, snapshot_id: &str, offset: u64, len: usize, done: bool) {
        let mut cur = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let end = offset.saturating_add(len as u64);
        if done {
            *cur = None;
            return;
        }
        match &mut *cur {
            Some((id, e)) if id == snapshot_id && offset != 0 => *e = (*e).max(end),
            _ if offset == 0 => *cur = Some((snapshot_id.to_string(), end)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_and_retried_chunks_pass_and_gaps_do_not() {
        let g = ChunkGuard::default();
        assert!(g.admits("s1", 0));
        g.accepted("s1", 0, 100, false);
        assert!(g.admits("s1", 100), "next chunk");
        assert!(g.admits("s1", 0), "retry of the first chunk");
        assert!(!g.admits("s1", 101), "gap");
        assert!(!g.admits("s1", 1 << 40), "far offset");
        g.accepted("s1", 100, 100, false);
        assert!(g.admits("s1", 200));
        assert!(!g.admits("s1", 201));
        // Another stream's first chunk restarts tracking.
        assert!(g.admits("s2", 0));
        g.accepted("s2", 0, 10, false);
        assert!(!g.admits("s2", 11));
        g.accepted("s2", 10, 5, true);
        assert!(g.admits("s2", 0));
    }
}
