//! `shoal events`, as `docker events`: the cluster's object changes, one
//! line each, live, or replayed from `--since` and ended at `--until`.
//! The daemon's manager serves them from its own event log (`Watch`); the
//! filters are applied here, after the daemon has narrowed the types.

mod filter;
mod times;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde_json::{Value, json};
use shoal_proto::control::watch_event::{Action, Object};
use shoal_proto::control::{WatchEvent, WatchRequest};
use shoal_proto::objects::Annotations;

use super::common::Api;
use super::filter::parse_filter;
use crate::client::status_error;
use crate::host::Host;
use crate::output::template::Template;
use filter::EventFilter;

/// `shoal events` flags, as `docker events`.
#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Filter output based on conditions provided (`type=service`,
    /// `event=create`, `service=web`, `node=`, `secret=`, `config=`,
    /// `network=`, `name=`, `id=`, `label=`).
    #[arg(short, long = "filter", value_name = "FILTER", value_parser = parse_filter)]
    filter: Vec<(String, String)>,
    /// Show all events created since timestamp (RFC 3339, unix seconds, or
    /// a duration before now such as `10m`).
    #[arg(long)]
    since: Option<String>,
    /// Stream events until this timestamp (same forms as `--since`).
    #[arg(long)]
    until: Option<String>,
    /// Format the output: `json`, or a template such as
    /// `{{.Type}} {{.Action}} {{.Actor.Attributes.name}}`.
    #[arg(long)]
    format: Option<String>,
}

/// One event as the CLI reads it (Docker's `events.Message`).
#[derive(Debug, Clone)]
pub struct Message {
    /// `service`, `node`, ...
    pub kind: &'static str,
    /// `create`, `update` or `remove`.
    pub action: &'static str,
    /// The object's id (Docker's `Actor.ID`).
    pub id: String,
    /// Docker's `Actor.Attributes`.
    pub attributes: BTreeMap<String, String>,
    /// The object's own labels (for `label=`).
    pub labels: BTreeMap<String, String>,
    /// When it happened.
    pub time: SystemTime,
}

impl Message {
    /// Reads `event`; `None` for objects `docker events` has no type for.
    fn from_proto(event: WatchEvent) -> Option<Message> {
        let action = match event.action() {
            Action::Create => "create",
            Action::Update => "update",
            Action::Remove => "remove",
        };
        let (kind, id, annotations) = match event.object? {
            Object::Node(x) => ("node", x.id, x.spec.and_then(|s| s.annotations)),
            Object::Service(x) => ("service", x.id, x.spec.and_then(|s| s.annotations)),
            Object::Task(x) => ("task", x.id, x.annotations),
            Object::Network(x) => ("network", x.id, x.spec.and_then(|s| s.annotations)),
            Object::Secret(x) => ("secret", x.id, x.spec.and_then(|s| s.annotations)),
            Object::Config(x) => ("config", x.id, x.spec.and_then(|s| s.annotations)),
            Object::Cluster(_) => return None,
        };
        let time = event
            .time
            .and_then(|t| SystemTime::try_from(t).ok())
            .unwrap_or(UNIX_EPOCH);
        Some(Message {
            kind,
            action,
            id,
            attributes: event.attributes,
            labels: annotations
                .map(|a: Annotations| a.labels)
                .unwrap_or_default(),
            time,
        })
    }

    /// The `name` attribute ("" if none).
    pub fn name(&self) -> &str {
        self.attributes.get("name").map_or("", String::as_str)
    }

    /// Docker's default line: time, type, action, id, `(k=v, ...)`.
    fn line(&self) -> String {
        let mut line = format!(
            "{} {} {} {}",
            times::format(self.time),
            self.kind,
            self.action,
            self.id
        );
        if !self.attributes.is_empty() {
            let pairs: Vec<String> = self
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            line.push_str(&format!(" ({})", pairs.join(", ")));
        }
        line
    }

    fn nanos(&self) -> i128 {
        self.time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128)
    }

    /// The JSON of Docker's `/events` (and `--format json`).
    fn wire_json(&self) -> Value {
        json!({
            "Type": self.kind,
            "Action": self.action,
            "Actor": {"ID": self.id, "Attributes": self.attributes},
            "scope": "swarm",
            "time": self.nanos().div_euclid(1_000_000_000),
            "timeNano": self.nanos(),
        })
    }

    /// The fields a template sees, with the Go names Docker's CLI uses.
    fn template_value(&self) -> Value {
        json!({
            "Type": self.kind,
            "Action": self.action,
            "Actor": {"ID": self.id, "Attributes": self.attributes},
            "Scope": "swarm",
            "Time": self.nanos().div_euclid(1_000_000_000),
            "TimeNano": self.nanos(),
            "Status": "",
            "ID": "",
            "From": "",
        })
    }
}

/// How each event is printed.
enum Style {
    Line,
    Json,
    Template(Template),
}

impl Style {
    fn new(format: Option<&str>) -> anyhow::Result<Style> {
        Ok(match format {
            None | Some("") => Style::Line,
            Some("json") => Style::Json,
            Some(t) => Style::Template(Template::parse(t)?),
        })
    }

    fn render(&self, m: &Message) -> anyhow::Result<String> {
        Ok(match self {
            Style::Line => m.line(),
            Style::Json => m.wire_json().to_string(),
            Style::Template(t) => t.render(&m.template_value())?,
        })
    }
}

/// Runs `shoal events`.
pub async fn run(host: &Host, args: EventsArgs) -> anyhow::Result<()> {
    let filter = EventFilter::new(args.filter)?;
    let style = Style::new(args.format.as_deref())?;
    let now = SystemTime::now();
    let time = |flag: &str, value: Option<String>| {
        value
            .map(|v| times::parse(&v, now).with_context(|| format!("invalid value for --{flag}")))
            .transpose()
    };
    let request = WatchRequest {
        kinds: filter.kinds(),
        since: time("since", args.since)?.map(Into::into),
        until: time("until", args.until)?.map(Into::into),
    };
    let mut api = Api::connect(host).await?;
    let mut stream = api
        .control
        .watch(request)
        .await
        .map_err(status_error)?
        .into_inner();
    let mut stdout = std::io::stdout();
    while let Some(event) = stream.message().await.map_err(status_error)? {
        let Some(message) = Message::from_proto(event).filter(|m| filter.matches(m)) else {
            continue;
        };
        let line = style.render(&message)?;
        // A reader that went away (`| head`) ends the command quietly.
        match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            other => other?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::objects::{Service, ServiceSpec};
    use std::time::Duration;

    fn web_event() -> WatchEvent {
        WatchEvent {
            action: Action::Create as i32,
            object: Some(Object::Service(Service {
                id: "svc1".into(),
                spec: Some(ServiceSpec {
                    annotations: Some(Annotations {
                        name: "web".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })),
            time: Some((UNIX_EPOCH + Duration::new(1_700_000_000, 5)).into()),
            attributes: BTreeMap::from([
                ("name".to_string(), "web".to_string()),
                ("image.new".to_string(), "nginx:2".to_string()),
            ]),
        }
    }

    #[test]
    fn default_lines_are_dockers() {
        let m = Message::from_proto(web_event()).unwrap();
        assert_eq!(
            m.line(),
            "2023-11-14T22:13:20.000000005Z service create svc1 (image.new=nginx:2, name=web)"
        );
    }

    #[test]
    fn json_and_templates() {
        let m = Message::from_proto(web_event()).unwrap();
        let json = Style::new(Some("json")).unwrap().render(&m).unwrap();
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["Actor"]["Attributes"]["name"], "web");
        assert_eq!(v["scope"], "swarm");
        assert_eq!(v["time"], 1_700_000_000);
        assert_eq!(v["timeNano"], 1_700_000_000_000_000_005i64);
        let t = Style::new(Some("{{.Type}} {{.Action}} {{.Actor.Attributes.name}}")).unwrap();
        assert_eq!(t.render(&m).unwrap(), "service create web");
    }
}
