//! Docker-style cluster events, for `shoal events` and the Docker API's
//! `GET /events`.
//!
//! Every manager applies every commit, so every manager keeps its own
//! [`EventLog`]: [`follow`] turns the store's committed changes into
//! [`ClusterEvent`]s (Docker's time and actor attributes), remembers the
//! last [`HISTORY`] of them for `--since`, and rebroadcasts them live. Any
//! manager serves `Watch` from its own log ([`stream`]), so a watcher
//! needs no leader and survives an election.

mod attributes;
mod stream;
mod translate;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use shoal_proto::control::WatchEvent;
use shoal_proto::control::watch_event::{Action, Object};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::store::{Changed, EventAction, Kind, Store};

pub use stream::{Subscription, Window, serve};

/// How many events a manager remembers for `--since`.
pub const HISTORY: usize = 10_000;
/// Events older than this are forgotten even when the ring has room
/// (Docker's daemon keeps a bounded ring too; an hour is what `--since`
/// is commonly asked for).
pub const MAX_AGE: Duration = Duration::from_secs(3600);
/// How many live events a watcher may fall behind before its stream is
/// ended (a gap it did not see would be worse than an error it does).
pub const LIVE_BUFFER: usize = 1024;

/// One change to a cluster object, as Docker reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterEvent {
    /// When it happened: created_at for a create, updated_at for an
    /// update, the manager's clock for a removal (Docker's rule).
    pub time: SystemTime,
    /// What happened.
    pub action: EventAction,
    /// The object after the change (before it, for a removal), shared
    /// with the store: the history costs pointers, not copies.
    pub object: Changed,
    /// Docker's actor attributes.
    pub attributes: BTreeMap<String, String>,
}

impl ClusterEvent {
    /// The object's kind.
    pub fn kind(&self) -> Kind {
        match self.object {
            Changed::Node(_) => Kind::Node,
            Changed::Service(_) => Kind::Service,
            Changed::Task(_) => Kind::Task,
            Changed::Network(_) => Kind::Network,
            Changed::Secret(_) => Kind::Secret,
            Changed::Config(_) => Kind::Config,
            Changed::Cluster(_) => Kind::Cluster,
        }
    }

    /// The event as `Watch` sends it: the object as the rest of the API
    /// shows it, without secret data or registry credentials.
    pub fn to_proto(&self) -> WatchEvent {
        use crate::controlapi::redact;
        let object = match &self.object {
            Changed::Node(x) => Object::Node((**x).clone()),
            Changed::Service(x) => Object::Service(redact::service((**x).clone())),
            Changed::Task(x) => Object::Task(redact::task((**x).clone())),
            Changed::Network(x) => Object::Network((**x).clone()),
            Changed::Secret(x) => Object::Secret(redact::secret((**x).clone())),
            Changed::Config(x) => Object::Config((**x).clone()),
            Changed::Cluster(x) => Object::Cluster(redact::cluster((**x).clone())),
        };
        let action = match self.action {
            EventAction::Create => Action::Create,
            EventAction::Update => Action::Update,
            EventAction::Remove => Action::Remove,
        };
        WatchEvent {
            action: action as i32,
            object: Some(object),
            time: Some(self.time.into()),
            attributes: self.attributes.clone(),
        }
    }
}

/// A manager's event log: the recent events and the live broadcast.
/// Cheap to clone (one shared log).
#[derive(Debug, Clone)]
pub struct EventLog {
    inner: Arc<Mutex<Log>>,
}

#[derive(Debug)]
struct Log {
    history: VecDeque<Arc<ClusterEvent>>,
    /// `None` once the log stopped: live watchers see the channel close.
    live: Option<broadcast::Sender<Arc<ClusterEvent>>>,
    capacity: usize,
    max_age: Duration,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog::with_limits(HISTORY, MAX_AGE)
    }
}

impl EventLog {
    /// A log remembering at most `capacity` events, none older than
    /// `max_age`.
    pub fn with_limits(capacity: usize, max_age: Duration) -> EventLog {
        let log = Log {
            history: VecDeque::new(),
            live: Some(broadcast::channel(LIVE_BUFFER).0),
            capacity,
            max_age,
        };
        EventLog {
            inner: Arc::new(Mutex::new(log)),
        }
    }

    /// The remembered events and a subscription to every later one, taken
    /// under one lock: no event is in both, none falls between.
    pub fn subscribe(&self) -> Subscription {
        let log = self.lock();
        let live = match &log.live {
            Some(tx) => tx.subscribe(),
            // Stopped: a receiver whose sender is gone reads as closed.
            None => broadcast::channel(1).1,
        };
        Subscription {
            history: log.history.iter().cloned().collect(),
            live,
        }
    }

    /// Records `event` and sends it to the live watchers.
    pub fn push(&self, event: ClusterEvent) {
        let event = Arc::new(event);
        let mut log = self.lock();
        log.forget_old(event.time);
        if log.history.len() >= log.capacity {
            log.history.pop_front();
        }
        if log.capacity > 0 {
            log.history.push_back(event.clone());
        }
        if let Some(tx) = &log.live {
            // No receiver is not an error: nobody watches.
            let _ = tx.send(event);
        }
    }

    /// Ends every live stream (the manager stops).
    pub fn close(&self) {
        self.lock().live = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        // Every change under the lock is a single push or pop: a panic
        // elsewhere leaves the log consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Log {
    /// Drops events more than `max_age` older than `now` from the front
    /// (times are nearly in order; a rare straggler ages out later).
    fn forget_old(&mut self, now: SystemTime) {
        let Some(cutoff) = now.checked_sub(self.max_age) else {
            return;
        };
        while self.history.front().is_some_and(|e| e.time < cutoff) {
            self.history.pop_front();
        }
    }
}

/// Follows `store` into `log` until `shutdown`: subscribes now (so the
/// commits made before the returned future first runs are not missed),
/// then translates every commit. A reset (snapshot restore) or a commit
/// stream this follower fell behind re-reads the objects it compares
/// against from the store as it is then: the changes the snapshot skipped
/// are not reported (nobody saw them), and commits already queued behind
/// the reset may miss their `.old`/`.new` attributes.
pub fn follow(
    log: EventLog,
    store: Arc<Store>,
    shutdown: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    use tokio::sync::broadcast::error::RecvError;
    let (mut translator, mut commits) = store.view_and_watch(translate::Translator::seeded);
    async move {
        loop {
            let commit = tokio::select! {
                _ = shutdown.cancelled() => break,
                commit = commits.recv() => commit,
            };
            match commit {
                Ok(commit) if commit.reset => {
                    translator = store.view(translate::Translator::seeded);
                }
                Ok(commit) => {
                    for event in translator.commit(&commit, SystemTime::now()) {
                        log.push(event);
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "event log fell behind the store; events were lost");
                    translator = store.view(translate::Translator::seeded);
                }
                Err(RecvError::Closed) => break,
            }
        }
        log.close();
    }
}

#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;
