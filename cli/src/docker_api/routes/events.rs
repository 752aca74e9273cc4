//! `GET /events`: the cluster's events (service, node, secret, config,
//! network) from the manager's event log, as Docker's JSON stream. `since`
//! replays the log's history; `until` ends the stream. Task events are
//! Shoal's own and not sent: Docker has no such type.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bollard::models::{EventActor, EventMessage, EventMessageScopeEnum, EventMessageTypeEnum};
use futures_util::StreamExt;
use shoal_proto::control::watch_event::{Action, Object};
use shoal_proto::control::{WatchEvent, WatchRequest};

use crate::docker_api::Daemon;
use crate::docker_api::error::ApiResult;
use crate::docker_api::filters::Filters;

/// The kinds Docker has event types for.
const KINDS: [&str; 5] = ["service", "node", "secret", "config", "network"];

/// `GET /events?since=&until=&filters=`.
pub async fn events(
    State(d): State<Daemon>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let filters = Filters::parse(q.get("filters").map(String::as_str))?;
    filters.allow(&[
        "type",
        "event",
        "scope",
        "service",
        "node",
        "secret",
        "config",
        "network",
        "label",
        "container",
        "image",
        "volume",
        "daemon",
        "plugin",
    ])?;
    let since = time_param(&q, "since")?;
    let until = time_param(&q, "until")?;
    let kinds: Vec<String> = KINDS
        .iter()
        .filter(|k| filters.pass("type", |t| t == **k))
        .map(|k| k.to_string())
        .collect();
    let scope_ok = filters.pass("scope", |s| s == "swarm");
    let events = if kinds.is_empty() || !scope_ok {
        // Nothing of the swarm's can match: an empty history, no live events.
        None
    } else {
        Some(
            d.control
                .clone()
                .watch(WatchRequest {
                    kinds,
                    since,
                    until,
                })
                .await?
                .into_inner(),
        )
    };
    let body = futures_util::stream::iter(events)
        .flatten()
        .take_while(|e| std::future::ready(e.is_ok()))
        .filter_map(move |e| {
            let line = e
                .ok()
                .and_then(|e| docker_event(&e))
                .filter(|m| pass(m, &filters));
            std::future::ready(line.map(|m| {
                let mut json = serde_json::to_vec(&m).unwrap_or_default();
                json.push(b'\n');
                Ok::<_, Infallible>(Bytes::from(json))
            }))
        });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

/// Docker's `since`/`until`, if given.
fn time_param(q: &HashMap<String, String>, key: &str) -> ApiResult<Option<prost_types::Timestamp>> {
    q.get(key)
        .filter(|s| !s.is_empty())
        .map(|raw| super::unix_time(key, raw))
        .transpose()
}

/// A store event as Docker's message; None for kinds Docker has no type for.
fn docker_event(event: &WatchEvent) -> Option<EventMessage> {
    let (typ, id) = match event.object.as_ref()? {
        Object::Service(s) => (EventMessageTypeEnum::SERVICE, s.id.clone()),
        Object::Node(n) => (EventMessageTypeEnum::NODE, n.id.clone()),
        Object::Secret(s) => (EventMessageTypeEnum::SECRET, s.id.clone()),
        Object::Config(c) => (EventMessageTypeEnum::CONFIG, c.id.clone()),
        Object::Network(n) => (EventMessageTypeEnum::NETWORK, n.id.clone()),
        Object::Task(_) | Object::Cluster(_) => return None,
    };
    let action = match event.action() {
        Action::Create => "create",
        Action::Update => "update",
        Action::Remove => "remove",
    };
    let time = event.time.unwrap_or_default();
    let nanos = i128::from(time.seconds) * 1_000_000_000 + i128::from(time.nanos);
    Some(EventMessage {
        typ: Some(typ),
        action: Some(action.to_string()),
        actor: Some(EventActor {
            id: Some(id),
            attributes: Some(event.attributes.clone().into_iter().collect()),
        }),
        scope: Some(EventMessageScopeEnum::SWARM),
        time: Some(time.seconds),
        time_nano: Some(i64::try_from(nanos).unwrap_or(i64::MAX)),
    })
}

/// Docker's event filters: `event` (the action) and a key per type naming
/// an object by id or name (`service=web`).
fn pass(m: &EventMessage, f: &Filters) -> bool {
    let typ = serde_json::to_value(m.typ).ok();
    let typ = typ.as_ref().and_then(|t| t.as_str()).unwrap_or("");
    let actor = m.actor.clone().unwrap_or_default();
    let id = actor.id.unwrap_or_default();
    let attrs = actor.attributes.unwrap_or_default();
    let name = attrs.get("name").map_or("", String::as_str);
    f.pass("event", |e| m.action.as_deref() == Some(e))
        && KINDS.iter().all(|kind| {
            f.get(kind).is_empty() || (typ == *kind && f.pass(kind, |x| x == id || x == name))
        })
        && f.labels_pass("label", |k| attrs.get(k).map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::objects::Service;

    fn service_event(action: Action, name: &str) -> WatchEvent {
        let mut e = WatchEvent {
            object: Some(Object::Service(Service {
                id: "s1".into(),
                ..Default::default()
            })),
            time: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 7,
            }),
            attributes: [("name".to_string(), name.to_string())].into(),
            ..Default::default()
        };
        e.set_action(action);
        e
    }

    #[test]
    fn service_events_have_dockers_shape() {
        let m = docker_event(&service_event(Action::Create, "web")).unwrap();
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["Type"], "service");
        assert_eq!(json["Action"], "create");
        assert_eq!(json["Actor"]["ID"], "s1");
        assert_eq!(json["Actor"]["Attributes"]["name"], "web");
        assert_eq!(json["scope"], "swarm");
        assert_eq!(json["time"], 1_700_000_000);
        assert_eq!(json["timeNano"], 1_700_000_000_000_000_007_i64);
    }

    #[test]
    fn filters_name_objects_and_actions() {
        let m = docker_event(&service_event(Action::Remove, "web")).unwrap();
        let f = |raw: &str| Filters::parse(Some(raw)).unwrap();
        assert!(pass(&m, &f(r#"{"service":{"web":true}}"#)));
        assert!(pass(
            &m,
            &f(r#"{"service":{"s1":true},"event":{"remove":true}}"#)
        ));
        assert!(!pass(&m, &f(r#"{"event":{"create":true}}"#)));
        assert!(!pass(&m, &f(r#"{"node":{"web":true}}"#)));
    }
}
