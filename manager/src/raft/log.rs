//! The seam between the Raft node and durable storage. The node calls
//! these in raft-rs's documented Ready order. Writes come in two kinds:
//! `persist` is durable when it returns; `write` is readable at once and
//! durable after the next `sync`, which the node runs on a thread of its
//! own so the Raft loop goes on while the disk works (raft-rs's
//! asynchronous Ready: messages that promise persistence wait for it).

use raft::prelude::{ConfState, Entry, HardState, Snapshot};

use super::storage::{SledStorage, StorageError};

/// Makes every write made so far durable; runs off the Raft thread.
pub type Syncer = Box<dyn FnMut() -> Result<(), StorageError> + Send>;

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

    /// Keeps a snapshot of the state machine taken at `index`.
    fn create_snapshot(
        &self,
        index: u64,
        conf_state: ConfState,
        data: Vec<u8>,
    ) -> Result<(), StorageError>;

    /// Drops entries before `index` (they are in the snapshot).
    fn compact(&self, index: u64) -> Result<(), StorageError>;
}

impl RaftLog for SledStorage {
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
        SledStorage::set_conf_state(self, conf_state)?;
        self.flush()
    }

    fn create_snapshot(
        &self,
        index: u64,
        conf_state: ConfState,
        data: Vec<u8>,
    ) -> Result<(), StorageError> {
        SledStorage::create_snapshot(self, index, conf_state, data)?;
        self.flush()
    }

    fn compact(&self, index: u64) -> Result<(), StorageError> {
        SledStorage::compact(self, index)
    }
}
