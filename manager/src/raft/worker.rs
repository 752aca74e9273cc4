//! A thread of the Raft node's own: it takes jobs from the loop in order,
//! reports on a channel the loop selects on, ends on its first failure
//! (which it reports), and stops once what was queued is done. The
//! flusher and the snapshotter are two.

use std::sync::mpsc as std_mpsc;

use tokio::sync::mpsc;

use super::storage::StorageError;

/// What a worker reports for a job.
pub type Report<R> = Result<R, StorageError>;

/// The loop's end of a worker thread.
pub struct Worker<J> {
    queue: Option<std_mpsc::Sender<J>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The thread's end of the report channel.
pub struct Reporter<R>(mpsc::UnboundedSender<Report<R>>);

impl<R> Reporter<R> {
    /// Sends `report`; false when the thread must end (the report is a
    /// failure, or the node is gone).
    pub fn send(&self, report: Report<R>) -> bool {
        let failed = report.is_err();
        self.0.send(report).is_ok() && !failed
    }
}

impl<J: Send + 'static> Worker<J> {
    /// Starts thread `name` running `body` over the queued jobs; its
    /// reports arrive on the returned receiver.
    pub fn start<R: Send + 'static>(
        name: &str,
        body: impl FnOnce(std_mpsc::Receiver<J>, Reporter<R>) + Send + 'static,
    ) -> (Worker<J>, mpsc::UnboundedReceiver<Report<R>>) {
        let (queue, jobs) = std_mpsc::channel();
        let (done, reports) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || body(jobs, Reporter(done)))
            .unwrap_or_else(|e| panic!("spawning the {name} thread: {e}"));
        let worker = Worker {
            queue: Some(queue),
            thread: Some(thread),
        };
        (worker, reports)
    }

    /// Queues a job.
    pub fn submit(&self, job: J) {
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
