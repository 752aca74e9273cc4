//! One feed of the cluster's view for every viewer: while anyone watches,
//! the hub follows the manager's `Watch` stream (nodes, services, tasks)
//! and reads the lists again after each burst of changes, at most once per
//! [`COALESCE`] (or per the time the last read took, on a cluster so large
//! that reading it is slow). With no viewer it holds no stream and reads
//! nothing.

use std::sync::Arc;
use std::time::Duration;

use shoal_proto::control::WatchRequest;
use shoal_proto::control::control_client::ControlClient;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::view::View;

/// How long changes are gathered before the lists are read again: a
/// rolling update's bursts make one push, and the page still follows
/// within a fraction of a second.
pub const COALESCE: Duration = Duration::from_millis(150);
/// How soon a failed watch or read is tried again.
const RETRY: Duration = Duration::from_secs(2);

/// What viewers are sent.
#[derive(Debug, Clone)]
pub enum Feed {
    /// Nobody watched until now: nothing read yet.
    Idle,
    /// The cluster as last read.
    Ready(Arc<View>),
    /// Why the cluster cannot be read (not a manager, no leader).
    Unavailable(String),
}

/// The shared feed.
#[derive(Debug)]
pub struct Hub {
    tx: watch::Sender<Feed>,
    /// A viewer arrived while the hub was idle.
    wake: Notify,
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub {
            tx: watch::Sender::new(Feed::Idle),
            wake: Notify::new(),
        })
    }

    /// A viewer's receiver; the hub follows the cluster while one is held.
    pub fn subscribe(&self) -> watch::Receiver<Feed> {
        let rx = self.tx.subscribe();
        self.wake.notify_one();
        rx
    }

    /// Runs the feed until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        control: ControlClient<Channel>,
        shutdown: CancellationToken,
    ) {
        loop {
            if self.tx.receiver_count() == 0 {
                // What was read is stale by the time someone comes back.
                self.tx.send_replace(Feed::Idle);
                tokio::select! {
                    () = self.wake.notified() => continue,
                    () = shutdown.cancelled() => return,
                }
            }
            tokio::select! {
                () = self.follow(&control) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Follows the cluster until every viewer has left or the watch ends.
    async fn follow(&self, control: &ControlClient<Channel>) {
        let request = WatchRequest {
            kinds: ["node", "service", "task"].map(String::from).into(),
            since: None,
            until: None,
        };
        let mut stream = match control.clone().watch(request).await {
            Ok(stream) => stream.into_inner(),
            Err(status) => {
                self.tx
                    .send_replace(Feed::Unavailable(status.message().to_string()));
                tokio::select! {
                    () = sleep(RETRY) => {}
                    () = self.tx.closed() => {}
                }
                return;
            }
        };
        // The stream is read apart from the lists, so a slow read never
        // makes the manager drop this watcher; a full channel already says
        // "changed".
        let (changed, mut changes) = mpsc::channel::<()>(1);
        let reader = tokio::spawn(async move {
            loop {
                match stream.message().await {
                    Ok(Some(_)) => {
                        let _ = changed.try_send(());
                    }
                    Ok(None) => return,
                    Err(status) => {
                        tracing::debug!(%status, "the web view's watch ended");
                        return;
                    }
                }
            }
        });
        let _reader = AbortOnDrop(reader);
        // Subscribed first, then read: no change falls between the two.
        let mut due = Some(Instant::now());
        let mut window = COALESCE;
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Some(()) => {
                        due.get_or_insert_with(|| Instant::now() + window);
                    }
                    // The watch ended (a lagging watcher, a demotion): watch again.
                    None => break,
                },
                () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    due = None;
                    let started = Instant::now();
                    let read = View::fetch(control).await;
                    // The leader spends at most half its time on viewers.
                    window = COALESCE.max(started.elapsed());
                    match read {
                        Ok(view) => {
                            self.tx.send_replace(Feed::Ready(Arc::new(view)));
                        }
                        Err(status) => {
                            self.tx
                                .send_replace(Feed::Unavailable(status.message().to_string()));
                            due = Some(Instant::now() + RETRY);
                        }
                    }
                }
                () = self.tx.closed() => return,
            }
        }
        tokio::select! {
            () = sleep(COALESCE) => {}
            () = self.tx.closed() => {}
        }
    }
}

/// Stops the watch reader when the hub stops following.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
