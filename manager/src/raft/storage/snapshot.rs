//! Snapshots in [`DiskStorage`]: the state machine's, written beside the
//! Raft thread, and reading back the stored one (from its file, or from
//! the sled chunks of earlier versions).

use ::raft::eraftpb::{ConfState, Snapshot, SnapshotMetadata};

use super::codec::{self, chunk_key};
use super::plan::term_at;
use super::{DiskStorage, Result, State, StorageError, snapfile};

impl DiskStorage {
    /// Stores the snapshot the state machine made of everything up to
    /// `index` (which must be in the log). Does not compact the log.
    ///
    /// Made to run beside the Raft thread: the slow part (sealing and
    /// writing the snapshot file) holds no lock the Raft thread takes; only
    /// the small metadata record is written under the state lock. A snapshot
    /// received meanwhile makes this one out of date (`SnapshotOutOfDate`).
    pub fn create_snapshot(&self, index: u64, conf_state: ConfState, data: &[u8]) -> Result<()> {
        // Files are named by index: one snapshot written at a time.
        let _one = self.one_snapshot();
        let meta = {
            let st = self.read();
            if index <= st.snap.index {
                return Err(::raft::StorageError::SnapshotOutOfDate.into());
            }
            if index > st.last_index() {
                return Err(StorageError::Invalid(format!(
                    "snapshot at index {index} beyond the last log index {}",
                    st.last_index()
                )));
            }
            let mut meta = SnapshotMetadata {
                index,
                term: term_at(&self.mem_log(), &st, index)?,
                ..Default::default()
            };
            meta.set_conf_state(conf_state);
            meta
        };
        let chunks = snapfile::write(&self.inner.keys, &meta, data)?;
        // The record must follow a durable log; syncing it here leaves
        // little for the sync under the state lock the Raft loop waits on.
        self.flush()?;
        // A file no record names (this failed) goes at the next open.
        self.write_plan(|p| {
            if index <= p.st.snap.index {
                return Err(::raft::StorageError::SnapshotOutOfDate.into());
            }
            p.record_snapshot(meta, chunks, data.len() as u64)
        })
    }

    /// Held while a snapshot is written (files are named by index).
    pub(super) fn one_snapshot(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner
            .snapshots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn read_snapshot(&self, st: &State) -> Result<Snapshot> {
        let data = if st.snap_in_file {
            snapfile::read(&self.inner.keys, &st.snap, st.snap_chunks, st.snap_len)?
        } else {
            self.read_snapshot_chunks(st)?
        };
        let mut snap = Snapshot::default();
        snap.set_metadata(st.snap.clone());
        snap.data = data.into();
        Ok(snap)
    }

    /// A snapshot kept in sled chunks by an earlier version.
    fn read_snapshot_chunks(&self, st: &State) -> Result<Vec<u8>> {
        let mut data = Vec::with_capacity(st.snap_len.min(1 << 30) as usize);
        for n in 0..st.snap_chunks {
            let key = chunk_key(st.snap.index, n);
            let what = || format!("snapshot chunk {n} of {}", st.snap_chunks);
            let sealed = self
                .inner
                .chunks
                .get(key)
                .map_err(|e| self.sled(e))?
                .ok_or_else(|| self.inner.keys.damaged(&format!("{} is missing", what())))?;
            let aad = codec::chunk_aad(&st.snap, n, st.snap_chunks);
            let plain = self.inner.keys.open_aad(&sealed, &aad, what)?;
            data.extend_from_slice(&plain);
        }
        if data.len() as u64 != st.snap_len {
            return Err(self.inner.keys.damaged(&format!(
                "snapshot data is {} bytes, {} expected",
                data.len(),
                st.snap_len
            )));
        }
        Ok(data)
    }
}
