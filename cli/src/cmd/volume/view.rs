//! How volumes look: `volume ls` rows (Docker's columns; every volume
//! here is `local`), `volume inspect` JSON shaped like Docker's, and which
//! volumes the `ls` filters keep.

use std::collections::BTreeMap;

use serde::Serialize;
use shoal_proto::local::Volume;

use crate::cmd::common::natural_cmp;
use crate::cmd::filter::Filters;
use crate::output::listing::Listing;

/// Every volume lives on this node.
pub const SCOPE: &str = "local";

/// The `volume ls` filter keys.
pub const FILTER_KEYS: &[&str] = &["dangling", "driver", "label", "name"];

/// `volume ls`, as Docker's.
pub const LISTING: Listing = Listing {
    default_table: "table {{.Driver}}\t{{.Name}}",
    fields: &[
        "Name",
        "Driver",
        "Scope",
        "Mountpoint",
        "Labels",
        "Links",
        "Size",
    ],
    headers: &[("Name", "VOLUME NAME")],
};

/// Keeps the volumes `filters` select, in natural order of names.
pub fn select(mut volumes: Vec<Volume>, filters: &Filters) -> anyhow::Result<Vec<Volume>> {
    for v in filters.values("dangling") {
        if !matches!(v, "true" | "false" | "1" | "0") {
            anyhow::bail!("invalid filter 'dangling={v}': use true or false");
        }
    }
    volumes.retain(|v| {
        let dangling = v.tasks.is_empty();
        filters.name_part_ok(&v.name)
            && filters.any("driver", |d| d == v.driver)
            && filters.any("dangling", |d| matches!(d, "true" | "1") == dangling)
            && filters.labels_ok("label", &v.labels)
    });
    volumes.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    Ok(volumes)
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Row {
    name: String,
    driver: String,
    scope: &'static str,
    mountpoint: String,
    labels: String,
    links: String,
    size: &'static str,
}

/// What `volume ls` prints.
pub fn render_list(
    volumes: &[Volume],
    quiet: bool,
    format: Option<&str>,
) -> anyhow::Result<String> {
    if quiet {
        return Ok(volumes.iter().map(|v| format!("{}\n", v.name)).collect());
    }
    let rows: Vec<Row> = volumes
        .iter()
        .map(|v| Row {
            name: v.name.clone(),
            driver: v.driver.clone(),
            scope: SCOPE,
            mountpoint: v.mountpoint.clone(),
            labels: v
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            links: v.tasks.len().to_string(),
            size: "N/A",
        })
        .collect();
    LISTING.render(format, &rows)
}

/// `volume inspect`'s JSON object: Docker's fields, in Docker's order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectView {
    created_at: String,
    driver: String,
    labels: BTreeMap<String, String>,
    mountpoint: String,
    name: String,
    options: BTreeMap<String, String>,
    scope: &'static str,
}

/// `volume inspect`'s view of one volume.
pub fn inspect_view(v: &Volume) -> InspectView {
    // RFC 3339 to the second, as the Docker Engine reports it.
    let created_at = v.created_at.as_ref().map_or_else(String::new, |t| {
        prost_types::Timestamp {
            seconds: t.seconds,
            nanos: 0,
        }
        .to_string()
    });
    InspectView {
        created_at,
        driver: v.driver.clone(),
        labels: v.labels.clone(),
        mountpoint: v.mountpoint.clone(),
        name: v.name.clone(),
        options: v.options.clone(),
        scope: SCOPE,
    }
}
