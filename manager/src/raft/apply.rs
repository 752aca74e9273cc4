//! The apply side of the Raft node: committed entries into the store,
//! membership changes into raft-rs and the transport, snapshots of the
//! store into the log (and back, when a snapshot arrives from the leader).

use prost::Message as _;
use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfChangeType, Entry, EntryType, Snapshot};
use shoal_proto::raft::{RaftMember, SnapshotData};
use shoal_proto::store::{Proposal, ProposalGroup};

use super::actor::Node;
use super::log::RaftLog;
use super::node::{Applied, ProposeError, Transport};
use super::snapshotter::{self, SnapshotJob};

/// How many times the last snapshot's size the log must grow before the
/// next snapshot. Each snapshot also makes every node of the tables a
/// write touches be copied once (the copy shares them), so both costs
/// halve from 1 to 2. The price: the log (in memory on every manager, and
/// replayed at a restart) grows to about this many times the store.
const LOG_PER_SNAPSHOT: u64 = 2;

impl<L: RaftLog, T: Transport> Node<L, T> {
    pub(super) fn restore(&mut self, snapshot: &Snapshot) -> Result<(), ProposeError> {
        let data = SnapshotData::decode(snapshot.data.as_ref())
            .map_err(|e| ProposeError::Raft(format!("snapshot data is damaged: {e}")))?;
        let index = snapshot.get_metadata().index;
        self.store.restore(index, data.store.unwrap_or_default());
        tracing::info!(index, "restored store from raft snapshot");
        self.members = data.members.into_iter().map(|m| (m.raft_id, m)).collect();
        self.transport.set_members(&self.members);
        self.applied = index;
        self.last_snapshot = index;
        self.progress.set_snapshot(index);
        self.snapshot_bytes = snapshot.data.len() as u64;
        self.log_bytes = 0;
        self.log_writes = 0;
        let _ = self.applied_tx.send(index);
        Ok(())
    }

    pub(super) fn apply(&mut self, entries: Vec<Entry>) -> Result<(), ProposeError> {
        let started = std::time::Instant::now();
        let (count, bytes) = (
            entries.len(),
            entries.iter().map(|e| e.data.len()).sum::<usize>(),
        );
        for entry in entries {
            let index = entry.index;
            self.log_bytes += entry.data.len() as u64;
            match entry.get_entry_type() {
                EntryType::EntryNormal if entry.data.is_empty() => self.store.skip(index),
                EntryType::EntryNormal => self.apply_proposal(index, &entry.data),
                EntryType::EntryConfChange => self.apply_change(index, &entry)?,
                EntryType::EntryConfChangeV2 => self.store.skip(index),
            }
            self.applied = index;
        }
        if self.applied > *self.applied_tx.borrow() {
            let _ = self.applied_tx.send(self.applied);
        }
        let ms = started.elapsed().as_millis() as u64;
        if ms >= 100 {
            tracing::debug!(
                ms,
                entries = count,
                bytes,
                "applying committed entries took long"
            );
        }
        Ok(())
    }

    fn apply_proposal(&mut self, index: u64, data: &[u8]) {
        let proposals = match proposals(data) {
            Ok(proposals) => proposals,
            Err(e) => {
                // Every manager skips it alike, so stores stay identical.
                tracing::error!(index, error = %e, "undecodable log entry skipped");
                self.store.skip(index);
                return;
            }
        };
        self.log_writes += proposals.len() as u64;
        for (part, proposal) in proposals.into_iter().enumerate() {
            let part = part as u32;
            let batch = proposal.batch.unwrap_or_default();
            let result = self.store.apply_part(index, part, batch);
            if let Some((_, reply)) = self.pending.remove(&proposal.id) {
                let applied = Applied { index, part };
                let _ = reply.send(result.map(|()| applied).map_err(ProposeError::from));
            }
        }
    }

    fn apply_change(&mut self, index: u64, entry: &Entry) -> Result<(), ProposeError> {
        // A change raft-rs refuses is refused alike by every member (they
        // apply the same log): skipped, not a reason to stop this one.
        let cc = match ConfChange::parse_from_bytes(&entry.data) {
            Ok(cc) => cc,
            Err(e) => {
                self.skip_change(index, None, e.to_string());
                return Ok(());
            }
        };
        let applied = super::guard::check_conf_change(&entry.data, &entry.context)
            .and_then(|()| self.raw.apply_conf_change(&cc).map_err(|e| e.to_string()));
        let conf_state = match applied {
            Ok(conf_state) => conf_state,
            Err(e) => {
                self.skip_change(index, Some(cc.id), e);
                return Ok(());
            }
        };
        self.raw
            .store()
            .set_conf_state(conf_state)
            .map_err(|e| ProposeError::Raft(e.to_string()))?;
        match cc.get_change_type() {
            ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                if let Ok(member) = RaftMember::decode(entry.context.as_ref()) {
                    self.members.insert(cc.node_id, member);
                }
            }
            ConfChangeType::RemoveNode => {
                self.members.remove(&cc.node_id);
                self.status_tx.send_modify(|s| {
                    s.removed_ids.insert(cc.node_id);
                });
                if cc.node_id == self.config.id {
                    self.status_tx.send_modify(|s| s.removed = true);
                }
            }
        }
        self.transport.set_members(&self.members);
        self.store.skip(index);
        self.snapshot_now = true;
        if let Some((id, reply)) = self.pending_change.take() {
            if id == cc.id {
                let _ = reply.send(Ok(()));
            } else {
                self.pending_change = Some((id, reply));
            }
        }
        Ok(())
    }

    /// A membership change that cannot be applied: logged and skipped; its
    /// proposer (if it is this node's pending change `id`) is told.
    fn skip_change(&mut self, index: u64, id: Option<u64>, error: String) {
        tracing::error!(index, %error, "membership change skipped: it cannot be applied");
        self.store.skip(index);
        if let Some(id) = id
            && self.pending_change.as_ref().is_some_and(|p| p.0 == id)
            && let Some((_, reply)) = self.pending_change.take()
        {
            let _ = reply.send(Err(ProposeError::Raft(error)));
        }
    }

    /// Snapshots every `snapshot_interval` writes (proposals, however
    /// many share an entry), but never before the log since the last
    /// snapshot is [`LOG_PER_SNAPSHOT`] times as large as that snapshot: a
    /// snapshot costs what the store weighs, so a store that grows with
    /// every write would otherwise be encoded, sealed and written whole
    /// ever more often. This keeps the cost per write constant (half a
    /// byte of snapshot per byte of log) and the log at most about twice
    /// the store.
    /// The loop only copies the tables; the snapshotter thread does the
    /// rest. After a membership change the snapshot is written here, at
    /// once: raft-rs offers a new member the stored snapshot, and refuses
    /// one whose membership does not name it (rare, and small stores).
    pub(super) fn maybe_snapshot(&mut self) -> Result<(), super::storage::StorageError> {
        if self.applied <= self.last_snapshot {
            return Ok(());
        }
        if self.snapshot_now {
            self.snapshot_now = false;
            let job = self.snapshot_job();
            let bytes = snapshotter::take(&mut self.raw.store().snapshot_writer(), job)?;
            self.on_snapshot_stored(bytes);
            return Ok(());
        }
        let due = self.log_writes >= self.config.snapshot_interval
            && self.log_bytes >= LOG_PER_SNAPSHOT * self.snapshot_bytes;
        if due && !self.snapshotting {
            self.snapshotting = true;
            let job = self.snapshot_job();
            self.snapshotter.submit(job);
        }
        Ok(())
    }

    /// A copy of the store as applied, to snapshot; counts start again.
    fn snapshot_job(&mut self) -> SnapshotJob {
        let (index, objects) = self.store.frozen();
        // The last one plus everything the log added since (a store that
        // only grows adds about the log's bytes), and a quarter more: an
        // object stored weighs a little more than in the log (its
        // version), and a buffer that falls short by one byte is copied
        // whole into fresh pages as it doubles, which was two thirds of a
        // snapshot's cost. Room reserved but never written costs no memory
        // (the kernel maps pages as they are touched), but not past what a
        // follower accepts: under strict overcommit a reservation counts.
        let bound = (self.snapshot_bytes + self.log_bytes) as usize * 5 / 4;
        let size_hint = bound.min(super::service::MAX_SNAPSHOT) + (1 << 16);
        self.log_bytes = 0;
        self.log_writes = 0;
        self.last_snapshot = index;
        SnapshotJob {
            index,
            conf_state: self.raw.raft.prs().conf().to_conf_state(),
            objects,
            members: self.members.values().cloned().collect(),
            compact_to: index.saturating_sub(self.config.keep_entries),
            size_hint,
        }
    }

    fn on_snapshot_stored(&mut self, bytes: Option<u64>) {
        if let Some(bytes) = bytes {
            self.snapshot_bytes = bytes;
            // One snapshot at a time, or a later one stored in the loop:
            // either way the last one taken is on disk now.
            self.progress.set_snapshot(self.last_snapshot);
        }
    }

    /// The snapshotter stored a snapshot of `bytes` (`None`: one from the
    /// leader replaced it first).
    pub(super) fn on_snapshot_taken(&mut self, bytes: Option<u64>) {
        self.snapshotting = false;
        self.on_snapshot_stored(bytes);
    }
}

/// The proposals a normal log entry carries, each applied on its own
/// (with `Store::apply_part`). Entries carry a group of proposals; a lone
/// Proposal is the older form, and decodes as an empty group (other field
/// numbers).
pub fn proposals(data: &[u8]) -> Result<Vec<Proposal>, prost::DecodeError> {
    match ProposalGroup::decode(data) {
        Ok(group) if !group.proposals.is_empty() => Ok(group.proposals),
        _ => Proposal::decode(data).map(|p| vec![p]),
    }
}
