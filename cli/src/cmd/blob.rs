//! What secrets and configs have in common for display: a name, labels and
//! data. A secret's data is dropped when it becomes a [`Blob`], so no view
//! of a secret can print it, whatever the daemon sent.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use base64::Engine as _;
use serde::Serialize;
use shoal_proto::objects::{Config, Meta, Secret};

use crate::output::listing::{Listing, render_inspect};
use crate::output::time::{ago, rfc3339};

use super::common::natural_cmp;
use super::filter::Filters;

/// A secret or a config, as the CLI shows it.
#[derive(Debug, Clone)]
pub struct Blob {
    pub id: String,
    pub meta: Meta,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Always `None` for a secret.
    pub data: Option<Vec<u8>>,
}

impl From<Secret> for Blob {
    fn from(s: Secret) -> Self {
        let annotations = s.spec.and_then(|spec| spec.annotations).unwrap_or_default();
        Blob {
            id: s.id,
            meta: s.meta.unwrap_or_default(),
            name: annotations.name,
            labels: annotations.labels,
            data: None,
        }
    }
}

impl From<Config> for Blob {
    fn from(c: Config) -> Self {
        let spec = c.spec.unwrap_or_default();
        let annotations = spec.annotations.unwrap_or_default();
        Blob {
            id: c.id,
            meta: c.meta.unwrap_or_default(),
            name: annotations.name,
            labels: annotations.labels,
            data: Some(spec.data),
        }
    }
}

/// The `ls` filter keys of secrets and configs.
pub const FILTER_KEYS: &[&str] = &["id", "name", "label"];

/// `ls` rows, as Docker's `secret ls` / `config ls`.
pub const LISTING: Listing = Listing {
    default_table: "table {{.ID}}\t{{.Name}}\t{{.CreatedAt}}\t{{.UpdatedAt}}",
    fields: &["ID", "Name", "CreatedAt", "UpdatedAt", "Labels"],
    headers: &[("CreatedAt", "CREATED"), ("UpdatedAt", "UPDATED")],
};

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Row {
    #[serde(rename = "ID")]
    id: String,
    name: String,
    created_at: String,
    updated_at: String,
    labels: String,
}

/// Keeps the blobs `filters` select, sorted by name.
pub fn select(mut blobs: Vec<Blob>, filters: &Filters) -> Vec<Blob> {
    blobs.retain(|b| {
        filters.id_ok(&b.id)
            && filters.name_prefix_ok(&b.name)
            && filters.labels_ok("label", &b.labels)
    });
    blobs.sort_by(|a, b| natural_cmp(&a.name, &b.name).then_with(|| a.id.cmp(&b.id)));
    blobs
}

/// What `ls` prints: ids for `-q`, else the table or `--format`.
pub fn render_list(
    blobs: &[Blob],
    quiet: bool,
    format: Option<&str>,
    now: SystemTime,
) -> anyhow::Result<String> {
    if quiet {
        return Ok(blobs.iter().map(|b| format!("{}\n", b.id)).collect());
    }
    let rows: Vec<Row> = blobs
        .iter()
        .map(|b| Row {
            id: b.id.clone(),
            name: b.name.clone(),
            created_at: ago(b.meta.created_at.as_ref(), now),
            updated_at: ago(b.meta.updated_at.as_ref(), now),
            labels: label_list(&b.labels),
        })
        .collect();
    LISTING.render(format, &rows)
}

fn label_list(labels: &BTreeMap<String, String>) -> String {
    let sorted: BTreeMap<_, _> = labels.iter().collect();
    let pairs: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(",")
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct View {
    #[serde(rename = "ID")]
    id: String,
    version: Version,
    created_at: String,
    updated_at: String,
    spec: SpecView,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Version {
    index: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SpecView {
    name: String,
    labels: BTreeMap<String, String>,
    /// Base64, as Docker's JSON carries bytes; configs only.
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<String>,
}

fn view(b: &Blob) -> View {
    View {
        id: b.id.clone(),
        version: Version {
            index: b.meta.version,
        },
        created_at: rfc3339(b.meta.created_at.as_ref()),
        updated_at: rfc3339(b.meta.updated_at.as_ref()),
        spec: SpecView {
            name: b.name.clone(),
            labels: b.labels.clone().into_iter().collect(),
            data: b
                .data
                .as_ref()
                .map(|d| base64::engine::general_purpose::STANDARD.encode(d)),
        },
    }
}

/// What `inspect` prints: Docker-shaped JSON, `--format`, or `--pretty`.
pub fn render_inspect_blobs(
    blobs: &[Blob],
    format: Option<&str>,
    pretty: bool,
) -> anyhow::Result<String> {
    if pretty {
        return Ok(blobs.iter().map(pretty_text).collect::<Vec<_>>().join("\n"));
    }
    let views: Vec<View> = blobs.iter().map(view).collect();
    render_inspect(format, &views)
}

fn pretty_text(b: &Blob) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "ID:              {}", b.id);
    let _ = writeln!(out, "Name:            {}", b.name);
    if !b.labels.is_empty() {
        out.push_str("Labels:\n");
        let sorted: BTreeMap<_, _> = b.labels.iter().collect();
        for (k, v) in sorted {
            let _ = match v.as_str() {
                "" => writeln!(out, " - {k}"),
                v => writeln!(out, " - {k}={v}"),
            };
        }
    }
    let _ = writeln!(
        out,
        "Created at:      {}",
        rfc3339(b.meta.created_at.as_ref())
    );
    let _ = writeln!(
        out,
        "Updated at:      {}",
        rfc3339(b.meta.updated_at.as_ref())
    );
    if let Some(data) = &b.data {
        let _ = writeln!(out, "Data:\n{}", String::from_utf8_lossy(data));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::Timestamp;
    use shoal_proto::objects::{Annotations, ConfigSpec, SecretSpec};
    use std::time::{Duration, UNIX_EPOCH};

    const NOW: u64 = 1_700_000_000;

    fn meta(age: i64) -> Meta {
        let ts = Timestamp {
            seconds: NOW as i64 - age,
            nanos: 0,
        };
        Meta {
            version: 7,
            created_at: Some(ts),
            updated_at: Some(ts),
        }
    }

    fn annotations(name: &str) -> Option<Annotations> {
        Some(Annotations {
            name: name.into(),
            labels: BTreeMap::from([("env".to_string(), "prod".to_string())]),
        })
    }

    fn secret(id: &str, name: &str, age: i64) -> Secret {
        Secret {
            id: id.into(),
            meta: Some(meta(age)),
            spec: Some(SecretSpec {
                annotations: annotations(name),
                data: b"hunter2-top-secret".to_vec(),
            }),
        }
    }

    #[test]
    fn secret_inspect_never_shows_the_data() {
        let blob = Blob::from(secret("s1", "db_pass", 60));
        let b64 = base64::engine::general_purpose::STANDARD.encode(b"hunter2-top-secret");
        for out in [
            render_inspect_blobs(std::slice::from_ref(&blob), None, false).unwrap(),
            render_inspect_blobs(std::slice::from_ref(&blob), None, true).unwrap(),
            render_inspect_blobs(std::slice::from_ref(&blob), Some("{{json .}}"), false).unwrap(),
        ] {
            assert!(!out.contains("hunter2") && !out.contains(&b64), "{out}");
            assert!(!out.contains("Data"), "{out}");
        }
        let json: serde_json::Value =
            serde_json::from_str(&render_inspect_blobs(&[blob], None, false).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!([{
                "ID": "s1",
                "Version": {"Index": 7},
                "CreatedAt": "2023-11-14T22:12:20Z",
                "UpdatedAt": "2023-11-14T22:12:20Z",
                "Spec": {"Name": "db_pass", "Labels": {"env": "prod"}}
            }])
        );
    }

    #[test]
    fn config_inspect_carries_base64_data() {
        let config = Config {
            id: "c1".into(),
            meta: Some(meta(60)),
            spec: Some(ConfigSpec {
                annotations: annotations("nginx.conf"),
                data: b"server {}".to_vec(),
            }),
        };
        let out = render_inspect_blobs(&[Blob::from(config)], Some("{{.Spec.Data}}"), false);
        assert_eq!(out.unwrap(), "c2VydmVyIHt9\n");
    }

    #[test]
    fn ls_table_with_human_times() {
        let now = UNIX_EPOCH + Duration::from_secs(NOW);
        let filters = Filters::default();
        let blobs = select(
            vec![
                Blob::from(secret("bbbbbbbbbbbbbbbbbbbbbbbbb", "web_key", 7200)),
                Blob::from(secret("aaaaaaaaaaaaaaaaaaaaaaaaa", "api_key", 90)),
            ],
            &filters,
        );
        let out = render_list(&blobs, false, None, now).unwrap();
        assert_eq!(
            out,
            "ID                          NAME      CREATED              UPDATED\n\
             aaaaaaaaaaaaaaaaaaaaaaaaa   api_key   About a minute ago   About a minute ago\n\
             bbbbbbbbbbbbbbbbbbbbbbbbb   web_key   2 hours ago          2 hours ago\n"
        );
        assert_eq!(
            render_list(&blobs, true, None, now).unwrap(),
            "aaaaaaaaaaaaaaaaaaaaaaaaa\nbbbbbbbbbbbbbbbbbbbbbbbbb\n"
        );
        assert_eq!(
            render_list(&blobs, false, Some("{{.Name}} {{.Labels}}"), now).unwrap(),
            "api_key env=prod\nweb_key env=prod\n"
        );
    }
}
