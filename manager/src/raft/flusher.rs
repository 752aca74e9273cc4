//! The disk side of the Raft node: a thread that makes written Readys
//! durable, many at a time. The node writes a Ready's entries and hard
//! state (readable at once), hands its number here and goes on; this
//! thread takes every number queued since its last sync, syncs once, and
//! reports the highest. That is group commit: under load one `fdatasync`
//! covers the Readys of many proposals, while the Raft loop keeps
//! ticking, stepping and replicating during the sync.

use tokio::sync::mpsc;

use super::log::Syncer;
use super::worker::{Report, Worker};

/// What the thread reports: Readys up to this number are durable.
pub type Synced = Report<u64>;

/// The node's end of the flusher.
pub struct Flusher(Worker<(u64, bool)>);

impl Flusher {
    /// Starts the thread; its reports arrive on the returned receiver.
    pub fn start(mut sync: Syncer) -> (Flusher, mpsc::UnboundedReceiver<Synced>) {
        let (worker, reports) = Worker::start("raft-flusher", move |work, report| {
            while let Ok((mut number, mut must_sync)) = work.recv() {
                while let Ok((n, s)) = work.try_recv() {
                    number = n;
                    must_sync |= s;
                }
                let synced = if must_sync {
                    sync().map(|()| number)
                } else {
                    Ok(number)
                };
                if !report.send(synced) {
                    return;
                }
            }
        });
        (Flusher(worker), reports)
    }

    /// Ready `number` is written; `must_sync` if it holds entries, a vote
    /// or a snapshot (raft-rs's `must_sync`). Numbers only grow.
    pub fn submit(&self, number: u64, must_sync: bool) {
        self.0.submit((number, must_sync));
    }

    /// Stops the thread once it has synced what was queued.
    pub async fn stop(&mut self) {
        self.0.stop().await;
    }
}
