//! Tests of the audit file: rotation, resuming after a restart (rotations, torn lines,
//! dropped records), and reading it with a cursor while it is written and rotated.

use std::time::Duration;

use bkv_raft::AuditSink as _;

use super::*;

fn membership(log_index: u64) -> AuditRecord {
    AuditRecord {
        log_index,
        at_unix_ms: None,
        entry: AuditEntry::Membership {
            voters: vec![1, 2, 3],
            learners: vec![],
        },
    }
}

fn start(dir: &Path, rotation: Rotation) -> (AuditLog, AuditQueue) {
    let hasher = AccountHasher::from_server_setup(&[7u8; 128]);
    let (_keep, rx) = watch::channel(Some(hasher));
    AuditLog::start(dir, rx, rotation, None).unwrap()
}

/// Every line the files hold from `from_seq` on, through a cursor.
fn read_all(log: &AuditLog, from_seq: u64) -> Vec<AuditLine> {
    let mut cursor = log.cursor(from_seq);
    let mut out = Vec::new();
    while let Some(line) = cursor.next_line().unwrap() {
        out.push(line);
    }
    out
}

/// Waits (at most 5 s) until the files hold a line with `seq`.
async fn written(log: &AuditLog, seq: u64) -> Vec<AuditLine> {
    for _ in 0..500 {
        let lines = read_all(log, 0);
        if lines.last().is_some_and(|l| l.seq >= seq) {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("seq {seq} not written within 5 s");
}

fn line(seq: u64, log_index: u64) -> String {
    let mut text = serde_json::to_string(&AuditLine {
        voters: Some(vec![1]),
        learners: Some(vec![]),
        ..AuditLine::empty(seq, log_index, "membership_changed")
    })
    .unwrap();
    text.push('\n');
    text
}

#[tokio::test]
async fn the_file_rotates_by_size_keeps_its_files_and_seq_runs_on_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // About 95 bytes a line.
    let rotation = Rotation {
        max_file_bytes: 1000,
        keep_files: 2,
    };
    let (log, queue) = start(dir.path(), rotation);
    // 20 entries of 2 records each, one entry per append: a rotation every 6 entries.
    for index in 1..=20u64 {
        queue.record(membership(index));
        queue.record(membership(index));
        written(&log, index * 2).await;
    }
    let lines = written(&log, 40).await;
    let path = dir.path().join("audit.jsonl");
    assert!(rotated(&path, 1).exists() && rotated(&path, 2).exists());
    assert!(
        !rotated(&path, 3).exists(),
        "only keep_files rotated files stay"
    );
    for n in [1, 2] {
        let len = std::fs::metadata(rotated(&path, n)).unwrap().len();
        assert!(
            len >= rotation.max_file_bytes,
            "file .{n} rotated at {len} bytes"
        );
    }
    // What is kept reads in order, seq without a gap, up to the last line; the oldest
    // lines went with the deleted files.
    let seqs: Vec<u64> = lines.iter().map(|l| l.seq).collect();
    assert!(seqs.first().is_some_and(|s| *s > 1), "{seqs:?}");
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert_eq!(seqs.last(), Some(&40));
    drop(queue);
    drop(log);

    // A restart re-applies entries 18 to 20: nothing is written twice, and seq carries on.
    let (log, queue) = start(dir.path(), rotation);
    for index in 18..=21u64 {
        queue.record(membership(index));
        queue.record(membership(index));
    }
    let lines = written(&log, 42).await;
    let tail: Vec<(u64, u64)> = lines
        .iter()
        .filter(|l| l.seq > 38)
        .map(|l| (l.seq, l.log_index))
        .collect();
    assert_eq!(tail, vec![(39, 20), (40, 20), (41, 21), (42, 21)]);
}

#[tokio::test]
async fn a_restart_right_after_a_rotation_resumes_from_the_rotated_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    // Entry 5's three records straddle the rotation: two in .1, one in the new file.
    std::fs::write(
        rotated(&path, 1),
        [line(1, 4), line(2, 5), line(3, 5)].concat(),
    )
    .unwrap();
    std::fs::write(&path, line(4, 5)).unwrap();
    let rotation = Rotation {
        max_file_bytes: 1 << 20,
        keep_files: 4,
    };
    let (log, queue) = start(dir.path(), rotation);
    for _ in 0..3 {
        queue.record(membership(5));
    }
    queue.record(membership(6));
    let lines = written(&log, 5).await;
    let last: Vec<(u64, u64)> = lines.iter().map(|l| (l.seq, l.log_index)).collect();
    assert_eq!(last, vec![(1, 4), (2, 5), (3, 5), (4, 5), (5, 6)]);

    // Right after a rotation to an empty file, the same.
    drop(queue);
    drop(log);
    tokio::time::sleep(Duration::from_millis(50)).await;
    std::fs::rename(&path, rotated(&path, 1)).unwrap();
    std::fs::write(&path, "").unwrap();
    let (log, queue) = start(dir.path(), rotation);
    queue.record(membership(6));
    queue.record(membership(7));
    let lines = written(&log, 6).await;
    assert_eq!(
        lines.last().map(|l| (l.seq, l.log_index)),
        Some((6, 7)),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_torn_last_line_is_cut_off_and_the_next_line_starts_clean() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    // A crash in the middle of appending the third line.
    let torn = &line(3, 3)[..40];
    std::fs::write(&path, [line(1, 1), line(2, 2), torn.to_string()].concat()).unwrap();
    let rotation = Rotation {
        max_file_bytes: 1 << 20,
        keep_files: 1,
    };
    let (log, queue) = start(dir.path(), rotation);
    // Entry 3 is applied again after the restart: it was never in the file whole.
    queue.record(membership(3));
    queue.record(membership(4));
    let lines = written(&log, 4).await;
    let got: Vec<(u64, u64)> = lines.iter().map(|l| (l.seq, l.log_index)).collect();
    assert_eq!(got, vec![(1, 1), (2, 2), (3, 3), (4, 4)]);
    // Every line of the file parses: nothing was appended to the torn bytes.
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 4);
    for l in text.lines() {
        serde_json::from_str::<AuditLine>(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
    }
}

#[tokio::test]
async fn a_last_line_short_of_its_newline_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let whole = line(2, 2);
    std::fs::write(&path, [line(1, 1), whole.trim_end().to_string()].concat()).unwrap();
    let rotation = Rotation {
        max_file_bytes: 1 << 20,
        keep_files: 1,
    };
    let (log, queue) = start(dir.path(), rotation);
    // Entry 2 is applied again: the file has it.
    queue.record(membership(2));
    queue.record(membership(3));
    let lines = written(&log, 3).await;
    let got: Vec<(u64, u64)> = lines.iter().map(|l| (l.seq, l.log_index)).collect();
    assert_eq!(got, vec![(1, 1), (2, 2), (3, 3)]);
}

#[tokio::test]
async fn with_keep_files_0_seq_carries_on_and_nothing_is_written_twice_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    // keep_files = 0 is refused by the configuration; here the writer takes it as 1.
    let rotation = Rotation {
        max_file_bytes: 150,
        keep_files: 0,
    };
    let (log, queue) = start(dir.path(), rotation);
    // Two lines (about 95 bytes each) fill the file: a rotation after each entry of two.
    queue.record(membership(1));
    queue.record(membership(1));
    written(&log, 2).await;
    for _ in 0..100 {
        if rotated(&path, 1).exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(rotated(&path, 1).exists(), "one rotated file is kept");
    assert_eq!(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0), 0);
    drop(queue);
    drop(log);
    tokio::time::sleep(Duration::from_millis(50)).await;

    // A restart right after the rotation: entry 1 is applied again, then entry 2.
    let (log, queue) = start(dir.path(), rotation);
    queue.record(membership(1));
    queue.record(membership(1));
    queue.record(membership(2));
    let lines = written(&log, 3).await;
    let got: Vec<(u64, u64)> = lines.iter().map(|l| (l.seq, l.log_index)).collect();
    assert_eq!(got, vec![(1, 1), (2, 1), (3, 2)]);
}

#[tokio::test]
async fn a_full_queue_leaves_a_records_dropped_line_and_a_restart_resumes_after_it() {
    const CAP: u64 = 8;
    let dir = tempfile::tempdir().unwrap();
    let rotation = Rotation {
        max_file_bytes: 1 << 30,
        keep_files: 1,
    };
    // The key is not known yet: records wait in the queue, which holds CAP of them.
    let (key_tx, key_rx) = watch::channel(None);
    let (log, queue) =
        AuditLog::start_with_queue(dir.path(), key_rx, rotation, None, CAP as usize).unwrap();
    // Entries 1..=8 fit; 9, 10, 10 and 11 are dropped.
    for index in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 11] {
        queue.record(membership(index));
    }
    key_tx.send_replace(Some(AccountHasher::from_server_setup(&[7u8; 128])));
    written(&log, CAP).await;
    // The marker goes in before the next record that finds room.
    queue.record(membership(12));
    let lines = written(&log, CAP + 2).await;
    let marker = &lines[CAP as usize];
    assert_eq!(marker.kind, RECORDS_DROPPED);
    assert_eq!(marker.seq, CAP + 1);
    assert_eq!(marker.dropped, Some(4));
    assert_eq!(marker.first_log_index, Some(9));
    assert_eq!(marker.log_index, 11);
    assert_eq!(marker.dropped_at_log_index, Some(1));
    assert_eq!((lines[9].seq, lines[9].log_index), (CAP + 2, 12));
    drop(queue);
    drop(log);
    tokio::time::sleep(Duration::from_millis(50)).await;

    // After a restart, the entries applied again are not written twice (the marker stands
    // for the dropped ones); what follows is.
    let (log, queue) = start(dir.path(), rotation);
    for index in [7, 8, 9, 10, 10, 11, 12, 13] {
        queue.record(membership(index));
    }
    let lines = written(&log, CAP + 3).await;
    let tail: Vec<(u64, u64)> = lines
        .iter()
        .skip(CAP as usize)
        .map(|l| (l.seq, l.log_index))
        .collect();
    assert_eq!(tail, vec![(CAP + 1, 11), (CAP + 2, 12), (CAP + 3, 13)]);
}

#[tokio::test]
async fn a_cursor_reads_across_rotations_that_happen_while_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    let rotation = Rotation {
        max_file_bytes: 1000,
        keep_files: 3,
    };
    let (log, queue) = start(dir.path(), rotation);
    for index in 1..=10u64 {
        queue.record(membership(index));
        written(&log, index).await;
    }
    // Read the first three lines, then let the writer rotate twice under the cursor.
    let mut cursor = log.cursor(0);
    let first: Vec<u64> = cursor
        .next_batch(3)
        .unwrap()
        .iter()
        .map(|l| l.seq)
        .collect();
    assert_eq!(first, vec![1, 2, 3]);
    for index in 11..=24u64 {
        queue.record(membership(index));
        written(&log, index).await;
    }
    let mut seqs = first;
    while let Some(line) = cursor.next_line().unwrap() {
        seqs.push(line.seq);
    }
    assert_eq!(
        seqs,
        (1..=24).collect::<Vec<_>>(),
        "no line lost or repeated"
    );
    // At the end, the cursor picks up what is appended later.
    queue.record(membership(25));
    written(&log, 25).await;
    assert_eq!(cursor.next_line().unwrap().map(|l| l.seq), Some(25));
    assert_eq!(cursor.next_line().unwrap(), None);
    // From a seq in the middle.
    let from_20: Vec<u64> = read_all(&log, 20).iter().map(|l| l.seq).collect();
    assert_eq!(from_20, (20..=25).collect::<Vec<_>>());
}

#[test]
fn a_cursor_leaves_an_incomplete_last_line_until_it_is_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let second = line(2, 2);
    let (head, rest) = second.split_at(30);
    std::fs::write(&path, [line(1, 1).as_str(), head].concat()).unwrap();
    let mut cursor = AuditCursor::new(path.clone(), 1, 0);
    assert_eq!(cursor.next_line().unwrap().map(|l| l.seq), Some(1));
    assert_eq!(cursor.next_line().unwrap(), None, "half a line is not read");
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(rest.as_bytes()).unwrap();
    assert_eq!(cursor.next_line().unwrap().map(|l| l.seq), Some(2));
    assert_eq!(cursor.next_seq(), 3);
}

#[test]
fn a_cursor_reads_a_large_file_one_line_at_a_time() {
    // 200,000 lines (about 19 MB): the cursor's buffers stay the size of a line and a read
    // block, whatever the file's size.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    {
        let mut w = std::io::BufWriter::new(File::create(&path).unwrap());
        for seq in 1..=200_000u64 {
            w.write_all(line(seq, seq).as_bytes()).unwrap();
        }
    }
    let mut cursor = AuditCursor::new(path, 1, 0);
    let mut n = 0u64;
    let mut widest = 0;
    while let Some(l) = cursor.next_line().unwrap() {
        n += 1;
        assert_eq!(l.seq, n);
        widest = widest.max(cursor.buffer_capacity());
    }
    assert_eq!(n, 200_000);
    assert!(widest <= 64 * 1024, "line buffer grew to {widest} bytes");
}

/// Receives from a stream until `n` lines came or 10 s passed.
async fn receive(rx: &mut mpsc::Receiver<Result<AuditLine, StreamError>>, n: usize) -> Vec<u64> {
    let mut seqs = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while seqs.len() < n {
        match tokio::time::timeout_at(until, rx.recv()).await {
            Ok(Some(Ok(line))) => seqs.push(line.seq),
            Ok(Some(Err(e))) => panic!("stream error after {seqs:?}: {e}"),
            Ok(None) | Err(_) => break,
        }
    }
    seqs
}

#[tokio::test]
async fn a_stream_without_follow_ends_at_the_line_last_when_it_began() {
    let dir = tempfile::tempdir().unwrap();
    let rotation = Rotation {
        max_file_bytes: 2000,
        keep_files: 8,
    };
    let (log, queue) = start(dir.path(), rotation);
    for index in 1..=50u64 {
        queue.record(membership(index));
    }
    written(&log, 50).await;
    let mut rx = stream(log.clone(), 10, false);
    // Lines written after it began are not part of it.
    for index in 51..=60u64 {
        queue.record(membership(index));
    }
    let seqs = receive(&mut rx, 1000).await;
    assert_eq!(seqs, (10..=50).collect::<Vec<_>>());
    assert!(rx.recv().await.is_none(), "the stream ended");
}

#[tokio::test]
async fn a_follower_that_falls_behind_the_broadcast_gets_every_line_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let rotation = Rotation {
        max_file_bytes: 1 << 20,
        keep_files: 2,
    };
    let (log, queue) = start(dir.path(), rotation);
    for index in 1..=10u64 {
        queue.record(membership(index));
    }
    written(&log, 10).await;
    let mut rx = stream(log.clone(), 0, true);
    assert_eq!(receive(&mut rx, 10).await, (1..=10).collect::<Vec<_>>());
    // 6,000 new lines while the reader reads nothing: more than the broadcast keeps (4096)
    // and than the channel holds; the follower goes back to the files for what it missed.
    let total = 6_010u64;
    for index in 11..=total {
        queue.record(membership(index));
    }
    written(&log, total).await;
    let seqs = receive(&mut rx, (total - 10) as usize).await;
    assert_eq!(seqs, (11..=total).collect::<Vec<_>>());
    // And it goes on following.
    queue.record(membership(total + 1));
    assert_eq!(receive(&mut rx, 1).await, vec![total + 1]);
}

#[tokio::test]
async fn a_stream_reports_lines_rotated_away_before_it_read_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    // Lines 1-3 in .2, 7-9 in .1 (4-6 were deleted), 10 in the current file.
    std::fs::write(
        rotated(&path, 2),
        [line(1, 1), line(2, 2), line(3, 3)].concat(),
    )
    .unwrap();
    std::fs::write(
        rotated(&path, 1),
        [line(7, 7), line(8, 8), line(9, 9)].concat(),
    )
    .unwrap();
    std::fs::write(&path, line(10, 10)).unwrap();
    let rotation = Rotation {
        max_file_bytes: 1 << 20,
        keep_files: 2,
    };
    let (log, _queue) = start(dir.path(), rotation);
    let mut rx = stream(log.clone(), 0, false);
    let mut seqs = Vec::new();
    let err = loop {
        match rx.recv().await {
            Some(Ok(line)) => seqs.push(line.seq),
            Some(Err(e)) => break e,
            None => panic!("no error; got {seqs:?}"),
        }
    };
    assert_eq!(seqs, vec![1, 2, 3]);
    assert!(matches!(err, StreamError::Gap { from: 4, to: 7 }), "{err}");
    // Asked from a seq that was deleted, a stream starts at the next line kept.
    let mut rx = stream(log, 5, false);
    assert_eq!(receive(&mut rx, 10).await, vec![7, 8, 9, 10]);
}
