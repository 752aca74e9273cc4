//! The disk side of the Raft node: a thread that makes written Readys
//! durable, many at a time. The node writes a Ready's entries and hard
//! state (readable at once), hands its number here and goes on; this
//! thread takes every number queued since its last sync, syncs once, and
//! reports the highest. That is group commit: under load one `fdatasync`
//! covers the Readys of many proposals, while the Raft loop keeps
//! ticking, stepping and replicating during the sync.

use std::sync::mpsc as std_mpsc;

use tokio::sync::mpsc;

use super::log::Syncer;
use super::storage::StorageError;

/// What the thread reports: Readys up to this number are durable.
pub type Synced = Result<u64, StorageError>;

/// The node's end of the flusher.
pub struct Flusher {
    queue: Option<std_mpsc::Sender<(u64, bool)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flusher {
    /// Starts the thread; its reports arrive on the returned receiver.
    pub fn start(mut sync: Syncer) -> (Flusher, mpsc::UnboundedReceiver<Synced>) {
        let (queue, work) = std_mpsc::channel::<(u64, bool)>();
        let (done, reports) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("raft-flusher".into())
            .spawn(move || {
                while let Ok((mut number, mut must_sync)) = work.recv() {
                    while let Ok((n, s)) = work.try_recv() {
                        number = n;
                        must_sync |= s;
                    }
                    let report = if must_sync {
                        sync().map(|()| number)
                    } else {
                        Ok(number)
                    };
                    let failed = report.is_err();
                    if done.send(report).is_err() || failed {
                        return;
                    }
                }
            })
            .expect("spawning the raft flusher thread");
        let flusher = Flusher {
            queue: Some(queue),
            thread: Some(thread),
        };
        (flusher, reports)
    }

    /// Ready `number` is written; `must_sync` if it holds entries, a vote
    /// or a snapshot (raft-rs's `must_sync`). Numbers only grow.
    pub fn submit(&self, number: u64, must_sync: bool) {
        if let Some(queue) = &self.queue {
            // A send fails only when the thread ended on an error it
            // already reported.
            let _ = queue.send((number, must_sync));
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
