//! The page's data: `GET /api/state` (the view once, as JSON) and
//! `GET /api/events` (the view again after every change, as server-sent
//! events). Both take the page's filters (`?node=&service=`). Where the
//! cluster cannot be read (a worker, a node outside a swarm, a manager
//! without a leader), both answer 503 with `{"message": ...}`.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use serde_json::json;
use tokio::sync::watch;

use super::Web;
use super::hub::Feed;
use super::view::{Filter, MAX_CARDS, View};

/// How long a new viewer waits for the first read of the cluster.
const FIRST_READ: Duration = Duration::from_secs(20);

/// 503 and why.
fn unavailable(message: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "message": message })),
    )
        .into_response()
}

/// `GET /api/state?node=&service=`.
pub async fn state(State(web): State<Web>, Query(filter): Query<Filter>) -> Response {
    match View::fetch(&web.control).await {
        Ok(view) => Json(view.render(&filter, MAX_CARDS)).into_response(),
        Err(status) => unavailable(status.message()),
    }
}

/// `GET /api/events?node=&service=`: a `state` event with the view at
/// once and after each change (only when what this viewer sees changed),
/// `unavailable` with a message while the cluster cannot be read.
pub async fn events(State(web): State<Web>, Query(filter): Query<Filter>) -> Response {
    let mut rx = web.hub.subscribe();
    let first = tokio::time::timeout(FIRST_READ, rx.wait_for(|f| !matches!(f, Feed::Idle)));
    let refused = match first.await {
        Err(_) => Some("the manager did not answer in time".to_string()),
        Ok(Err(_)) => Some("the daemon is shutting down".to_string()),
        Ok(Ok(feed)) => match &*feed {
            Feed::Unavailable(message) => Some(message.clone()),
            _ => None,
        },
    };
    if let Some(message) = refused {
        return unavailable(&message);
    }
    let stream = feed_events(rx, filter).take_until(web.shutdown.cancelled_owned());
    Sse::new(stream.map(Ok::<_, Infallible>))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The events one viewer is sent, from the current value of `rx` on.
fn feed_events(rx: watch::Receiver<Feed>, filter: Filter) -> impl Stream<Item = Event> {
    struct Viewer {
        rx: watch::Receiver<Feed>,
        filter: Filter,
        last: Option<String>,
        started: bool,
    }
    let viewer = Viewer {
        rx,
        filter,
        last: None,
        started: false,
    };
    futures_util::stream::unfold(viewer, |mut v| async move {
        loop {
            if v.started {
                v.rx.changed().await.ok()?;
            }
            v.started = true;
            let feed = v.rx.borrow_and_update().clone();
            let (kind, data) = match feed {
                Feed::Idle => continue,
                Feed::Ready(view) => (
                    "state",
                    serde_json::to_string(&view.render(&v.filter, MAX_CARDS)).ok()?,
                ),
                Feed::Unavailable(message) => {
                    ("unavailable", json!({ "message": message }).to_string())
                }
            };
            // Changes elsewhere in the cluster send this viewer nothing.
            if v.last.as_deref() == Some(data.as_str()) {
                continue;
            }
            v.last = Some(data.clone());
            return Some((Event::default().event(kind).data(data), v));
        }
    })
}
