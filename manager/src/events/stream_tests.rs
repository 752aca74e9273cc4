//! The log's ring and the watcher's window: replay from `since`, the end
//! at `until` (also when it has already passed), kinds, lag and shutdown.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use shoal_proto::control::{WatchEvent, WatchRequest};
use shoal_proto::objects::{Annotations, Secret, SecretSpec};
use tokio::sync::mpsc;
use tonic::{Code, Status};

use super::*;

fn secret(id: &str, time: SystemTime) -> ClusterEvent {
    ClusterEvent {
        time,
        action: EventAction::Create,
        object: Changed::Secret(Arc::new(Secret {
            id: id.into(),
            spec: Some(SecretSpec {
                annotations: Some(Annotations {
                    name: format!("name-{id}"),
                    ..Default::default()
                }),
                data: b"hidden".to_vec(),
            }),
            ..Default::default()
        })),
        attributes: BTreeMap::from([("name".into(), format!("name-{id}"))]),
    }
}

fn service(id: &str, time: SystemTime) -> ClusterEvent {
    ClusterEvent {
        object: Changed::Service(Arc::new(super::tests::service(id, "web", "nginx", 1))),
        ..secret(id, time)
    }
}

fn ago(secs: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(secs)
}

fn id(event: &WatchEvent) -> String {
    use shoal_proto::control::watch_event::Object;
    match event.object.as_ref().expect("an object") {
        Object::Secret(s) => s.id.clone(),
        Object::Service(s) => s.id.clone(),
        other => panic!("unexpected {other:?}"),
    }
}

/// Serves `window` from `log` and returns the receiving end.
fn watch(log: &EventLog, window: Window) -> mpsc::Receiver<Result<WatchEvent, Status>> {
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(serve(log.subscribe(), window, tx));
    rx
}

/// Everything the stream sends until it ends (a hang fails the test).
async fn until_end(mut rx: mpsc::Receiver<Result<WatchEvent, Status>>) -> Vec<String> {
    let mut ids = Vec::new();
    let all = async {
        while let Some(item) = rx.recv().await {
            ids.push(id(&item.expect("no error")));
        }
    };
    tokio::time::timeout(Duration::from_secs(24 * 3600), all)
        .await
        .expect("the stream ended");
    ids
}

#[test]
fn the_ring_is_bounded_and_forgets_old_events() {
    let log = EventLog::with_limits(3, Duration::from_secs(60));
    for i in 0..5 {
        log.push(secret(&format!("s{i}"), ago(10)));
    }
    let ids = |log: &EventLog| -> Vec<String> {
        let history = log.subscribe().history;
        history.iter().map(|e| e.object.id().to_string()).collect()
    };
    assert_eq!(ids(&log), ["s2", "s3", "s4"]);
    // An event a minute later ages out those before it.
    log.push(secret("new", SystemTime::now() + Duration::from_secs(55)));
    assert_eq!(ids(&log), ["new"]);
}

#[tokio::test]
async fn a_subscription_has_no_gap_and_no_overlap() {
    let log = EventLog::default();
    log.push(secret("before", ago(1)));
    let mut sub = log.subscribe();
    log.push(secret("after", ago(0)));
    assert_eq!(sub.history.len(), 1);
    assert_eq!(sub.history[0].object.id(), "before");
    assert_eq!(sub.live.recv().await.unwrap().object.id(), "after");
    assert!(sub.live.try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn since_replays_until_in_the_past_ends_at_once() {
    let log = EventLog::default();
    log.push(secret("old", ago(300)));
    log.push(service("svc", ago(100)));
    log.push(secret("mid", ago(100)));
    log.push(secret("late", ago(10)));
    let window = Window {
        kinds: vec![Kind::Secret],
        since: Some(ago(200)),
        until: Some(ago(50)),
    };
    let started = tokio::time::Instant::now();
    assert_eq!(until_end(watch(&log, window)).await, ["mid"]);
    assert_eq!(started.elapsed(), Duration::ZERO, "no wait for until");
    // Only `until`: everything remembered up to it (Docker's rule).
    let window = Window {
        until: Some(ago(50)),
        ..Window::default()
    };
    assert_eq!(until_end(watch(&log, window)).await, ["old", "svc", "mid"]);
}

#[tokio::test(start_paused = true)]
async fn live_events_flow_until_the_until_timer() {
    let log = EventLog::default();
    log.push(secret("remembered", ago(5)));
    let window = Window {
        until: Some(SystemTime::now() + Duration::from_secs(3600)),
        ..Window::default()
    };
    let started = tokio::time::Instant::now();
    let rx = watch(&log, window);
    tokio::task::yield_now().await;
    log.push(secret("live", SystemTime::now()));
    assert_eq!(until_end(rx).await, ["remembered", "live"]);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3590) && waited <= Duration::from_secs(3610),
        "ended after {waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_event_past_until_ends_the_stream() {
    let log = EventLog::default();
    let until = SystemTime::now() + Duration::from_secs(3600);
    let rx = watch(
        &log,
        Window {
            until: Some(until),
            ..Window::default()
        },
    );
    log.push(secret("in", SystemTime::now()));
    log.push(secret("out", until + Duration::from_secs(1)));
    log.push(secret("never", SystemTime::now()));
    assert_eq!(until_end(rx).await, ["in"]);
}

#[tokio::test]
async fn without_since_only_live_events_are_sent() {
    let log = EventLog::default();
    log.push(secret("remembered", ago(5)));
    let mut rx = watch(&log, Window::default());
    tokio::task::yield_now().await;
    log.push(secret("live", SystemTime::now()));
    let first = rx.recv().await.unwrap().unwrap();
    assert_eq!(id(&first), "live");
}

#[tokio::test]
async fn a_watcher_that_falls_behind_is_told_so() {
    let log = EventLog::default();
    let (tx, mut rx) = mpsc::channel(1);
    let sub = log.subscribe();
    for i in 0..LIVE_BUFFER + 5 {
        log.push(secret(&format!("s{i}"), SystemTime::now()));
    }
    tokio::spawn(serve(sub, Window::default(), tx));
    let status = rx.recv().await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(status.message().contains("fell behind"), "{status:?}");
    assert!(rx.recv().await.is_none(), "the stream ends after the error");
}

#[tokio::test]
async fn a_stopping_manager_ends_its_streams() {
    let log = EventLog::default();
    let mut rx = watch(&log, Window::default());
    tokio::task::yield_now().await;
    log.close();
    let status = rx.recv().await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    // A watcher arriving later ends at once too.
    let mut late = watch(&log, Window::default());
    assert!(late.recv().await.unwrap().is_err());
}

#[test]
fn requests_name_known_kinds_and_valid_times() {
    let window = Window::from_request(&WatchRequest {
        kinds: vec!["service".into(), "task".into()],
        since: Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 500_000_000,
        }),
        until: None,
    })
    .unwrap();
    assert_eq!(window.kinds, [Kind::Service, Kind::Task]);
    assert_eq!(
        window.since,
        Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_500))
    );
    let err = Window::from_request(&WatchRequest {
        kinds: vec!["container".into()],
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("service"), "{err:?}");
}
