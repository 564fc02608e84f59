//! [`AuditCursor`]: reads the audit files line by line from a sequence number on, in constant
//! memory, while the writer appends and rotates them.
//!
//! The cursor keeps one file open and one line in memory. It picks the file that holds the
//! next `seq` by the first line of each kept file (the newest whose first `seq` is not past
//! it), so a rotation between two reads costs nothing: the open file stays readable under
//! its new name (or after its deletion), and at its end the cursor looks again for the file
//! holding the next line. A line without its newline (being written, or torn by a crash) is
//! not read until it is complete.

use std::fs::File;
use std::io::{self, BufRead as _, BufReader, Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::{AuditLine, rotated};

/// Longest line read; a longer one is skipped as corrupt (real lines are a few hundred bytes).
const MAX_LINE: usize = 64 * 1024;

struct OpenFile {
    reader: BufReader<File>,
    /// Device and inode: the same file under another name is still the same file.
    id: (u64, u64),
}

/// Reads audit lines from `next_seq` on.
pub struct AuditCursor {
    path: PathBuf,
    keep_files: u32,
    next_seq: u64,
    file: Option<OpenFile>,
    /// A newer file seen while this one is read to its end.
    newer: Option<PathBuf>,
    line: Vec<u8>,
}

impl std::fmt::Debug for AuditCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditCursor")
            .field("path", &self.path)
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

fn open(path: &Path) -> io::Result<Option<OpenFile>> {
    match File::open(path) {
        Ok(file) => {
            let meta = file.metadata()?;
            Ok(Some(OpenFile {
                reader: BufReader::new(file),
                id: (meta.dev(), meta.ino()),
            }))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads one complete line into `buf` (without its newline). `Ok(false)` at the end of the
/// file or before an incomplete last line, which is left unread.
fn read_line(reader: &mut BufReader<File>, buf: &mut Vec<u8>) -> io::Result<bool> {
    buf.clear();
    let n = reader
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() != Some(&b'\n') {
        if n > MAX_LINE {
            // Far too long for a line: skip to its end.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                let m = reader
                    .by_ref()
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut rest)?;
                if m == 0 || rest.last() == Some(&b'\n') {
                    break;
                }
            }
            buf.clear();
            return Ok(true);
        }
        // Incomplete: come back to it.
        reader.seek(SeekFrom::Current(-(n as i64)))?;
        return Ok(false);
    }
    buf.pop();
    Ok(true)
}

/// The first line's `seq` of the file at `path`, if it has a complete one.
fn first_seq(path: &Path) -> io::Result<Option<u64>> {
    let Some(mut file) = open(path)? else {
        return Ok(None);
    };
    let mut buf = Vec::new();
    while read_line(&mut file.reader, &mut buf)? {
        if let Ok(line) = serde_json::from_slice::<AuditLine>(&buf) {
            return Ok(Some(line.seq));
        }
    }
    Ok(None)
}

impl AuditCursor {
    /// A cursor over the audit file `path` and its `keep_files` rotated files, from
    /// `from_seq` on (0 or 1: from the oldest line kept).
    pub fn new(path: PathBuf, keep_files: u32, from_seq: u64) -> Self {
        Self {
            path,
            keep_files,
            next_seq: from_seq,
            file: None,
            newer: None,
            line: Vec::new(),
        }
    }

    /// The `seq` the next line should have.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Moves on to `seq`, if it is ahead (lines before it are skipped as they are read).
    pub fn skip_to(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq);
    }

    /// The files, oldest first: `.keep_files`, ..., `.1`, the current one.
    fn files(&self) -> impl Iterator<Item = PathBuf> + '_ {
        (1..=self.keep_files)
            .rev()
            .map(|n| rotated(&self.path, n))
            .chain(std::iter::once(self.path.clone()))
    }

    /// The kept files that have a complete line, oldest first, with their first line's `seq`.
    fn kept(&self) -> io::Result<Vec<(PathBuf, u64)>> {
        let mut out = Vec::new();
        for path in self.files() {
            if let Some(first) = first_seq(&path)? {
                out.push((path, first));
            }
        }
        Ok(out)
    }

    /// In `kept`, the file that holds `next_seq`: the newest whose first line is not past
    /// it, or else the oldest (what came before it was deleted).
    fn pick(&self, kept: &[(PathBuf, u64)]) -> usize {
        kept.iter()
            .rposition(|(_, first)| *first <= self.next_seq)
            .unwrap_or(0)
    }

    /// The next line with `seq >= next_seq`, or `None` when the files hold no more (yet).
    pub fn next_line(&mut self) -> io::Result<Option<AuditLine>> {
        loop {
            let Some(file) = self.file.as_mut() else {
                let kept = self.kept()?;
                let Some((path, _)) = kept.get(self.pick(&kept)) else {
                    return Ok(None);
                };
                self.file = open(path)?;
                self.newer = None;
                if self.file.is_none() {
                    return Ok(None);
                }
                continue;
            };
            if !read_line(&mut file.reader, &mut self.line)? {
                // The end of this file. Once a newer file exists this one is complete (the
                // writer rotates after its last append): read it to its end, then go on.
                if let Some(newer) = self.newer.take() {
                    self.file = open(&newer)?;
                    continue;
                }
                let here = file.id;
                let kept = self.kept()?;
                let at = self.pick(&kept);
                let Some(best) = kept.get(at).map(|(p, _)| open(p)).transpose()?.flatten() else {
                    return Ok(None);
                };
                if best.id != here {
                    // Rotated under us: the next line is in a newer file.
                    self.file = Some(best);
                    continue;
                }
                match kept.get(at + 1) {
                    // The next lines were rotated away (or are in the newer file): finish
                    // this file first.
                    Some((path, _)) => {
                        self.newer = Some(path.clone());
                        continue;
                    }
                    None => return Ok(None),
                }
            }
            let Ok(line) = serde_json::from_slice::<AuditLine>(&self.line) else {
                continue;
            };
            if line.seq < self.next_seq {
                continue;
            }
            self.next_seq = line.seq + 1;
            return Ok(Some(line));
        }
    }

    /// Bytes the cursor's line buffer holds (for tests of its memory).
    #[cfg(test)]
    pub(crate) fn buffer_capacity(&self) -> usize {
        self.line.capacity()
    }

    /// Up to `max` lines (fewer at the end of the files).
    pub fn next_batch(&mut self, max: usize) -> io::Result<Vec<AuditLine>> {
        let mut out = Vec::with_capacity(max.min(1024));
        while out.len() < max {
            match self.next_line()? {
                Some(line) => out.push(line),
                None => break,
            }
        }
        Ok(out)
    }
}
