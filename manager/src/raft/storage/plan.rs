//! Writes: a [`Plan`] stages a change on a copy of the cached metadata,
//! as one WAL [`Record`] (entries, hard state, compaction, a snapshot
//! replacing the log) plus, for what lives in sled (membership, snapshot
//! metadata and chunks), one sled batch: the caller applies all or none.

use ::raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use protobuf::Message;

use super::codec::{K_CONF, K_SNAP, Keys, SnapRecord};
use super::memlog::MemLog;
use super::snapfile;
use super::wal::Record;
use super::{Result, State, StorageError};

/// The term of entry `index` with MemStorage's errors.
pub(super) fn term_at(log: &MemLog, st: &State, index: u64) -> Result<u64> {
    if index == st.snap.index {
        return Ok(st.snap.term);
    }
    if index < st.first_index() {
        return Err(::raft::StorageError::Compacted.into());
    }
    if index > st.last_index() {
        return Err(::raft::StorageError::Unavailable.into());
    }
    log.get(index)
        .map(|e| e.term)
        .ok_or_else(|| StorageError::Invalid(format!("entry {index} is not in memory")))
}

/// A change being prepared: the new state and what writes it.
pub(super) struct Plan<'a> {
    pub(super) keys: &'a Keys,
    pub(super) st: State,
    /// What goes into the WAL (its entries are also what the in-memory
    /// log appends).
    pub(super) record: Record,
    /// What goes into sled, if anything does.
    pub(super) batch: sled::Batch,
    pub(super) sled_writes: bool,
    /// The snapshot being replaced, removed once `batch` is durable: its
    /// file, or its generation and chunk count in [`super::codec::CHUNK_TREE`].
    pub(super) old_snapshot: Option<OldSnapshot>,
}

/// Where the data of a replaced snapshot is, to remove it.
#[derive(Debug, Clone, Copy)]
pub(super) enum OldSnapshot {
    /// In a snapshot file (index).
    File(u64),
    /// In sled chunks (generation, count).
    Chunks(u64, u32),
}

impl Plan<'_> {
    pub(super) fn set_hard_state(&mut self, hs: HardState) {
        self.record.hard = Some(hs.clone());
        self.st.hard = hs;
    }

    pub(super) fn set_conf_state(&mut self, cs: ConfState) {
        self.put_message(K_CONF, &cs);
        self.st.conf = cs;
    }

    fn put_message(&mut self, key: &[u8], msg: &dyn Message) {
        // Writing a protobuf message to a Vec cannot fail.
        let bytes = msg.write_to_bytes().unwrap_or_default();
        self.batch.insert(key, self.keys.seal(key, &bytes));
        self.sled_writes = true;
    }

    pub(super) fn append(&mut self, ents: &[Entry]) -> Result<()> {
        let Some(head) = ents.first() else {
            return Ok(());
        };
        let (first, last) = (self.st.first_index(), self.st.last_index());
        if head.index < first {
            return Err(StorageError::Invalid(format!(
                "append would overwrite compacted entries: first index {first}, append from {}",
                head.index
            )));
        }
        if head.index > last + 1 {
            return Err(StorageError::Invalid(format!(
                "append leaves a gap: last index {last}, append from {}",
                head.index
            )));
        }
        for (i, e) in ents.iter().enumerate() {
            if e.index != head.index + i as u64 {
                return Err(StorageError::Invalid(format!(
                    "entries to append are not consecutive: {} follows {}",
                    e.index,
                    head.index + i as u64 - 1
                )));
            }
        }
        let new_last = head.index + ents.len() as u64 - 1;
        // A conflicting suffix goes: replay truncates at the first index.
        if let Some(prev) = self.record.entries.first().map(|e| e.index)
            && head.index < prev + self.record.entries.len() as u64
        {
            self.record
                .entries
                .truncate(head.index.saturating_sub(prev) as usize);
        }
        self.record.entries.extend_from_slice(ents);
        let new_first = match self.st.entries {
            Some((f, _)) => f,
            None => head.index,
        };
        self.st.entries = Some((new_first, new_last));
        Ok(())
    }

    pub(super) fn compact(&mut self, compact_index: u64) -> Result<()> {
        let (first, last) = (self.st.first_index(), self.st.last_index());
        if compact_index <= first {
            return Ok(());
        }
        if compact_index > last + 1 {
            return Err(StorageError::Invalid(format!(
                "compact to {compact_index} past the last index {last}"
            )));
        }
        if let Some((_, l)) = self.st.entries {
            self.st.entries = (compact_index <= l).then_some((compact_index, l));
        }
        self.record.compact = Some(compact_index);
        Ok(())
    }

    pub(super) fn apply_snapshot(&mut self, mut snap: Snapshot) -> Result<()> {
        let meta = snap.take_metadata();
        let index = meta.index;
        if self.st.first_index() > index {
            return Err(::raft::StorageError::SnapshotOutOfDate.into());
        }
        self.st.entries = None;
        self.record.entries.clear();
        self.record.reset = Some((index, meta.term));
        let mut hs = self.st.hard.clone();
        hs.term = hs.term.max(meta.term);
        hs.commit = index;
        self.set_hard_state(hs);
        self.set_conf_state(meta.get_conf_state().clone());
        let data = std::mem::take(&mut snap.data);
        self.write_snapshot(meta, &data)
    }

    /// Writes a snapshot received from the leader: its file at once
    /// (durable before any record names it; a crash before the record
    /// leaves a stray file that the next open removes), then the record.
    pub(super) fn write_snapshot(&mut self, meta: SnapshotMetadata, data: &[u8]) -> Result<()> {
        self.check_snapshot_follows(&meta)?;
        let chunks = snapfile::write(self.keys, &meta, data)?;
        self.record_snapshot(meta, chunks, data.len() as u64)
    }

    fn check_snapshot_follows(&self, meta: &SnapshotMetadata) -> Result<()> {
        if self.st.snap.index != 0 && meta.index <= self.st.snap.index {
            return Err(StorageError::Invalid(format!(
                "snapshot at index {} does not follow the stored one at {}",
                meta.index, self.st.snap.index
            )));
        }
        Ok(())
    }

    /// Records the metadata of a snapshot whose file is already durable
    /// (see [`snapfile::write`]); the old one's data goes after the record
    /// is durable.
    pub(super) fn record_snapshot(
        &mut self,
        meta: SnapshotMetadata,
        chunks: u32,
        len: u64,
    ) -> Result<()> {
        self.check_snapshot_follows(&meta)?;
        if self.st.snap.index != meta.index {
            self.old_snapshot = if self.st.snap_in_file {
                Some(OldSnapshot::File(self.st.snap.index))
            } else if self.st.snap_chunks > 0 {
                Some(OldSnapshot::Chunks(self.st.snap.index, self.st.snap_chunks))
            } else {
                None
            };
        }
        let record = SnapRecord {
            chunks,
            len,
            meta: meta.clone(),
            in_file: true,
        };
        self.batch
            .insert(K_SNAP, self.keys.seal(K_SNAP, &record.encode()));
        self.sled_writes = true;
        self.st.snap = meta;
        self.st.snap_chunks = chunks;
        self.st.snap_len = len;
        self.st.snap_in_file = true;
        Ok(())
    }
}

/// Snapshot `data` sealed as chunks of generation `meta.index` (each bound
/// to the snapshot and its place), as earlier versions stored them in the
/// chunk tree (tests make such directories with it).
#[cfg(test)]
pub(super) fn seal_chunks(keys: &Keys, meta: &SnapshotMetadata, data: &[u8]) -> (sled::Batch, u32) {
    let chunks = data.len().div_ceil(super::CHUNK_LEN) as u32;
    let mut batch = sled::Batch::default();
    for (n, chunk) in data.chunks(super::CHUNK_LEN).enumerate() {
        let aad = super::codec::chunk_aad(meta, n as u32, chunks);
        batch.insert(
            &super::codec::chunk_key(meta.index, n as u32)[..],
            keys.key().seal(chunk, &aad),
        );
    }
    (batch, chunks)
}
