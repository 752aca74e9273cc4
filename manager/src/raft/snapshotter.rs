//! The snapshot side of the Raft node: a thread that encodes a copy of the
//! store, seals and writes it, then compacts the log behind it. The Raft
//! loop only takes the copy and goes on: a snapshot weighs what the store
//! weighs (tens of MB for a few hundred thousand objects), and writing it
//! in the loop stalled every commit for as long as that took.

use std::sync::mpsc as std_mpsc;

use prost::Message as _;
use raft::prelude::ConfState;
use shoal_proto::raft::{RaftMember, SnapshotData};
use tokio::sync::mpsc;

use super::log::{SnapshotWrite, SnapshotWriter};
use super::storage::StorageError;
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
}

/// What the thread reports for each job: the stored snapshot's size, or
/// `None` when a snapshot from the leader made it out of date first.
pub type TakenReport = Result<Option<u64>, StorageError>;

/// The node's end of the snapshot thread.
pub struct Snapshotter {
    queue: Option<std_mpsc::Sender<SnapshotJob>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Snapshotter {
    /// Starts the thread; its reports arrive on the returned receiver.
    pub fn start(mut write: SnapshotWriter) -> (Snapshotter, mpsc::UnboundedReceiver<TakenReport>) {
        let (queue, jobs) = std_mpsc::channel::<SnapshotJob>();
        let (done, reports) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("raft-snapshot".into())
            .spawn(move || {
                lower_priority();
                while let Ok(job) = jobs.recv() {
                    let report = take(&mut write, job);
                    let failed = report.is_err();
                    if done.send(report).is_err() || failed {
                        return;
                    }
                }
            })
            .expect("spawning the raft snapshot thread");
        let snapshotter = Snapshotter {
            queue: Some(queue),
            thread: Some(thread),
        };
        (snapshotter, reports)
    }

    /// Queues a snapshot (the node sends one at a time).
    pub fn submit(&self, job: SnapshotJob) {
        if let Some(queue) = &self.queue {
            // A send fails only when the thread ended on an error it
            // already reported.
            let _ = queue.send(job);
        }
    }

    /// Stops the thread once it has finished what was queued, and waits
    /// for it (it holds the storage, which a restart reopens).
    pub async fn stop(&mut self) {
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
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
    let mut data = Vec::new();
    job.objects.encode_snapshot_field(1, &mut data);
    SnapshotData {
        store: None,
        members: job.members,
    }
    .encode(&mut data)
    .expect("a Vec grows as needed");
    let bytes = data.len() as u64;
    let encoded = started.elapsed();
    let stored = write(SnapshotWrite {
        index: job.index,
        conf_state: job.conf_state,
        data,
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
