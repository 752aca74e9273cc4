//! How services and tasks look in tables: `service ls` (with REPLICAS
//! counted from the tasks, as Docker's CLI does) and the task table that
//! `service ps`, `node ps` and `stack ps` share, with its ` \_ ` history rows.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;
use shoal_proto::control::ServiceCounts;
use shoal_proto::objects::{PortConfig, Service, Task, TaskState, port_config, service_spec::Mode};

use crate::cmd::common::natural_cmp;
use crate::cmd::filter::Filters;
use crate::output::listing::Listing;
use crate::output::time::human_duration;

/// The `service ls` filter keys.
pub const LS_FILTER_KEYS: &[&str] = &["id", "name", "label", "mode"];
/// The `service ps` / `node ps` filter keys.
pub const PS_FILTER_KEYS: &[&str] = &["id", "name", "node", "desired-state"];

/// `service ls`, as Docker's.
pub const LS: Listing = Listing {
    default_table: "table {{.ID}}\t{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}\t{{.Ports}}",
    fields: &["ID", "Name", "Mode", "Replicas", "Image", "Ports"],
    headers: &[],
};

/// `service ps` / `node ps`, as Docker's.
pub const PS: Listing = Listing {
    default_table: "table {{.ID}}\t{{.Name}}\t{{.Image}}\t{{.Node}}\t{{.DesiredState}}\t{{.CurrentState}}\t{{.Error}}\t{{.Ports}}",
    fields: &[
        "ID",
        "Name",
        "Image",
        "Node",
        "DesiredState",
        "CurrentState",
        "Error",
        "Ports",
    ],
    headers: &[],
};

/// Docker's short ids are 12 characters.
pub fn short_id(id: &str, no_trunc: bool) -> &str {
    match (no_trunc, id.char_indices().nth(12)) {
        (false, Some((i, _))) => &id[..i],
        _ => id,
    }
}

/// The image without its digest, as Docker's tables show it.
pub fn short_image(image: &str, no_trunc: bool) -> &str {
    if no_trunc {
        return image;
    }
    image.split_once('@').map_or(image, |(name, _)| name)
}

/// A task state as Docker names it (`running`, `shutdown`).
pub fn state_word(state: TaskState) -> &'static str {
    state.docker_name()
}

fn capitalized(word: &str) -> String {
    let mut c = word.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// A service's mode word: `replicated`, `global`, `replicated job`, `global job`.
pub fn mode_word(s: &Service) -> &'static str {
    match s.spec.as_ref().and_then(|s| s.mode.as_ref()) {
        Some(Mode::Global(_)) => "global",
        Some(Mode::ReplicatedJob(_)) => "replicated job",
        Some(Mode::GlobalJob(_)) => "global job",
        _ => "replicated",
    }
}

fn service_name(s: &Service) -> &str {
    s.spec
        .as_ref()
        .and_then(|s| s.annotations.as_ref())
        .map_or("", |a| a.name.as_str())
}

/// The image as `service ls` shows it: without the pinned digest, as
/// Docker's (`inspect` has the whole reference).
fn image(s: &Service) -> &str {
    let image = s
        .spec
        .as_ref()
        .and_then(|s| s.task.as_ref())
        .and_then(|t| t.container.as_ref())
        .map_or("", |c| c.image.as_str());
    super::resolve::unpinned(image)
}

fn protocol_word(p: &PortConfig) -> &'static str {
    match p.protocol() {
        port_config::Protocol::Tcp => "tcp",
        port_config::Protocol::Udp => "udp",
        port_config::Protocol::Sctp => "sctp",
    }
}

/// `*:8080->80/tcp, *:53->53/udp` for `ports`.
pub fn ports_text<'a>(ports: impl IntoIterator<Item = &'a PortConfig>) -> String {
    ports
        .into_iter()
        .map(|p| {
            format!(
                "*:{}->{}/{}",
                p.published_port,
                p.target_port,
                protocol_word(p)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The routing-mesh ports of a service: the allocated ones, else the spec's.
fn service_ports(s: &Service) -> String {
    let allocated = s
        .endpoint
        .as_ref()
        .map(|e| &e.ports)
        .filter(|p| !p.is_empty());
    let spec = s
        .spec
        .as_ref()
        .and_then(|s| s.endpoint.as_ref())
        .map(|e| &e.ports);
    let ports = allocated.or(spec).into_iter().flatten();
    ports_text(ports.filter(|p| p.publish_mode() == port_config::PublishMode::Ingress))
}

/// `3/3`, `2/2 (max 1 per node)`, `0/5 (3/10 completed)`: running tasks
/// over desired ones, as the manager counted them (`ListServices` with
/// `status`), so no task list is shipped to show them.
pub fn replicas(s: &Service, c: &ServiceCounts) -> String {
    let (running, desired, completed) = (c.running_tasks, c.desired_tasks, c.completed_tasks);
    let spec = s.spec.as_ref();
    let text = match spec.and_then(|s| s.mode.as_ref()) {
        Some(Mode::ReplicatedJob(j)) => format!(
            "{running}/{desired} ({completed}/{} completed)",
            j.total_completions
        ),
        Some(Mode::GlobalJob(_)) => format!(
            "{running}/{desired} ({completed}/{} completed)",
            desired + completed
        ),
        Some(Mode::Replicated(r)) => format!("{running}/{}", r.replicas),
        Some(Mode::Global(_)) => format!("{running}/{desired}"),
        None => format!("{running}/0"),
    };
    let max = spec
        .and_then(|s| s.task.as_ref())
        .and_then(|t| t.placement.as_ref())
        .map_or(0, |p| p.max_replicas);
    match max {
        0 => text,
        n => format!("{text} (max {n} per node)"),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LsRow {
    #[serde(rename = "ID")]
    id: String,
    name: String,
    mode: &'static str,
    replicas: String,
    image: String,
    ports: String,
}

/// Keeps the services `filters` select, sorted by name.
pub fn select_services(mut services: Vec<Service>, filters: &Filters) -> Vec<Service> {
    let empty = BTreeMap::new();
    services.retain(|s| {
        let labels = s
            .spec
            .as_ref()
            .and_then(|s| s.annotations.as_ref())
            .map_or(&empty, |a| &a.labels);
        filters.id_ok(&s.id)
            && filters.name_prefix_ok(service_name(s))
            && filters.labels_ok("label", labels)
            && filters.any("mode", |m| m.replace('-', " ") == mode_word(s))
    });
    services.sort_by(|a, b| {
        natural_cmp(service_name(a), service_name(b)).then_with(|| a.id.cmp(&b.id))
    });
    services
}

/// What `service ls` prints.
pub fn render_ls(
    services: &[Service],
    counts: &BTreeMap<String, ServiceCounts>,
    quiet: bool,
    format: Option<&str>,
) -> anyhow::Result<String> {
    if quiet {
        return Ok(services.iter().map(|s| format!("{}\n", s.id)).collect());
    }
    let rows: Vec<LsRow> = services
        .iter()
        .map(|s| LsRow {
            id: short_id(&s.id, false).to_string(),
            name: service_name(s).to_string(),
            mode: mode_word(s),
            replicas: replicas(s, counts.get(&s.id).unwrap_or(&ServiceCounts::default())),
            image: short_image(image(s), false).to_string(),
            ports: service_ports(s),
        })
        .collect();
    LS.render(format, &rows)
}

/// Names the task tables need: services by id, node hostnames by id.
#[derive(Debug, Default)]
pub struct Names {
    pub services: BTreeMap<String, String>,
    pub nodes: BTreeMap<String, String>,
}

/// `web.1` for a replicated task, `web.<node id>` for a global one.
pub fn task_name(t: &Task, names: &Names) -> String {
    let service = t
        .service_annotations
        .as_ref()
        .map(|a| a.name.as_str())
        .filter(|n| !n.is_empty())
        .or_else(|| names.services.get(&t.service_id).map(String::as_str))
        .unwrap_or(&t.service_id);
    match t.slot {
        0 => format!("{service}.{}", t.node_id),
        slot => format!("{service}.{slot}"),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PsRow {
    #[serde(rename = "ID")]
    id: String,
    name: String,
    image: String,
    node: String,
    desired_state: String,
    current_state: String,
    error: String,
    ports: String,
}

/// Keeps the tasks `filters` select (`node=` by id or hostname).
pub fn select_tasks(mut tasks: Vec<Task>, filters: &Filters, names: &Names) -> Vec<Task> {
    tasks.retain(|t| {
        let host = names.nodes.get(&t.node_id).map_or("", String::as_str);
        filters.id_ok(&t.id)
            && filters.name_prefix_ok(&task_name(t, names))
            && filters.any("node", |n| n == t.node_id || n == host)
            && filters.any("desired-state", |d| {
                d.eq_ignore_ascii_case(state_word(t.desired_state()))
                    // Docker's `accepted` means "not yet running".
                    || (d == "accepted" && t.desired_state() < TaskState::Running)
            })
    });
    tasks
}

/// The longest error text a truncated table shows, as Docker's.
const MAX_ERR: usize = 30;

/// What `service ps` / `node ps` print: per slot, newest first; older
/// tasks of a slot indented as ` \_ web.1`.
pub fn render_ps(
    tasks: &[Task],
    names: &Names,
    no_trunc: bool,
    quiet: bool,
    format: Option<&str>,
    now: SystemTime,
) -> anyhow::Result<String> {
    let mut sorted: Vec<(String, &Task)> = tasks.iter().map(|t| (task_name(t, names), t)).collect();
    sorted.sort_by(|(na, a), (nb, b)| {
        natural_cmp(na, nb)
            .then_with(|| created(b).cmp(&created(a)))
            .then_with(|| a.id.cmp(&b.id))
    });
    if quiet {
        return Ok(sorted
            .iter()
            .map(|(_, t)| format!("{}\n", short_id(&t.id, no_trunc)))
            .collect());
    }
    // Indent only in tables; a template gets the plain name.
    let table = format.is_none_or(|f| f.trim().is_empty() || f.trim().starts_with("table"));
    let mut prev = String::new();
    let rows: Vec<PsRow> = sorted
        .into_iter()
        .map(|(name, t)| {
            let shown = if table && name == prev {
                format!(" \\_ {name}")
            } else {
                name.clone()
            };
            prev = name;
            let status = t.status.clone().unwrap_or_default();
            let since = status.timestamp.as_ref().map_or(0, |ts| {
                let now = now
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                now - ts.seconds
            });
            let mut err = status.err.clone();
            if !no_trunc && err.chars().count() > MAX_ERR {
                err = format!("{}…", err.chars().take(MAX_ERR - 1).collect::<String>());
            }
            PsRow {
                id: short_id(&t.id, no_trunc).to_string(),
                name: shown,
                image: short_image(task_image(t), no_trunc).to_string(),
                node: names
                    .nodes
                    .get(&t.node_id)
                    .cloned()
                    .unwrap_or_else(|| t.node_id.clone()),
                desired_state: capitalized(state_word(t.desired_state())),
                current_state: format!(
                    "{} {} ago",
                    capitalized(state_word(status.state())),
                    human_duration(since).to_lowercase()
                ),
                error: if err.is_empty() {
                    err
                } else {
                    format!("\"{err}\"")
                },
                ports: ports_text(&status.ports),
            }
        })
        .collect();
    PS.render(format, &rows)
}

fn created(t: &Task) -> (i64, i32) {
    t.meta
        .as_ref()
        .and_then(|m| m.created_at.as_ref())
        .map_or((0, 0), |c| (c.seconds, c.nanos))
}

fn task_image(t: &Task) -> &str {
    let image = t
        .spec
        .as_ref()
        .and_then(|s| s.container.as_ref())
        .map_or("", |c| c.image.as_str());
    super::resolve::unpinned(image)
}
