//! The snapshot side of the Raft node: a thread that encodes a copy of the
//! store, seals and writes it, then compacts the log behind it. The Raft
//! loop only takes the copy and goes on: a snapshot weighs what the store
//! weighs (tens of MB for a few hundred thousand objects), and writing it
//! in the loop stalled every commit for as long as that took.

use prost::Message as _;
use raft::prelude::ConfState;
use shoal_proto::raft::{RaftMember, SnapshotData};
use tokio::sync::mpsc;

use super::log::{SnapshotWrite, SnapshotWriter};
use super::storage::StorageError;
use super::worker::{Report, Worker};
use crate::store::Frozen;

/// A snapshot to take: the tables as they were at `index`.
pub struct SnapshotJob {
    /// The last log index the tables reflect.
    pub index: u64,
    /// The membership at `index`.
    pub conf_state: ConfState,
    /// The objects at `index`.
    pub objects: Frozen,
    /// The members' addresses at `index`.
    pub members: Vec<RaftMember>,
    /// Compact the log before this index once the snapshot is stored.
    pub compact_to: u64,
    /// A bound on the snapshot's size (the last one's, plus the log's
    /// since), to allocate its buffer once; it grows if short.
    pub size_hint: usize,
}

/// What the thread reports for each job: the stored snapshot's size, or
/// `None` when a snapshot from the leader made it out of date first.
pub type TakenReport = Report<Option<u64>>;

/// The node's end of the snapshot thread.
pub struct Snapshotter(Worker<SnapshotJob>);

impl Snapshotter {
    /// Starts the thread; its reports arrive on the returned receiver.
    pub fn start(mut write: SnapshotWriter) -> (Snapshotter, mpsc::UnboundedReceiver<TakenReport>) {
        let (worker, reports) = Worker::start("raft-snapshot", move |jobs, report| {
            lower_priority();
            while let Ok(job) = jobs.recv() {
                if !report.send(take(&mut write, job)) {
                    return;
                }
            }
        });
        (Snapshotter(worker), reports)
    }

    /// Queues a snapshot (the node sends one at a time).
    pub fn submit(&self, job: SnapshotJob) {
        self.0.submit(job);
    }

    /// Stops the thread once it has stored what was queued.
    pub async fn stop(&mut self) {
        self.0.stop().await;
    }
}

/// Snapshots are background work: on a busy machine the Raft loop and the
/// request path come first (three managers on one host otherwise encode
/// their snapshots at once, at full weight, and commits wait for CPU).
fn lower_priority() {
    // SAFETY: plain system calls on this thread's own id; setpriority
    // changes only its nice value.
    let failed = unsafe {
        let tid = libc::gettid() as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10) != 0
    };
    if failed {
        tracing::debug!("could not lower the raft snapshot thread's priority");
    }
}

/// Encodes and stores one snapshot (on the thread, or in the Raft loop
/// when it must be there at once).
pub fn take(write: &mut SnapshotWriter, job: SnapshotJob) -> TakenReport {
    let started = std::time::Instant::now();
    // SnapshotData { store = 1, members = 2 }, the store encoded in place.
    let mut data = Vec::with_capacity(job.size_hint);
    let skip = job.objects.encode_snapshot_field(1, &mut data);
    SnapshotData {
        store: None,
        members: job.members,
    }
    .encode(&mut data)
    .expect("a Vec grows as needed");
    let bytes = (data.len() - skip) as u64;
    let encoded = started.elapsed();
    let stored = write(SnapshotWrite {
        index: job.index,
        conf_state: job.conf_state,
        data,
        skip,
        compact_to: job.compact_to,
    });
    match stored {
        Ok(()) => {
            tracing::debug!(index = job.index, bytes, ?encoded, took = ?started.elapsed(), "raft snapshot taken");
            Ok(Some(bytes))
        }
        Err(StorageError::Raft(raft::StorageError::SnapshotOutOfDate)) => Ok(None),
        Err(e) => Err(e),
    }
}
