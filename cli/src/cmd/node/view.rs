//! How nodes look: `node ls` rows (Docker's columns, `*` on the node the
//! CLI talks to), `node inspect` JSON shaped like Docker's, and `--pretty`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use shoal_proto::objects::{
    Node, NodeRole, manager_status::Reachability, node_spec::Availability, node_status::State,
};

use crate::cmd::common::natural_cmp;
use crate::cmd::filter::Filters;
use crate::output::human_bytes;
use crate::output::listing::Listing;
use crate::output::time::rfc3339;

/// The `node ls` filter keys.
pub const FILTER_KEYS: &[&str] = &["id", "name", "label", "node.label", "role"];

/// `node ls`, as Docker's.
pub const LISTING: Listing = Listing {
    default_table: "table {{.ID}}\t{{.Hostname}}\t{{.Status}}\t{{.Availability}}\t{{.ManagerStatus}}\t{{.EngineVersion}}",
    fields: &[
        "ID",
        "Hostname",
        "Status",
        "Availability",
        "ManagerStatus",
        "EngineVersion",
        "Self",
    ],
    headers: &[],
};

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Row {
    #[serde(rename = "ID")]
    id: String,
    hostname: String,
    status: &'static str,
    availability: &'static str,
    manager_status: &'static str,
    engine_version: String,
    #[serde(rename = "Self")]
    is_self: bool,
}

fn role_word(role: NodeRole) -> &'static str {
    match role {
        NodeRole::Manager => "manager",
        NodeRole::Worker => "worker",
    }
}

fn hostname(n: &Node) -> &str {
    n.description.as_ref().map_or("", |d| d.hostname.as_str())
}

/// The node's name and labels, as its spec holds them.
fn annotations(n: &Node) -> (&str, Option<&std::collections::BTreeMap<String, String>>) {
    match n.spec.as_ref().and_then(|s| s.annotations.as_ref()) {
        Some(a) => (a.name.as_str(), Some(&a.labels)),
        None => ("", None),
    }
}

/// Keeps the nodes `filters` select, sorted by hostname then id.
pub fn select(mut nodes: Vec<Node>, filters: &Filters) -> Vec<Node> {
    let empty = Default::default();
    nodes.retain(|n| {
        let (name, labels) = annotations(n);
        let engine_labels = n
            .description
            .as_ref()
            .and_then(|d| d.engine.as_ref())
            .map_or(&empty, |e| &e.labels);
        filters.id_ok(&n.id)
            && (filters.name_part_ok(hostname(n))
                || (!name.is_empty() && filters.name_part_ok(name)))
            && filters.labels_ok("label", engine_labels)
            && filters.labels_ok("node.label", labels.unwrap_or(&empty))
            && filters.any("role", |r| r == role_word(n.role()))
    });
    nodes.sort_by(|a, b| natural_cmp(hostname(a), hostname(b)).then_with(|| a.id.cmp(&b.id)));
    nodes
}

fn status(n: &Node) -> &'static str {
    match n.status.as_ref().map_or(State::Unknown, |s| s.state()) {
        State::Ready => "Ready",
        State::Down => "Down",
        State::Disconnected => "Disconnected",
        State::Unknown => "Unknown",
    }
}

fn availability(n: &Node) -> &'static str {
    match n
        .spec
        .as_ref()
        .map_or(Availability::Active, |s| s.availability())
    {
        Availability::Active => "Active",
        Availability::Pause => "Pause",
        Availability::Drain => "Drain",
    }
}

/// `Leader`, `Reachable`, `Unreachable`, `Unknown`, or empty for a worker.
fn manager_status(n: &Node) -> &'static str {
    match &n.manager_status {
        None => "",
        Some(m) if m.leader => "Leader",
        Some(m) => match m.reachability() {
            Reachability::Reachable => "Reachable",
            Reachability::Unreachable => "Unreachable",
            Reachability::Unknown => "Unknown",
        },
    }
}

/// `docker 20.10.24` for a Docker engine, else the engine's kind.
pub fn engine_version(n: &Node) -> String {
    let Some(e) = n.description.as_ref().and_then(|d| d.engine.as_ref()) else {
        return String::new();
    };
    match (e.kind.as_str(), e.version.as_str()) {
        ("docker", v) if !v.is_empty() => format!("docker {v}"),
        (kind, _) => kind.to_string(),
    }
}

/// What `node ls` prints; `self_id` is the node the CLI talks to.
pub fn render_list(
    nodes: &[Node],
    self_id: &str,
    quiet: bool,
    format: Option<&str>,
) -> anyhow::Result<String> {
    if quiet {
        return Ok(nodes.iter().map(|n| format!("{}\n", n.id)).collect());
    }
    let rows: Vec<Row> = nodes
        .iter()
        .map(|n| {
            let is_self = !self_id.is_empty() && n.id == self_id;
            Row {
                id: if is_self {
                    format!("{} *", n.id)
                } else {
                    n.id.clone()
                },
                hostname: hostname(n).to_string(),
                status: status(n),
                availability: availability(n),
                manager_status: manager_status(n),
                engine_version: engine_version(n),
                is_self,
            }
        })
        .collect();
    LISTING.render(format, &rows)
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct View {
    #[serde(rename = "ID")]
    id: String,
    version: serde_json::Value,
    created_at: String,
    updated_at: String,
    spec: SpecView,
    description: serde_json::Value,
    status: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    manager_status: Option<serde_json::Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SpecView {
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    labels: BTreeMap<String, String>,
    role: &'static str,
    availability: String,
}

/// `node inspect`'s JSON object for one node, shaped like Docker's.
pub fn inspect_view(n: &Node) -> impl Serialize {
    use serde_json::json;
    let meta = n.meta.unwrap_or_default();
    let spec = n.spec.clone().unwrap_or_default();
    let (name, labels) = annotations(n);
    let desc = n.description.clone().unwrap_or_default();
    let platform = desc.platform.unwrap_or_default();
    let resources = desc.resources.unwrap_or_default();
    let engine = desc.engine.unwrap_or_default();
    let st = n.status.clone().unwrap_or_default();
    let mut status = json!({"State": status(n).to_lowercase()});
    if !st.message.is_empty() {
        status["Message"] = json!(st.message);
    }
    status["Addr"] = json!(st.addr);
    View {
        id: n.id.clone(),
        version: json!({"Index": meta.version}),
        created_at: rfc3339(meta.created_at.as_ref()),
        updated_at: rfc3339(meta.updated_at.as_ref()),
        spec: SpecView {
            name: name.to_string(),
            labels: labels.cloned().unwrap_or_default().into_iter().collect(),
            role: role_word(spec.desired_role()),
            availability: availability(n).to_lowercase(),
        },
        description: json!({
            "Hostname": desc.hostname,
            "Platform": {"Architecture": platform.architecture, "OS": platform.os},
            "Resources": {"NanoCPUs": resources.nano_cpus, "MemoryBytes": resources.memory_bytes},
            "Engine": {
                "EngineVersion": engine.version,
                "Kind": engine.kind,
                "Labels": engine.labels.into_iter().collect::<BTreeMap<_, _>>(),
            },
        }),
        status,
        manager_status: n.manager_status.as_ref().map(|m| {
            let mut v = json!({});
            if m.leader {
                v["Leader"] = json!(true);
            }
            v["Reachability"] = json!(manager_status_word(m.reachability()));
            v["Addr"] = json!(m.addr);
            v
        }),
    }
}

fn manager_status_word(r: Reachability) -> &'static str {
    match r {
        Reachability::Reachable => "reachable",
        Reachability::Unreachable => "unreachable",
        Reachability::Unknown => "unknown",
    }
}

/// `node inspect --pretty`, as Docker's.
pub fn pretty(n: &Node) -> String {
    let mut o = String::new();
    let (name, labels) = annotations(n);
    let meta = n.meta.unwrap_or_default();
    let desc = n.description.clone().unwrap_or_default();
    let platform = desc.platform.unwrap_or_default();
    let resources = desc.resources.unwrap_or_default();
    // Writing to a String cannot fail.
    let _ = writeln!(o, "ID:                     {}", n.id);
    if !name.is_empty() {
        let _ = writeln!(o, "Name:                   {name}");
    }
    if let Some(labels) = labels.filter(|l| !l.is_empty()) {
        o.push_str("Labels:\n");
        for (k, v) in labels.iter().collect::<BTreeMap<_, _>>() {
            let _ = writeln!(o, " - {k}={v}");
        }
    }
    let _ = writeln!(o, "Hostname:               {}", desc.hostname);
    let _ = writeln!(
        o,
        "Joined at:              {}",
        rfc3339(meta.created_at.as_ref())
    );
    o.push_str("Status:\n");
    let _ = writeln!(o, " State:                 {}", status(n));
    let st = n.status.clone().unwrap_or_default();
    if !st.message.is_empty() {
        let _ = writeln!(o, " Message:               {}", st.message);
    }
    let _ = writeln!(o, " Availability:          {}", availability(n));
    let _ = writeln!(o, " Address:               {}", st.addr);
    if let Some(m) = &n.manager_status {
        o.push_str("Manager Status:\n");
        let _ = writeln!(o, " Address:               {}", m.addr);
        let raft = manager_status_word(m.reachability());
        let raft = format!("{}{}", raft[..1].to_uppercase(), &raft[1..]);
        let _ = writeln!(o, " Raft Status:           {raft}");
        let _ = writeln!(
            o,
            " Leader:                {}",
            if m.leader { "Yes" } else { "No" }
        );
    }
    o.push_str("Platform:\n");
    let _ = writeln!(o, " Operating System:      {}", platform.os);
    let _ = writeln!(o, " Architecture:          {}", platform.architecture);
    o.push_str("Resources:\n");
    let cpus = resources.nano_cpus as f64 / 1e9;
    let _ = writeln!(o, " CPUs:                  {cpus}");
    let mem = u64::try_from(resources.memory_bytes).unwrap_or(0);
    let _ = writeln!(o, " Memory:                {}", human_bytes(mem));
    let _ = writeln!(o, "Engine Version:         {}", engine_version(n));
    o
}
