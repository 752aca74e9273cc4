//! Durable, sealed Raft storage, implementing raft-rs `Storage`.
//!
//! Why it is shaped so:
//! - Log entries and the hard state go to a write-ahead log of our own
//!   ([`wal`]): every write is one sealed record appended to a segment
//!   file, atomic (a torn record is cut off at open), and a sync is one
//!   `fdatasync`. The whole log since the last compaction is also kept in
//!   memory ([`memlog`]); the WAL is read back only at open.
//! - What changes rarely — membership (conf state), snapshot metadata —
//!   lives in sled, in one tree with key prefixes (`m/`), each change one
//!   sled batch, flushed before the WAL record that depends on it (a
//!   snapshot replacing the log) is written.
//! - Snapshot data lives in files of their own ([`snapfile`],
//!   `snap/<index>.snap`), written whole, synced and renamed before the
//!   `m/snapshot` record names one; the old file goes only once that
//!   record is durable, and strays (a crash in between) go at open. sled
//!   writing a large snapshot took most of its time. Earlier versions kept
//!   snapshots as chunks in a sled tree of their own; those still open,
//!   and give way to a file at the next snapshot.
//! - Every value is sealed with the [`DataKey`], with the record's key (or
//!   WAL position) as AAD, so a value moved elsewhere fails authentication.
//! - A sealed marker record written at creation tells a fresh directory
//!   from a damaged one, and a wrong data key from a damaged record; a
//!   `raft-state` file beside the sled database notices a database (or
//!   WAL) that was lost or replaced by an empty one. Its first version
//!   kept the log in sled too: such a directory is moved to the WAL at open.
//! - sled takes a record that fails its checksum during recovery for the
//!   torn end of its log, and silently drops it and everything written
//!   after it: the database opens as it was some flushes ago, consistent
//!   but short of writes that were acknowledged. So every flush counts
//!   itself in a sealed record (`m/flushes`) and, once durable, in a
//!   `raft-flushes` file beside the database (a plain write, no fsync: it
//!   survives a crash of the process, and after a power loss it can only
//!   lag behind sled, never run ahead). A database that opens with fewer
//!   flushes than the file counts lost durable records: it is refused as
//!   damaged rather than served as a shorter log.
//! - Semantics (indexes, errors) follow raft-rs `MemStorage`, except that
//!   misuse MemStorage answers with a panic returns [`StorageError::Invalid`].
//! - Positions and metadata are cached in memory; writers hold the cache's
//!   write lock across their batch, so readers see whole changes only.

mod codec;
mod disk;
mod flushes;
#[doc(hidden)]
pub(crate) mod fuzzing;
mod memlog;
mod plan;
mod recover;
mod snapfile;
mod snapshot;
mod wal;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use ::raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use ::raft::{GetEntriesContext, RaftState, Storage};

use crate::seal::{DataKey, SealError};
use codec::{CHUNK_TREE, K_MARKER, Keys, chunk_key};
use flushes::Flushes;
use memlog::MemLog;
use plan::{OldSnapshot, Plan, term_at};
use recover::{migrate_log, recover_log};
use wal::{Record, Wal};

/// Name of the sled database directory inside the state directory.
const SLED_DIR: &str = "db";
/// File written once the marker is durable: "this directory was initialised".
const INIT_FILE: &str = "raft-state";
/// Its contents: v2 keeps the log in the WAL; v1 kept it in sled.
const INIT_CONTENTS: &[u8] = b"shoal raft state v2\n";
const INIT_V1: &[u8] = b"shoal raft state v1\n";
/// Plaintext of the marker record.
const MARKER: &[u8] = b"shoal raft storage v1";
/// Snapshot data is stored in chunks of this many bytes.
const CHUNK_LEN: usize = 1 << 20;

/// Errors of the Raft storage. Messages name the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A Raft-level condition (compacted, unavailable, out of date), with
    /// raft-rs `MemStorage`'s meaning.
    #[error("{0}")]
    Raft(#[from] ::raft::StorageError),
    /// The data key does not open the state directory.
    #[error(
        "cannot open raft state in {}: wrong data key (or its marker record is damaged)",
        path.display()
    )]
    WrongDataKey {
        /// The state directory.
        path: PathBuf,
    },
    /// A record failed authentication.
    #[error(
        "raft {what} failed authentication: state dir {} damaged or wrong data key",
        path.display()
    )]
    Authentication {
        /// The state directory.
        path: PathBuf,
        /// The record, e.g. "log entry 1234".
        what: String,
    },
    /// The state directory is inconsistent (missing or malformed records).
    #[error("raft state in {} is damaged: {what}", path.display())]
    Damaged {
        /// The state directory.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A call the Raft contract forbids (MemStorage panics on these).
    #[error("invalid raft storage call: {0}")]
    Invalid(String),
    /// sled failed (I/O error, or corruption sled itself detected).
    #[error("raft state in {}: {source}", path.display())]
    Sled {
        /// The state directory.
        path: PathBuf,
        /// The sled error.
        source: sled::Error,
    },
    /// A file operation on the state directory failed.
    #[error("raft state in {}: {source}", path.display())]
    Io {
        /// The state directory.
        path: PathBuf,
        /// The underlying error.
        source: SealError,
    },
}

impl From<StorageError> for ::raft::Error {
    fn from(e: StorageError) -> ::raft::Error {
        match e {
            StorageError::Raft(e) => ::raft::Error::Store(e),
            e => ::raft::Error::Store(::raft::StorageError::Other(Box::new(e))),
        }
    }
}

type Result<T> = std::result::Result<T, StorageError>;

/// What the cache knows: positions and all metadata (not entry bodies).
#[derive(Debug, Clone, Default)]
struct State {
    hard: HardState,
    conf: ConfState,
    snap: SnapshotMetadata,
    snap_chunks: u32,
    snap_len: u64,
    /// The snapshot's data is in a file (else in sled chunks: earlier
    /// versions).
    snap_in_file: bool,
    /// Indexes of the first and last stored entries, if any.
    entries: Option<(u64, u64)>,
}

impl State {
    fn first_index(&self) -> u64 {
        match self.entries {
            Some((first, _)) => first,
            None => self.snap.index + 1,
        }
    }

    fn last_index(&self) -> u64 {
        match self.entries {
            Some((_, last)) => last,
            None => self.snap.index,
        }
    }
}

struct Inner {
    path: PathBuf,
    db: sled::Db,
    /// Snapshot chunks ([`CHUNK_TREE`]).
    chunks: sled::Tree,
    keys: Keys,
    state: RwLock<State>,
    /// The entries (taken after `state`, never alone by a writer).
    log: RwLock<MemLog>,
    /// Entries and hard state on disk (appended under `state`).
    wal: Wal,
    /// sled flushes are one at a time.
    flushes: std::sync::Mutex<Flushes>,
    /// Snapshots are written one at a time ([`DiskStorage::create_snapshot`]
    /// runs beside the Raft thread).
    snapshots: std::sync::Mutex<()>,
}

/// A Raft node's durable state on disk, every record sealed: log and hard
/// state in a WAL, snapshot data in files, conf state and snapshot
/// metadata in a sled database. Cheap to clone: clones share them.
#[derive(Clone)]
pub struct DiskStorage {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DiskStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStorage")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl DiskStorage {
    /// Opens the Raft state in `path`, creating it if the directory is new
    /// or empty. Fails clearly on a wrong key or a damaged directory.
    pub fn open(path: &Path, key: DataKey) -> Result<DiskStorage> {
        DiskStorage::open_segments(path, key, wal::SEGMENT_BYTES)
    }

    /// [`DiskStorage::open`] with WAL segments closed at `segment_bytes`.
    fn open_segments(path: &Path, key: DataKey, segment_bytes: u64) -> Result<DiskStorage> {
        let io = |source| StorageError::Io {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(path).map_err(|e| {
            io(SealError::Io {
                action: "cannot create",
                path: path.to_path_buf(),
                source: e,
            })
        })?;
        let init = std::fs::read(path.join(INIT_FILE)).ok();
        let initialised = init.is_some();
        let sled_err = |source| StorageError::Sled {
            path: path.to_path_buf(),
            source,
        };
        let db = codec::open_sled(&path.join(SLED_DIR)).map_err(|e| match e {
            sled::Error::Corruption { .. } => StorageError::Damaged {
                path: path.to_path_buf(),
                what: format!("the sled database in {SLED_DIR}/ failed its checksums ({e})"),
            },
            e => sled_err(e),
        })?;
        let keys = Keys::new(path.to_path_buf(), key);
        match db.get(K_MARKER).map_err(sled_err)? {
            Some(sealed) => {
                let plain = keys.key().open(&sealed, &codec::aad(K_MARKER));
                if plain.as_deref().ok() != Some(MARKER) {
                    return Err(StorageError::WrongDataKey {
                        path: path.to_path_buf(),
                    });
                }
            }
            None if initialised => {
                return Err(keys.damaged(
                    "its marker record is missing: the sled database was lost, \
                     truncated or replaced",
                ));
            }
            None if !db.is_empty() => {
                return Err(keys.damaged("it holds records but no marker record"));
            }
            None => {
                db.insert(K_MARKER, keys.seal(K_MARKER, MARKER))
                    .map_err(sled_err)?;
                db.flush().map_err(sled_err)?;
            }
        }
        let chunks = db.open_tree(CHUNK_TREE).map_err(sled_err)?;
        codec::migrate_legacy_chunks(&db, &chunks, &keys)?;
        let mut state = codec::load_state(&db, &chunks, &keys)?;
        // The stored snapshot's data is a file or chunks: the rest goes.
        let stored = Some(state.snap.index);
        codec::drop_stale_chunks(&chunks, &keys, stored.filter(|_| !state.snap_in_file))?;
        snapfile::drop_stale(&keys, stored.filter(|_| state.snap_in_file))?;
        let flushes = Flushes::open(path, &db, &keys)?;
        let wal_expected = init.as_deref().is_some_and(|c| c != INIT_V1);
        let (wal, mut replayed) = Wal::open(path, &keys, !wal_expected, segment_bytes)?;
        if replayed.torn > 0 {
            tracing::info!(
                path = %path.display(),
                bytes = replayed.torn,
                "raft log: cut off the torn end of a write that never completed"
            );
        }
        let legacy = codec::take_legacy_log(&db, &keys)?;
        if let Some((hard, entries)) = legacy {
            migrate_log(&wal, &keys, &mut replayed, hard, entries)?;
            codec::drop_legacy_log(&db, &keys)?;
        }
        if init.as_deref() != Some(INIT_CONTENTS) {
            crate::seal::write_atomic(&path.join(INIT_FILE), INIT_CONTENTS).map_err(io)?;
        }
        let entries = recover_log(&keys, &mut state, replayed)?;
        Ok(DiskStorage {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                db,
                chunks,
                keys,
                state: RwLock::new(state),
                log: RwLock::new(MemLog::new(entries)),
                wal,
                flushes: std::sync::Mutex::new(flushes),
                snapshots: std::sync::Mutex::new(()),
            }),
        })
    }

    /// The state directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The stored hard state.
    pub fn hard_state(&self) -> HardState {
        self.read().hard.clone()
    }

    /// The stored conf state.
    pub fn conf_state(&self) -> ConfState {
        self.read().conf.clone()
    }

    /// Metadata of the stored snapshot (index 0 if there is none).
    pub fn snapshot_metadata(&self) -> SnapshotMetadata {
        self.read().snap.clone()
    }

    /// Appends entries, first dropping any stored entries at or after
    /// `entries[0].index` (a conflicting suffix), as MemStorage does.
    pub fn append(&self, entries: &[Entry]) -> Result<()> {
        self.write_plan(|p| p.append(entries))
    }

    /// Saves the hard state.
    pub fn set_hard_state(&self, hs: HardState) -> Result<()> {
        self.write_plan(|p| {
            p.set_hard_state(hs);
            Ok(())
        })
    }

    /// Sets the hard state's commit index (for `LightReady::commit_index`).
    pub fn set_commit(&self, commit: u64) -> Result<()> {
        self.write_plan(|p| {
            let mut hs = p.st.hard.clone();
            hs.commit = commit;
            p.set_hard_state(hs);
            Ok(())
        })
    }

    /// Saves the conf state.
    pub fn set_conf_state(&self, cs: ConfState) -> Result<()> {
        self.write_plan(|p| {
            p.set_conf_state(cs);
            Ok(())
        })
    }

    /// Replaces the log with a snapshot received from the leader: the log
    /// is emptied, the first index becomes `snapshot index + 1`, and the
    /// hard state and conf state follow the snapshot (as MemStorage).
    pub fn apply_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        let _one = self.one_snapshot();
        self.write_plan(|p| p.apply_snapshot(snapshot))
    }

    /// Drops the entries before `compact_index`. Compacting at or below
    /// the first index does nothing; past `last_index + 1` is an error.
    pub fn compact(&self, compact_index: u64) -> Result<()> {
        self.write_plan(|p| p.compact(compact_index))
    }

    /// Persists what a raft-rs `Ready` asks for in ONE atomic write, in
    /// the documented order (snapshot, then entries, then hard state),
    /// then makes it durable.
    pub fn persist_ready(
        &self,
        entries: &[Entry],
        hard_state: Option<HardState>,
        snapshot: Option<Snapshot>,
    ) -> Result<()> {
        self.write_ready(entries, hard_state, snapshot)?;
        self.flush()
    }

    /// Writes what a `Ready` asks for as [`DiskStorage::persist_ready`]
    /// does, but durable only after the next [`DiskStorage::flush`], which
    /// the Raft node runs on a thread of its own. Readable at once (from
    /// memory). Records reach the WAL in order and a torn one is cut off at
    /// open, so a crash loses a suffix of what was not yet flushed, never
    /// a write in the middle.
    pub fn write_ready(
        &self,
        entries: &[Entry],
        hard_state: Option<HardState>,
        snapshot: Option<Snapshot>,
    ) -> Result<()> {
        if entries.is_empty() && hard_state.is_none() && snapshot.is_none() {
            return Ok(());
        }
        let _one = snapshot.is_some().then(|| self.one_snapshot());
        self.write_plan(|p| {
            if let Some(snap) = snapshot {
                p.apply_snapshot(snap)?;
            }
            p.append(entries)?;
            if let Some(hs) = hard_state {
                p.set_hard_state(hs);
            }
            Ok(())
        })
    }

    /// Makes everything written so far durable: one `fdatasync` of the
    /// WAL (sled's rare changes are flushed as they are made). Safe to
    /// call from another thread while the Raft thread writes.
    pub fn flush(&self) -> Result<()> {
        self.inner.wal.sync()
    }

    /// sled's flush of what it holds, counted (see [`flushes`]).
    fn flush_sled(&self) -> Result<()> {
        self.inner
            .flushes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .flush(&self.inner.db, &self.inner.keys)
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn sled(&self, source: sled::Error) -> StorageError {
        StorageError::Sled {
            path: self.inner.path.clone(),
            source,
        }
    }

    /// Runs `f` on a plan over a copy of the state, writes what it plans
    /// (sled first, durably, then the WAL record), then publishes the new
    /// state.
    fn write_plan(&self, f: impl FnOnce(&mut Plan<'_>) -> Result<()>) -> Result<()> {
        let mut guard = self.write();
        let mut plan = Plan {
            keys: &self.inner.keys,
            st: guard.clone(),
            record: Record::default(),
            batch: sled::Batch::default(),
            sled_writes: false,
            old_snapshot: None,
        };
        f(&mut plan)?;
        let Plan {
            st,
            record,
            batch,
            sled_writes,
            old_snapshot,
            ..
        } = plan;
        if sled_writes {
            // What sled records (membership, a snapshot) follows the log
            // it came from, and a snapshot is durable before the WAL
            // record that drops the log for it.
            self.inner.wal.sync()?;
            self.inner.db.apply_batch(batch).map_err(|e| self.sled(e))?;
            self.flush_sled()?;
        }
        if !record.is_empty() {
            if self.inner.wal.full() {
                self.inner
                    .wal
                    .rotate(&self.inner.keys, &recover::segment_header(&guard))?;
            }
            self.inner.wal.append(&self.inner.keys, &record)?;
        }
        self.inner
            .log
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .follow(&record.entries, st.entries);
        if let Some(compact) = record.compact {
            // Whole segments older than both the compaction and the
            // snapshot (restart replays from the snapshot on).
            self.inner
                .wal
                .remove_before(compact.min(st.snap.index + 1))?;
        }
        *guard = st;
        // Only once no durable record names it any more.
        match old_snapshot {
            Some(OldSnapshot::File(index)) => snapfile::remove(&self.inner.keys, index)?,
            Some(OldSnapshot::Chunks(generation, count)) => {
                let mut stale = sled::Batch::default();
                for n in 0..count {
                    stale.remove(&chunk_key(generation, n)[..]);
                }
                self.inner
                    .chunks
                    .apply_batch(stale)
                    .map_err(|e| self.sled(e))?;
            }
            None => {}
        }
        Ok(())
    }

    fn mem_log(&self) -> RwLockReadGuard<'_, MemLog> {
        self.inner.log.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl Storage for DiskStorage {
    fn initial_state(&self) -> ::raft::Result<RaftState> {
        let st = self.read();
        Ok(RaftState::new(st.hard.clone(), st.conf.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> ::raft::Result<Vec<Entry>> {
        let max_size = max_size.into().unwrap_or(::raft::NO_LIMIT);
        let st = self.read();
        if low < st.first_index() {
            return Err(::raft::Error::Store(::raft::StorageError::Compacted));
        }
        if high > st.last_index() + 1 {
            return Err(::raft::Error::Store(::raft::StorageError::Unavailable));
        }
        Ok(self
            .mem_log()
            .slice(low, high, max_size)
            .ok_or_else(|| StorageError::Invalid(format!("entries {low}..{high} not in memory")))?)
    }

    fn term(&self, idx: u64) -> ::raft::Result<u64> {
        let st = self.read();
        Ok(term_at(&self.mem_log(), &st, idx)?)
    }

    fn first_index(&self) -> ::raft::Result<u64> {
        Ok(self.read().first_index())
    }

    fn last_index(&self) -> ::raft::Result<u64> {
        Ok(self.read().last_index())
    }

    /// The stored snapshot. If it is older than `request_index`, answers
    /// `SnapshotTemporarilyUnavailable` (the node must make a newer one)
    /// rather than MemStorage's relabelled snapshot.
    fn snapshot(&self, request_index: u64, _to: u64) -> ::raft::Result<Snapshot> {
        let st = self.read();
        if st.snap.index < request_index {
            return Err(::raft::Error::Store(
                ::raft::StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.read_snapshot(&st)?)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_disk;
#[cfg(test)]
mod tests_wal;
