//! Reading the WAL back at open: every segment in order, every record
//! authenticated and applied to an in-memory log; a torn end after the
//! durable point is cut off, anything wrong before it is damage.

use std::collections::VecDeque;
use std::path::Path;

use ::raft::eraftpb::{Entry, HardState};

use super::{
    MAX_RECORD, Position, Record, Segment, WAL_DIR, aad, io_error, segment_name, sync_dir,
};
use crate::raft::storage::Result;
use crate::raft::storage::codec::Keys;

/// The log as the WAL leaves it.
#[derive(Debug, Default)]
pub(in crate::raft::storage) struct Replayed {
    /// The last hard state written.
    pub(in crate::raft::storage) hard: Option<HardState>,
    /// The entries, consecutive.
    pub(in crate::raft::storage) entries: VecDeque<Entry>,
    /// The last snapshot that replaced the log, (index, term).
    pub(in crate::raft::storage) reset: Option<(u64, u64)>,
    /// Bytes cut off the end: a write that never completed.
    pub(in crate::raft::storage) torn: u64,
    pub(super) segments: Vec<Segment>,
    /// Length of the last segment's whole records.
    pub(super) end: u64,
}

impl Replayed {
    /// Applies one record, as the storage applied it when it wrote it.
    fn apply(&mut self, rec: Record) -> std::result::Result<(), String> {
        if let Some(reset) = rec.reset {
            self.entries.clear();
            self.reset = Some(reset);
        }
        if let Some(first) = rec.compact {
            while self.entries.front().is_some_and(|e| e.index < first) {
                self.entries.pop_front();
            }
        }
        if let Some(hs) = rec.hard {
            self.hard = Some(hs);
        }
        let Some(head) = rec.entries.first().map(|e| e.index) else {
            return Ok(());
        };
        if let Some(bad) = (1..rec.entries.len()).find(|&i| rec.entries[i].index != head + i as u64)
        {
            return Err(format!(
                "holds entries that are not consecutive ({} follows {})",
                rec.entries[bad].index,
                head + bad as u64 - 1
            ));
        }
        if let (Some(first), Some(last)) = (self.entries.front(), self.entries.back()) {
            if head > last.index + 1 {
                return Err(format!(
                    "appends from entry {head} but the log ends at {}",
                    last.index
                ));
            }
            if head < first.index {
                self.entries.clear();
            } else {
                let keep = (head - first.index) as usize;
                self.entries.truncate(keep);
            }
        }
        self.entries.extend(rec.entries);
        Ok(())
    }
}

/// The segments in `dir`, by number, checked to have no gap.
fn list_segments(dir: &Path, keys: &Keys) -> Result<Vec<u64>> {
    let read = std::fs::read_dir(dir).map_err(io_error(keys.path(), "cannot read", dir))?;
    let mut seqs = Vec::new();
    for entry in read {
        let entry = entry.map_err(io_error(keys.path(), "cannot read", dir))?;
        let name = entry.file_name();
        let seq = name
            .to_str()
            .and_then(|n| n.strip_suffix(".wal"))
            .filter(|n| n.len() == 16)
            .and_then(|n| u64::from_str_radix(n, 16).ok());
        if let Some(seq) = seq {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    for pair in seqs.windows(2) {
        if pair[1] != pair[0] + 1 {
            return Err(keys.damaged(&format!(
                "write-ahead log segment {} is missing (between {} and {})",
                segment_name(pair[0] + 1),
                segment_name(pair[0]),
                segment_name(pair[1])
            )));
        }
    }
    Ok(seqs)
}

/// The record at the start of `bytes` (at `pos`) and its length on disk,
/// or why it cannot be read.
fn next_record(
    bytes: &[u8],
    keys: &Keys,
    pos: Position,
) -> std::result::Result<(Record, usize), &'static str> {
    let len = bytes
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("is cut short")?;
    if len == 0 || len > MAX_RECORD {
        return Err("has no valid length");
    }
    let sealed = bytes.get(4..4 + len).ok_or("is cut short")?;
    let plain = keys
        .key()
        .open(sealed, &aad(pos))
        .map_err(|_| "fails authentication")?;
    let rec = Record::decode(&plain).ok_or("does not decode")?;
    Ok((rec, 4 + len))
}

/// Replays the WAL in `dir`, which was durable up to `durable`.
pub(super) fn replay(dir: &Path, keys: &Keys, durable: Position) -> Result<Replayed> {
    let seqs = list_segments(dir, keys)?;
    if let Some(&last) = seqs.last()
        && durable.0 > last
    {
        return Err(keys.damaged(&format!(
            "the write-ahead log was durable up to segment {} but ends at segment {}",
            segment_name(durable.0),
            segment_name(last)
        )));
    }
    let mut out = Replayed::default();
    for (i, &seq) in seqs.iter().enumerate() {
        let path = dir.join(segment_name(seq));
        let bytes = std::fs::read(&path).map_err(io_error(keys.path(), "cannot read", &path))?;
        let mut seg = Segment { seq, max_index: 0 };
        let mut off = 0usize;
        let mut torn = None;
        while off < bytes.len() {
            let pos = (seq, off as u64);
            match next_record(&bytes[off..], keys, pos) {
                Ok((rec, n)) => {
                    if let Some(last) = rec.last_index() {
                        seg.max_index = seg.max_index.max(last);
                    }
                    out.apply(rec).map_err(|why| {
                        keys.damaged(&format!(
                            "{WAL_DIR}/{}: the record at byte {off} {why}",
                            segment_name(seq)
                        ))
                    })?;
                    off += n;
                }
                Err(why) => {
                    torn = Some((pos, why));
                    break;
                }
            }
        }
        out.segments.push(seg);
        out.end = off as u64;
        let Some((pos, why)) = torn else {
            // Whole records only, but fewer than were made durable: the
            // file was cut at a record boundary (or emptied).
            if seq == durable.0 && (off as u64) < durable.1 {
                return Err(keys.damaged(&format!(
                    "{WAL_DIR}/{}: it ends at byte {off}, but the log was made durable \
                     up to byte {}: records are missing",
                    segment_name(seq),
                    durable.1
                )));
            }
            continue;
        };
        if pos < durable {
            return Err(keys.damaged(&format!(
                "{WAL_DIR}/{}: the record at byte {} {why}, but the log was made durable \
                 past it (up to byte {} of segment {})",
                segment_name(seq),
                pos.1,
                durable.1,
                segment_name(durable.0)
            )));
        }
        // The end of a write that never completed: cut it off, with any
        // segment after it.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io_error(keys.path(), "cannot open", &path))?;
        file.set_len(pos.1)
            .and_then(|()| file.sync_data())
            .map_err(io_error(keys.path(), "cannot truncate", &path))?;
        out.torn = (bytes.len() - off) as u64;
        for &later in &seqs[i + 1..] {
            let path = dir.join(segment_name(later));
            std::fs::remove_file(&path).map_err(io_error(keys.path(), "cannot remove", &path))?;
        }
        sync_dir(keys.path(), dir)?;
        break;
    }
    Ok(out)
}
