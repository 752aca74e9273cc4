//! One watcher's stream, as Docker's `/events` serves it: the remembered
//! events in the window (`since`..`until`) first, then live ones, until
//! `until` passes, the watcher goes away, or it falls behind.

use std::sync::Arc;
use std::time::SystemTime;

use shoal_proto::control::{WatchEvent, WatchRequest};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tonic::Status;

use super::ClusterEvent;
use crate::store::Kind;

/// The kinds a watcher may ask for (the cluster object has no events).
const KINDS: [Kind; 6] = [
    Kind::Node,
    Kind::Service,
    Kind::Task,
    Kind::Network,
    Kind::Secret,
    Kind::Config,
];

/// What [`super::EventLog::subscribe`] hands a watcher: the history and
/// the live events after it.
#[derive(Debug)]
pub struct Subscription {
    pub(super) history: Vec<Arc<ClusterEvent>>,
    pub(super) live: broadcast::Receiver<Arc<ClusterEvent>>,
}

/// Which events a watcher wants.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    /// Empty: every kind.
    pub kinds: Vec<Kind>,
    /// Replay from here (also live events before it are left out).
    pub since: Option<SystemTime>,
    /// End the stream once this has passed.
    pub until: Option<SystemTime>,
}

impl Window {
    /// The window a request asks for; unknown kinds and impossible times
    /// are the caller's mistake.
    pub fn from_request(request: &WatchRequest) -> Result<Window, Status> {
        let kinds = request
            .kinds
            .iter()
            .map(|k| parse_kind(k))
            .collect::<Result<_, _>>()?;
        Ok(Window {
            kinds,
            since: parse_time("since", request.since)?,
            until: parse_time("until", request.until)?,
        })
    }

    /// Whether `event` is of a wanted kind and not before `since`.
    fn wants(&self, event: &ClusterEvent) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&event.kind()))
            && self.since.is_none_or(|s| event.time >= s)
    }

    /// Whether `time` is past `until`.
    fn ended_by(&self, time: SystemTime) -> bool {
        self.until.is_some_and(|u| time > u)
    }

    /// Docker replays history when either bound is given (only `until`:
    /// everything remembered up to it).
    fn replays(&self) -> bool {
        self.since.is_some() || self.until.is_some()
    }

    /// When `until` passes, on tokio's clock (so a paused clock in tests
    /// moves it too); `now` if it has passed already; none if it is too
    /// far away for the clock to hold (a caller's `until` is any time).
    fn deadline(&self) -> Option<Instant> {
        let until = self.until?;
        let left = until.duration_since(SystemTime::now()).unwrap_or_default();
        Instant::now().checked_add(left)
    }
}

fn parse_kind(kind: &str) -> Result<Kind, Status> {
    KINDS.into_iter().find(|k| k.name() == kind).ok_or_else(|| {
        let names: Vec<&str> = KINDS.iter().map(|k| k.name()).collect();
        Status::invalid_argument(format!(
            "unknown event type {kind:?}: the types are {}",
            names.join(", ")
        ))
    })
}

fn parse_time(
    what: &str,
    stamp: Option<prost_types::Timestamp>,
) -> Result<Option<SystemTime>, Status> {
    stamp
        .map(|t| {
            SystemTime::try_from(t)
                .map_err(|e| Status::invalid_argument(format!("invalid {what} time: {e}")))
        })
        .transpose()
}

/// Sends `sub`'s events that `window` selects to `tx`, then returns: once
/// `until` has passed (at once after the replay if it already had), when
/// the receiver is dropped, or after telling a watcher that fell behind
/// (or whose manager stopped) so with an error.
pub async fn serve(
    sub: Subscription,
    window: Window,
    tx: mpsc::Sender<Result<WatchEvent, Status>>,
) {
    if window.replays() {
        for event in &sub.history {
            if window.wants(event)
                && !window.ended_by(event.time)
                && tx.send(Ok(event.to_proto())).await.is_err()
            {
                return;
            }
        }
    }
    let deadline = window.deadline();
    if deadline.is_some_and(|d| d <= Instant::now()) {
        return;
    }
    live(sub.live, &window, deadline, &tx).await;
}

/// The live part of [`serve`].
async fn live(
    mut events: broadcast::Receiver<Arc<ClusterEvent>>,
    window: &Window,
    deadline: Option<Instant>,
    tx: &mpsc::Sender<Result<WatchEvent, Status>>,
) {
    use broadcast::error::RecvError;
    let until = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until);
    loop {
        let received = tokio::select! {
            _ = &mut until => return,
            _ = tx.closed() => return,
            received = events.recv() => received,
        };
        let event = match received {
            Ok(event) => event,
            Err(RecvError::Lagged(missed)) => {
                let _ = tx.send(Err(fell_behind(missed))).await;
                return;
            }
            Err(RecvError::Closed) => {
                let _ = tx.send(Err(stopped())).await;
                return;
            }
        };
        if window.ended_by(event.time) {
            return;
        }
        if window.wants(&event) && tx.send(Ok(event.to_proto())).await.is_err() {
            return;
        }
    }
}

/// Why a lagging watcher's stream ends: it would otherwise miss events
/// without knowing.
pub fn fell_behind(missed: u64) -> Status {
    Status::resource_exhausted(format!(
        "the event stream fell behind: {missed} events were dropped because this watcher read \
         too slowly; watch again (with --since to replay what was missed)"
    ))
}

fn stopped() -> Status {
    Status::unavailable("the manager serving this event stream stopped; watch again")
}
