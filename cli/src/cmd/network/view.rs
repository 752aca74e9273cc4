//! How networks look: `network ls` rows (Docker's columns; every Shoal
//! network has scope `swarm`), `network inspect` JSON shaped like Docker's,
//! and which networks `prune` may remove.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use serde_json::{Value, json};
use shoal_proto::objects::{IpamOptions, Network, Service};

use crate::cmd::common::natural_cmp;
use crate::cmd::filter::Filters;
use crate::output::listing::Listing;
use crate::output::time::rfc3339;

/// Every Shoal network spans the swarm.
pub const SCOPE: &str = "swarm";

/// The `network ls` filter keys.
pub const FILTER_KEYS: &[&str] = &["id", "name", "label", "driver", "scope"];

/// `network ls`, as Docker's.
pub const LISTING: Listing = Listing {
    default_table: "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
    fields: &[
        "ID",
        "Name",
        "Driver",
        "Scope",
        "IPv6",
        "Internal",
        "Labels",
        "CreatedAt",
    ],
    headers: &[
        ("ID", "NETWORK ID"),
        ("IPv6", "IPV6"),
        ("CreatedAt", "CREATED AT"),
    ],
};

/// A network's name.
pub fn name(n: &Network) -> &str {
    n.spec
        .as_ref()
        .and_then(|s| s.annotations.as_ref())
        .map_or("", |a| a.name.as_str())
}

/// The driver in use, else the one asked for, else `overlay`.
pub fn driver(n: &Network) -> &str {
    let state = n.driver_state.as_ref().map(|d| d.name.as_str());
    let asked = n
        .spec
        .as_ref()
        .and_then(|s| s.driver_config.as_ref())
        .map(|d| d.name.as_str());
    [state, asked]
        .into_iter()
        .flatten()
        .find(|d| !d.is_empty())
        .unwrap_or("overlay")
}

fn labels(n: &Network) -> BTreeMap<String, String> {
    n.spec
        .as_ref()
        .and_then(|s| s.annotations.as_ref())
        .map(|a| a.labels.clone().into_iter().collect())
        .unwrap_or_default()
}

/// Keeps the networks `filters` select, sorted by name.
pub fn select(mut nets: Vec<Network>, filters: &Filters) -> Vec<Network> {
    nets.retain(|n| {
        let labels = labels(n).into_iter().collect();
        filters.id_ok(&n.id)
            && filters.name_part_ok(name(n))
            && filters.labels_ok("label", &labels)
            && filters.any("driver", |d| d == driver(n))
            && filters.any("scope", |s| s == SCOPE)
    });
    nets.sort_by(|a, b| natural_cmp(name(a), name(b)).then_with(|| a.id.cmp(&b.id)));
    nets
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Row {
    #[serde(rename = "ID")]
    id: String,
    name: String,
    driver: String,
    scope: &'static str,
    #[serde(rename = "IPv6")]
    ipv6: &'static str,
    internal: String,
    labels: String,
    created_at: String,
}

/// An id as tables show it: 12 characters unless `--no-trunc`.
pub fn short_id(id: &str, no_trunc: bool) -> &str {
    match id.char_indices().nth(12) {
        Some((i, _)) if !no_trunc => &id[..i],
        _ => id,
    }
}

/// What `network ls` prints.
pub fn render_list(
    nets: &[Network],
    quiet: bool,
    no_trunc: bool,
    format: Option<&str>,
) -> anyhow::Result<String> {
    if quiet {
        return Ok(nets
            .iter()
            .map(|n| format!("{}\n", short_id(&n.id, no_trunc)))
            .collect());
    }
    let rows: Vec<Row> = nets
        .iter()
        .map(|n| Row {
            id: short_id(&n.id, no_trunc).to_string(),
            name: name(n).to_string(),
            driver: driver(n).to_string(),
            scope: SCOPE,
            ipv6: "false",
            internal: n.spec.as_ref().is_some_and(|s| s.internal).to_string(),
            labels: labels(n)
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            created_at: rfc3339(n.meta.as_ref().and_then(|m| m.created_at.as_ref())),
        })
        .collect();
    LISTING.render(format, &rows)
}

fn ipam_view(ipam: &IpamOptions) -> Value {
    let driver = ipam.driver.clone().unwrap_or_default();
    let options = match driver.options.is_empty() {
        true => Value::Null,
        false => json!(driver.options.into_iter().collect::<BTreeMap<_, _>>()),
    };
    let configs: Vec<Value> = ipam
        .configs
        .iter()
        .map(|c| {
            let mut v = json!({"Subnet": c.subnet});
            if !c.range.is_empty() {
                v["IPRange"] = json!(c.range);
            }
            if !c.gateway.is_empty() {
                v["Gateway"] = json!(c.gateway);
            }
            v
        })
        .collect();
    json!({
        "Driver": if driver.name.is_empty() { "default".to_string() } else { driver.name },
        "Options": options,
        "Config": configs,
    })
}

/// `network inspect`'s JSON object: Docker's fields, in Docker's order.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectView {
    name: String,
    id: String,
    created: String,
    scope: &'static str,
    driver: String,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    ipam: Value,
    internal: bool,
    attachable: bool,
    ingress: bool,
    config_from: Value,
    config_only: bool,
    containers: Option<Value>,
    options: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
}

/// `network inspect`'s view of one network.
pub fn inspect_view(n: &Network) -> InspectView {
    let spec = n.spec.clone().unwrap_or_default();
    // The allocated IPAM once the manager has it, else what was asked.
    let ipam = match &n.ipam {
        Some(i) if !i.configs.is_empty() => i.clone(),
        _ => spec.ipam.clone().unwrap_or_default(),
    };
    let mut options: BTreeMap<String, String> = spec
        .driver_config
        .map(|d| d.options.into_iter().collect())
        .unwrap_or_default();
    if let Some(state) = &n.driver_state {
        options.extend(state.options.clone());
    }
    InspectView {
        name: name(n).to_string(),
        id: n.id.clone(),
        created: rfc3339(n.meta.as_ref().and_then(|m| m.created_at.as_ref())),
        scope: SCOPE,
        driver: driver(n).to_string(),
        enable_ipv6: false,
        ipam: ipam_view(&ipam),
        internal: spec.internal,
        attachable: spec.attachable,
        ingress: spec.ingress,
        config_from: json!({"Network": ""}),
        config_only: false,
        containers: None,
        options,
        labels: labels(n),
    }
}

/// The networks no service uses, which `prune` removes; never `ingress`.
pub fn unused<'a>(nets: &'a [Network], services: &[Service]) -> Vec<&'a Network> {
    let mut used: HashSet<&str> = HashSet::new();
    for spec in services.iter().filter_map(|s| s.spec.as_ref()) {
        let task_nets = spec.task.iter().flat_map(|t| t.networks.iter());
        for attachment in spec.networks.iter().chain(task_nets) {
            used.insert(attachment.target.as_str());
        }
    }
    nets.iter()
        .filter(|n| !n.spec.as_ref().is_some_and(|s| s.ingress))
        .filter(|n| !used.contains(n.id.as_str()) && !used.contains(name(n)))
        .collect()
}
