//! The seam between the Raft node and durable storage. The node calls
//! these in raft-rs's documented Ready order; an implementation must have
//! made a write durable when `persist` returns (the node sends messages
//! that promise persistence right after).

use raft::prelude::{ConfState, Entry, HardState, Snapshot};

use super::storage::{SledStorage, StorageError};

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

    /// Records the commit index the node learned after a Ready.
    fn set_commit(&self, commit: u64) -> Result<(), StorageError>;

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

    fn set_commit(&self, commit: u64) -> Result<(), StorageError> {
        // Not flushed: a lost commit index is relearned from the leader.
        SledStorage::set_commit(self, commit)
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
