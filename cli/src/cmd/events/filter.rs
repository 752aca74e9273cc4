//! `docker events --filter`, for the event types a swarm has. As in
//! Docker, values of one key are alternatives and different keys must all
//! hold. `type=` and `event=` match exactly; `service=web`, `node=x`,
//! `secret=`, `config=`, `network=` (and `task=`) mean an event of that
//! type whose id or name starts with the value (Docker's fuzzy match);
//! `name=`/`id=` do the same for any type; `label=k[=v]` looks at the
//! attributes and the object's labels; `scope=` is always `swarm`.

use anyhow::bail;

use super::Message;

/// The types `shoal events` reports, as the daemon names them.
pub const TYPES: [&str; 6] = ["node", "service", "task", "network", "secret", "config"];

/// Keys naming an object of one type (Docker's, plus `task`); the
/// container-side ones match nothing here, as a swarm reports no such
/// events, but are accepted as Docker accepts them.
const OBJECT_KEYS: [&str; 11] = [
    "service",
    "node",
    "task",
    "network",
    "secret",
    "config",
    "container",
    "image",
    "volume",
    "plugin",
    "daemon",
];

/// The `--filter`s of one `shoal events`.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    entries: Vec<(String, String)>,
}

impl EventFilter {
    /// Checks the keys, like Docker's "invalid filter".
    pub fn new(entries: Vec<(String, String)>) -> anyhow::Result<EventFilter> {
        for (key, _) in &entries {
            let known = ["type", "event", "name", "id", "label", "scope"].contains(&key.as_str())
                || OBJECT_KEYS.contains(&key.as_str());
            if !known {
                bail!("invalid filter '{key}'");
            }
        }
        Ok(EventFilter { entries })
    }

    fn values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + Clone {
        self.entries
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// True when `key` is absent or one of its values satisfies `pred`.
    fn any(&self, key: &str, pred: impl Fn(&str) -> bool) -> bool {
        let mut values = self.values(key).peekable();
        values.peek().is_none() || values.any(pred)
    }

    /// The types the daemon needs to send (empty: all): what `type=`
    /// allows, narrowed by the object keys given.
    pub fn kinds(&self) -> Vec<String> {
        let typed: Vec<&str> = self.values("type").collect();
        let narrowed = TYPES.iter().copied().filter(|t| {
            (typed.is_empty() || typed.contains(t))
                && OBJECT_KEYS
                    .iter()
                    .all(|k| self.values(k).next().is_none() || k == t)
        });
        let kinds: Vec<String> = narrowed.map(str::to_string).collect();
        if kinds.len() == TYPES.len() {
            Vec::new()
        } else {
            kinds
        }
    }

    /// Whether `m` passes every filter.
    pub fn matches(&self, m: &Message) -> bool {
        let fuzzy = |v: &str| m.id.starts_with(v) || m.name().starts_with(v);
        self.any("type", |v| v == m.kind)
            && self.any("event", |v| v == m.action)
            && self.any("scope", |v| v == "swarm")
            && self.any("id", |v| m.id.starts_with(v))
            && self.any("name", |v| m.name().starts_with(v))
            && OBJECT_KEYS
                .iter()
                .all(|key| self.any(key, |v| *key == m.kind && fuzzy(v)))
            && self.values("label").all(|want| label_ok(m, want))
    }
}

fn label_ok(m: &Message, want: &str) -> bool {
    let (key, value) = match want.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (want, None),
    };
    [&m.attributes, &m.labels].into_iter().any(|map| {
        map.get(key)
            .is_some_and(|have| value.is_none_or(|v| v == have))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::filter::parse_filter;
    use std::collections::BTreeMap;
    use std::time::UNIX_EPOCH;

    fn filter(list: &[&str]) -> anyhow::Result<EventFilter> {
        EventFilter::new(list.iter().map(|s| parse_filter(s).unwrap()).collect())
    }

    fn message(kind: &'static str, action: &'static str, id: &str, name: &str) -> Message {
        Message {
            kind,
            action,
            id: id.into(),
            attributes: BTreeMap::from([("name".to_string(), name.to_string())]),
            labels: BTreeMap::from([("env".to_string(), "prod".to_string())]),
            time: UNIX_EPOCH,
        }
    }

    #[test]
    fn type_event_and_object_keys() {
        let web = message("service", "create", "abc123", "web");
        let node = message("node", "update", "web999", "host-a");
        let f = filter(&["type=service", "event=create"]).unwrap();
        assert!(f.matches(&web) && !f.matches(&node));
        // `service=` means a service, by name or id prefix.
        let f = filter(&["service=web"]).unwrap();
        assert!(f.matches(&web) && !f.matches(&node));
        assert!(filter(&["service=abc"]).unwrap().matches(&web));
        assert!(!filter(&["service=api"]).unwrap().matches(&web));
        let f = filter(&["node=host-a", "node=other"]).unwrap();
        assert!(f.matches(&node) && !f.matches(&web));
        assert!(filter(&["name=we", "id=abc"]).unwrap().matches(&web));
        assert!(!filter(&["container=abc"]).unwrap().matches(&web));
    }

    #[test]
    fn labels_and_scope() {
        let web = message("service", "create", "abc123", "web");
        assert!(
            filter(&["label=env=prod", "label=name"])
                .unwrap()
                .matches(&web)
        );
        assert!(!filter(&["label=env=dev"]).unwrap().matches(&web));
        assert!(filter(&["scope=swarm"]).unwrap().matches(&web));
        assert!(!filter(&["scope=local"]).unwrap().matches(&web));
    }

    #[test]
    fn kinds_sent_to_the_daemon() {
        assert!(filter(&[]).unwrap().kinds().is_empty());
        assert_eq!(filter(&["type=service"]).unwrap().kinds(), ["service"]);
        assert_eq!(filter(&["secret=db"]).unwrap().kinds(), ["secret"]);
        assert_eq!(
            filter(&["type=node", "type=config"]).unwrap().kinds(),
            ["node", "config"]
        );
        assert!(filter(&["colour=red"]).is_err());
    }
}
