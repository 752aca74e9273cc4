//! The seam between the Raft node and durable storage. The node calls
//! these in raft-rs's documented Ready order. Writes come in two kinds:
//! `persist` is durable when it returns; `write` is readable at once and
//! durable after the next `sync`, which the node runs on a thread of its
//! own so the Raft loop goes on while the disk works (raft-rs's
//! asynchronous Ready: messages that promise persistence wait for it).

use raft::prelude::{ConfState, Entry, HardState, Snapshot};

use super::storage::{DiskStorage, StorageError};

/// Makes every write made so far durable; runs off the Raft thread.
pub type Syncer = Box<dyn FnMut() -> Result<(), StorageError> + Send>;

/// A snapshot for [`SnapshotWriter`] to store.
pub struct SnapshotWrite {
    /// The last log index it covers.
    pub index: u64,
    /// The membership at `index`.
    pub conf_state: ConfState,
    /// The state machine's data: `data[skip..]` (the encoder leaves room
    /// before it, which is not copied away).
    pub data: Vec<u8>,
    /// Bytes at the start of `data` that are not part of it.
    pub skip: usize,
    /// Compact the log before this index once it is stored (ignored at
    /// or below the first index).
    pub compact_to: u64,
}

/// Stores snapshots and compacts the log; runs off the Raft thread.
pub type SnapshotWriter = Box<dyn FnMut(SnapshotWrite) -> Result<(), StorageError> + Send>;

/// Durable Raft state: log entries, hard state, conf state, snapshot.
pub trait RaftLog: raft::Storage + Send + 'static {
    /// Persists, atomically and durably, a snapshot (replacing the log),
    /// then entries (truncating any conflicting suffix), then hard state.
    fn persist(
        &self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), StorageError>;

    /// Writes entries and hard state atomically, in order after every
    /// earlier write; readable at once, durable once a later `sync` ends.
    fn write(&self, entries: &[Entry], hard_state: Option<&HardState>) -> Result<(), StorageError>;

    /// A handle that makes the writes so far durable, for another thread.
    fn syncer(&self) -> Syncer;

    /// Records the membership after a conf change was applied (durably).
    fn set_conf_state(&self, conf_state: ConfState) -> Result<(), StorageError>;

    /// A handle that keeps snapshots of the state machine (durably) and
    /// drops the entries they cover, for another thread.
    fn snapshot_writer(&self) -> SnapshotWriter;
}

impl RaftLog for DiskStorage {
    fn persist(
        &self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), StorageError> {
        if snapshot.is_none() && entries.is_empty() && hard_state.is_none() {
            return Ok(());
        }
        self.persist_ready(entries, hard_state.cloned(), snapshot.cloned())
    }

    fn write(&self, entries: &[Entry], hard_state: Option<&HardState>) -> Result<(), StorageError> {
        self.write_ready(entries, hard_state.cloned(), None)
    }

    fn syncer(&self) -> Syncer {
        let storage = self.clone();
        Box::new(move || storage.flush())
    }

    fn set_conf_state(&self, conf_state: ConfState) -> Result<(), StorageError> {
        DiskStorage::set_conf_state(self, conf_state)?;
        self.flush()
    }

    fn snapshot_writer(&self) -> SnapshotWriter {
        let storage = self.clone();
        Box::new(move |snapshot: SnapshotWrite| {
            let data = &snapshot.data[snapshot.skip..];
            storage.create_snapshot(snapshot.index, snapshot.conf_state, data)?;
            // The compaction record is durable with the next sync; lost, a
            // restart keeps a few more entries.
            if snapshot.compact_to > 1 {
                storage.compact(snapshot.compact_to)?;
            }
            Ok(())
        })
    }
}
