//! The write-ahead log: Raft entries and hard state, appended to segment
//! files, one sealed record per write, one `fdatasync` per sync.
//!
//! Why not sled for these: every Ready is an append plus a hard state,
//! and making it durable through sled costs a `Db::flush()` (5–28 ms under
//! load, measured) where an append-only file costs one `fdatasync`
//! (0.1–0.5 ms). sled keeps what changes rarely: membership, snapshots.
//!
//! On disk:
//! - `wal/<seq>.wal` segment files, numbered without gaps. A record is a
//!   u32 length then the [`Record`] sealed with the data key; its AAD names
//!   the segment and offset, so a record moved or copied elsewhere fails.
//!   A segment past [`SEGMENT_BYTES`] is synced and closed, and the next
//!   one starts with a record of the current hard state and first index,
//!   so segments older than the snapshot can simply be deleted.
//! - `raft-wal-synced` beside the WAL: how far the log was made durable
//!   (segment, offset), written after each `fdatasync` (a plain write: it
//!   may lag behind the log after a power loss, never run ahead of it).
//!
//! At open, a record that is cut short or fails authentication *after*
//! the durable point is the torn end of a write that never completed: the
//! log is truncated there. *Before* it, it is damage, reported as such:
//! acknowledged writes are never silently dropped.

#[doc(hidden)]
pub mod fuzzing;
mod record;
mod replay;

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::codec::{FRAME_ROOM, Keys};
use super::{Result, StorageError};
use crate::seal::SealError;

pub(super) use record::Record;
pub(super) use replay::Replayed;

/// The WAL's directory inside the state directory.
pub(super) const WAL_DIR: &str = "wal";
/// How far the WAL is durable, beside it.
const SYNCED_FILE: &str = "raft-wal-synced";
const SYNCED_MAGIC: &[u8; 8] = b"SHOALWS1";
const SYNCED_LEN: usize = 32;
/// A segment is closed once it is this long.
pub(super) const SEGMENT_BYTES: u64 = 32 << 20;
/// No record is longer than this (a Ready carries at most a few MiB).
const MAX_RECORD: usize = 1 << 30;
const AAD_DOMAIN: &[u8] = b"shoal/raft/wal/v1\0";

/// A position in the WAL: segment number, byte offset.
pub(super) type Position = (u64, u64);

/// AAD of the record at `pos`.
fn aad(pos: Position) -> Vec<u8> {
    let mut a = AAD_DOMAIN.to_vec();
    a.extend_from_slice(&pos.0.to_be_bytes());
    a.extend_from_slice(&pos.1.to_be_bytes());
    a
}

fn segment_name(seq: u64) -> String {
    format!("{seq:016x}.wal")
}

/// A segment and the highest entry index ever written to it (0: none).
#[derive(Debug, Clone, Copy)]
struct Segment {
    seq: u64,
    max_index: u64,
}

/// The segment being appended to.
struct Writer {
    file: Arc<File>,
    seq: u64,
    len: u64,
    /// Every segment on disk, oldest first; the last is the active one.
    segments: VecDeque<Segment>,
}

/// The durable point and the file that records it.
struct Synced {
    file: File,
    pos: Position,
}

/// The write-ahead log. Appends come from one writer at a time (the
/// storage holds its state lock); `sync` may run on another thread.
pub(super) struct Wal {
    state_dir: PathBuf,
    dir: PathBuf,
    segment_bytes: u64,
    writer: Mutex<Writer>,
    synced: Mutex<Synced>,
}

impl Wal {
    /// Opens the WAL in `state_dir`, creating it if `create`, and replays
    /// it. A missing WAL when `create` is false is damage.
    pub(super) fn open(
        state_dir: &Path,
        keys: &Keys,
        create: bool,
        segment_bytes: u64,
    ) -> Result<(Wal, Replayed)> {
        let dir = state_dir.join(WAL_DIR);
        let synced_path = state_dir.join(SYNCED_FILE);
        let durable = read_synced(&synced_path, keys)?;
        if !dir.exists() {
            if !create {
                return Err(keys.damaged(&format!(
                    "its write-ahead log ({WAL_DIR}/) is missing: the log was lost"
                )));
            }
            std::fs::create_dir(&dir).map_err(io_error(state_dir, "cannot create", &dir))?;
        }
        let mut replayed = replay::replay(&dir, keys, durable)?;
        let mut segments: VecDeque<Segment> = replayed.segments.drain(..).collect();
        let (file, seq, len) = match segments.back() {
            Some(last) => {
                let path = dir.join(segment_name(last.seq));
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_error(state_dir, "cannot open", &path))?;
                (file, last.seq, replayed.end)
            }
            None if durable != (0, 0) => {
                return Err(keys.damaged(&format!(
                    "{SYNCED_FILE} says the write-ahead log was durable up to segment {} \
                     but {WAL_DIR}/ holds no segment",
                    durable.0
                )));
            }
            None => (create_segment(state_dir, &dir, 1)?, 1, 0),
        };
        if segments.is_empty() {
            segments.push_back(Segment { seq, max_index: 0 });
        }
        let synced_file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&synced_path)
            .map_err(io_error(state_dir, "cannot open", &synced_path))?;
        let wal = Wal {
            state_dir: state_dir.to_path_buf(),
            dir,
            segment_bytes,
            writer: Mutex::new(Writer {
                file: Arc::new(file),
                seq,
                len,
                segments,
            }),
            synced: Mutex::new(Synced {
                file: synced_file,
                pos: durable,
            }),
        };
        Ok((wal, replayed))
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the active segment is full: the caller rotates first.
    pub(super) fn full(&self) -> bool {
        self.writer().len >= self.segment_bytes
    }

    /// Appends `rec` (readable again only after a restart: the caller
    /// keeps the log in memory). Durable after the next [`Wal::sync`].
    /// A failed write (a full disk) is cut off again, so the log stays a
    /// sequence of whole records.
    pub(super) fn append(&self, keys: &Keys, rec: &Record) -> Result<()> {
        let mut w = self.writer();
        // Encoded straight into its frame and sealed there.
        let mut buf = vec![0; FRAME_ROOM];
        rec.encode_into(&mut buf);
        keys.seal_frame(&mut buf, &aad((w.seq, w.len)));
        let path = self.dir.join(segment_name(w.seq));
        if let Err(e) = w.file.write_all_at(&buf, w.len) {
            let _ = w.file.set_len(w.len);
            return Err(io_error(&self.state_dir, "cannot write", &path)(e));
        }
        w.len += buf.len() as u64;
        if let (Some(last), Some(seg)) = (rec.last_index(), w.segments.back_mut()) {
            seg.max_index = seg.max_index.max(last);
        }
        Ok(())
    }

    /// Closes the active segment (durably) and starts the next one with
    /// `header`, which must restate the hard state and first index.
    pub(super) fn rotate(&self, keys: &Keys, header: &Record) -> Result<()> {
        {
            let mut w = self.writer();
            let path = self.dir.join(segment_name(w.seq));
            w.file
                .sync_data()
                .map_err(io_error(&self.state_dir, "cannot sync", &path))?;
            let seq = w.seq + 1;
            let file = create_segment(&self.state_dir, &self.dir, seq)?;
            w.file = Arc::new(file);
            w.seq = seq;
            w.len = 0;
            w.segments.push_back(Segment { seq, max_index: 0 });
        }
        self.append(keys, header)
    }

    /// Makes every record appended so far durable.
    pub(super) fn sync(&self) -> Result<()> {
        let mut synced = self.synced.lock().unwrap_or_else(|e| e.into_inner());
        let (file, pos) = {
            let w = self.writer();
            (w.file.clone(), (w.seq, w.len))
        };
        if pos <= synced.pos {
            return Ok(());
        }
        let path = self.dir.join(segment_name(pos.0));
        file.sync_data()
            .map_err(io_error(&self.state_dir, "cannot sync", &path))?;
        let synced_path = self.state_dir.join(SYNCED_FILE);
        synced
            .file
            .write_all_at(&encode_synced(pos), 0)
            .map_err(io_error(&self.state_dir, "cannot write", &synced_path))?;
        synced.pos = pos;
        Ok(())
    }

    /// Deletes the closed segments that hold no entry at or after `index`.
    pub(super) fn remove_before(&self, index: u64) -> Result<()> {
        let mut w = self.writer();
        let mut removed = false;
        while w.segments.len() > 1 && w.segments.front().is_some_and(|s| s.max_index < index) {
            let seg = w.segments.pop_front().expect("checked");
            let path = self.dir.join(segment_name(seg.seq));
            std::fs::remove_file(&path).map_err(io_error(
                &self.state_dir,
                "cannot remove",
                &path,
            ))?;
            removed = true;
        }
        if removed {
            sync_dir(&self.state_dir, &self.dir)?;
        }
        Ok(())
    }

    /// Segment numbers on disk, oldest first (for tests).
    #[cfg(test)]
    pub(super) fn segment_seqs(&self) -> Vec<u64> {
        self.writer().segments.iter().map(|s| s.seq).collect()
    }
}

/// Creates segment `seq`, durably named in the directory.
fn create_segment(state_dir: &Path, dir: &Path, seq: u64) -> Result<File> {
    let path = dir.join(segment_name(seq));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_error(state_dir, "cannot create", &path))?;
    sync_dir(state_dir, dir)?;
    Ok(file)
}

fn sync_dir(state_dir: &Path, dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(state_dir, "cannot sync", dir))
}

/// Maps an I/O error on `path` to a storage error naming the state dir.
fn io_error<'a>(
    state_dir: &'a Path,
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> StorageError + 'a {
    move |source| StorageError::Io {
        path: state_dir.to_path_buf(),
        source: SealError::Io {
            action,
            path: path.to_path_buf(),
            source,
        },
    }
}

/// The `raft-wal-synced` record: magic, position, and the position
/// inverted (a record that does not hold together is damage).
fn encode_synced(pos: Position) -> [u8; SYNCED_LEN] {
    let mut out = [0u8; SYNCED_LEN];
    out[..8].copy_from_slice(SYNCED_MAGIC);
    out[8..16].copy_from_slice(&pos.0.to_be_bytes());
    out[16..24].copy_from_slice(&pos.1.to_be_bytes());
    let check = !(pos.0.rotate_left(32) ^ pos.1);
    out[24..].copy_from_slice(&check.to_be_bytes());
    out
}

fn read_synced(path: &Path, keys: &Keys) -> Result<Position> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => {
            let dir = path.parent().unwrap_or(path);
            return Err(io_error(dir, "cannot read", path)(e));
        }
    };
    if bytes.is_empty() {
        return Ok((0, 0));
    }
    let field = |r: std::ops::Range<usize>| {
        bytes
            .get(r)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
    };
    match (field(8..16), field(16..24)) {
        (Some(seq), Some(off)) if bytes[..] == encode_synced((seq, off))[..] => Ok((seq, off)),
        _ => Err(keys.damaged(&format!(
            "{SYNCED_FILE} does not hold a write-ahead log position"
        ))),
    }
}
