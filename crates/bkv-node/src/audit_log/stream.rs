//! [`stream`]: the lines of the audit files from a `seq` on, and with `follow` the new ones as
//! they are written, through a bounded channel: constant memory however much the files
//! hold and however slowly the reader reads.
//!
//! Lines are read from the files in batches of [`BATCH`] (on a blocking thread) and each
//! batch waits for room in the channel. Once the files are read, a follower takes new lines
//! from the live broadcast; if it falls behind that (the broadcast keeps 4096 lines), it
//! goes back to the files where it left off. Without `follow` the stream ends at the line
//! that was last when it began.

use tokio::sync::{broadcast, mpsc};

use super::{AuditLine, AuditLog};

/// Lines read from the files at a time, and the channel's bound.
pub const BATCH: usize = 256;

/// Why a stream ended early.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The files could not be read.
    #[error("reading the audit file: {0}")]
    Read(#[from] std::io::Error),
    /// Lines were deleted by rotation before the reader got to them.
    #[error(
        "audit lines {from}..{to} were rotated away before they were read; resume from seq {to}"
    )]
    Gap {
        /// First line missing.
        from: u64,
        /// The line the files continue with.
        to: u64,
    },
}

/// Starts streaming `log` from `from_seq` (0: the oldest line kept); see the module comment.
pub fn stream(
    log: AuditLog,
    from_seq: u64,
    follow: bool,
) -> mpsc::Receiver<Result<AuditLine, StreamError>> {
    let (tx, rx) = mpsc::channel(BATCH);
    tokio::spawn(async move {
        if let Err(e) = run(&log, from_seq, follow, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    rx
}

/// `Ok` when the stream is over or its reader went away.
async fn run(
    log: &AuditLog,
    from_seq: u64,
    follow: bool,
    tx: &mpsc::Sender<Result<AuditLine, StreamError>>,
) -> Result<(), StreamError> {
    let end = (!follow).then(|| log.last_seq());
    let mut cursor = log.cursor(from_seq);
    // The seq the next line sent must have, once one has been sent.
    let mut expected: Option<u64> = None;
    loop {
        // Subscribe before reading the files: a line written meanwhile is in one or the other.
        let mut live = log.subscribe();
        loop {
            let (back, batch) = tokio::task::spawn_blocking(move || {
                let batch = cursor.next_batch(BATCH);
                (cursor, batch)
            })
            .await
            .map_err(|e| StreamError::Read(std::io::Error::other(e)))?;
            cursor = back;
            let batch = batch?;
            if batch.is_empty() {
                break;
            }
            for line in batch {
                if end.is_some_and(|end| line.seq > end) {
                    return Ok(());
                }
                if let Some(want) = expected
                    && line.seq != want
                {
                    return Err(StreamError::Gap {
                        from: want,
                        to: line.seq,
                    });
                }
                expected = Some(line.seq + 1);
                if tx.send(Ok(line)).await.is_err() {
                    return Ok(());
                }
            }
        }
        if !follow {
            return Ok(());
        }
        let mut next = cursor.next_seq().max(1);
        loop {
            match live.recv().await {
                Ok(line) if line.seq < next => {}
                Ok(line) if line.seq == next => {
                    next += 1;
                    expected = Some(next);
                    if tx.send(Ok(line)).await.is_err() {
                        return Ok(());
                    }
                }
                // Behind the broadcast: the files have what was missed.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            }
        }
        cursor.skip_to(next);
    }
}
