//! How images look: names as Docker shows them (`busybox:latest`, not
//! `docker.io/library/busybox:latest`), `image ls` rows (one per tag),
//! `image inspect` JSON shaped like Docker's, and go-units' sizes.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::{Value, json};
use shoal_proto::local::Image;

use crate::cmd::filter::Filters;
use crate::output::listing::Listing;
use crate::output::time::{ago, rfc3339};

/// The `image ls` filter keys.
pub const FILTER_KEYS: &[&str] = &["dangling", "label", "reference"];

/// `image ls`, as Docker's.
pub const LISTING: Listing = Listing {
    default_table: "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}",
    fields: &[
        "Containers",
        "CreatedAt",
        "CreatedSince",
        "Digest",
        "ID",
        "Repository",
        "SharedSize",
        "Size",
        "Tag",
        "UniqueSize",
        "VirtualSize",
    ],
    headers: &[("ID", "IMAGE ID"), ("CreatedSince", "CREATED")],
};

/// The default table with `--digests`.
pub const DIGESTS_TABLE: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

const NONE: &str = "<none>";

/// A name as Docker shows it: Docker Hub's `docker.io/` and `library/`
/// dropped, any other registry kept.
pub fn familiar(name: &str) -> String {
    let Some(rest) = name.strip_prefix("docker.io/") else {
        return name.to_string();
    };
    rest.strip_prefix("library/").unwrap_or(rest).to_string()
}

/// `repo:tag` → (`repo`, `tag`); the tag's `:` is the one after the last `/`.
pub fn split_tag(name: &str) -> (&str, &str) {
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(i) => (&name[..slash + i], &name[slash + i + 1..]),
        None => (name, ""),
    }
}

/// An id as tables show it: 12 hex characters, or all of it (`sha256:`
/// included) with `--no-trunc`.
pub fn short_id(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        return id.to_string();
    }
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.chars().take(12).collect()
}

/// go-units' `HumanSizeWithPrecision`: decimal units, `precision`
/// significant digits (`4.26MB`, `512B`).
pub fn human_size(bytes: u64, precision: usize) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{}{}", sig_digits(value, precision), UNITS[unit])
}

/// `%.Ng`: `precision` significant digits, trailing zeros dropped.
fn sig_digits(value: f64, precision: usize) -> String {
    if value == 0.0 {
        return "0".into();
    }
    let int_digits = (value.abs().log10().floor() as i64 + 1).max(1) as usize;
    let decimals = precision.saturating_sub(int_digits);
    let s = format!("{value:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Go's `time.Time.String()` in UTC: `2024-01-02 03:04:05 +0000 UTC`.
fn go_time(image: &Image) -> String {
    let Some(ts) = &image.created else {
        return String::new();
    };
    let whole = prost_types::Timestamp {
        seconds: ts.seconds,
        nanos: 0,
    };
    let text = rfc3339(Some(&whole));
    text.replacen('T', " ", 1).replace('Z', " +0000 UTC")
}

/// One `image ls` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Row {
    pub containers: String,
    pub created_at: String,
    pub created_since: String,
    pub digest: String,
    #[serde(rename = "ID")]
    pub id: String,
    pub repository: String,
    pub shared_size: &'static str,
    pub size: String,
    pub tag: String,
    pub unique_size: &'static str,
    pub virtual_size: String,
    /// What `reference=` and `REPOSITORY[:TAG]` match against.
    #[serde(skip)]
    pub dangling: bool,
}

/// The rows of one image: one per tag, the digest of the same repository
/// beside it; a repository named only by digest gets `<none>` as its tag;
/// an image without names is one `<none>` row.
pub fn rows(image: &Image, no_trunc: bool, now: SystemTime) -> Vec<Row> {
    let mut digests: BTreeMap<String, String> = BTreeMap::new();
    for d in &image.repo_digests {
        let d = familiar(d);
        if let Some((repo, digest)) = d.split_once('@') {
            digests.entry(repo.into()).or_insert_with(|| digest.into());
        }
    }
    let row = |repo: &str, tag: &str, digest: &str| Row {
        containers: image.tasks.len().to_string(),
        created_at: go_time(image),
        created_since: ago(image.created.as_ref(), now),
        digest: digest.to_string(),
        id: short_id(&image.id, no_trunc),
        repository: repo.to_string(),
        shared_size: "N/A",
        size: human_size(image.size, 3),
        tag: tag.to_string(),
        unique_size: "N/A",
        virtual_size: human_size(image.size, 3),
        dangling: image.repo_tags.is_empty(),
    };
    let mut out = Vec::new();
    let mut tagged = Vec::new();
    for name in &image.repo_tags {
        let name = familiar(name);
        let (repo, tag) = split_tag(&name);
        let digest = digests.get(repo).map_or(NONE, String::as_str);
        out.push(row(repo, tag, digest));
        tagged.push(repo.to_string());
    }
    for (repo, digest) in &digests {
        if !tagged.contains(repo) {
            out.push(row(repo, NONE, digest));
        }
    }
    if out.is_empty() {
        out.push(row(NONE, NONE, NONE));
    }
    out
}

/// Go's `path.Match` for one reference pattern: `*` and `?` never cross `/`.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len())
                .take_while(|&i| i == 0 || n[i - 1] != '/')
                .any(|i| go(&p[1..], &n[i..])),
            Some('?') => n.first().is_some_and(|c| *c != '/') && go(&p[1..], &n[1..]),
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    go(&p, &n)
}

/// Whether a row's `repo:tag` (or its repository alone) matches a pattern,
/// as Docker's `reference=` filter does.
pub fn reference_matches(pattern: &str, row: &Row) -> bool {
    if row.repository == NONE {
        return false;
    }
    let pattern = familiar(pattern);
    glob(&pattern, &row.repository) || glob(&pattern, &format!("{}:{}", row.repository, row.tag))
}

/// The rows `filters` (and the optional `REPOSITORY[:TAG]` argument) keep.
pub fn select(
    images: &[Image],
    filters: &Filters,
    repository: Option<&str>,
    no_trunc: bool,
    now: SystemTime,
) -> anyhow::Result<Vec<Row>> {
    for v in filters.values("dangling") {
        if !matches!(v, "true" | "false" | "1" | "0") {
            anyhow::bail!("invalid filter 'dangling={v}': use true or false");
        }
    }
    let mut images: Vec<&Image> = images.iter().collect();
    // Newest first, as Docker lists them.
    images.sort_by(|a, b| {
        let t = |i: &Image| i.created.as_ref().map_or(0, |t| t.seconds);
        t(b).cmp(&t(a)).then_with(|| a.id.cmp(&b.id))
    });
    let mut out = Vec::new();
    for image in images {
        let labels = image
            .config
            .as_ref()
            .map(|c| c.labels.clone())
            .unwrap_or_default();
        if !filters.labels_ok("label", &labels) {
            continue;
        }
        let dangling = image.repo_tags.is_empty();
        if !filters.any("dangling", |v| matches!(v, "true" | "1") == dangling) {
            continue;
        }
        for row in rows(image, no_trunc, now) {
            let by_ref = filters.any("reference", |p| reference_matches(p, &row));
            let by_arg = repository.is_none_or(|r| reference_matches(r, &row));
            if by_ref && by_arg {
                out.push(row);
            }
        }
    }
    Ok(out)
}

/// What `image ls` prints.
pub fn render_list(
    rows: &[Row],
    quiet: bool,
    digests: bool,
    format: Option<&str>,
) -> anyhow::Result<String> {
    if quiet {
        return Ok(rows.iter().map(|r| format!("{}\n", r.id)).collect());
    }
    let format = match format.map(str::trim) {
        None | Some("") | Some("table") if digests => Some(DIGESTS_TABLE),
        other => other,
    };
    LISTING.render(format, rows)
}

/// `image inspect`'s JSON object: Docker's fields, in Docker's order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectView {
    id: String,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    parent: &'static str,
    comment: &'static str,
    created: String,
    config: ConfigView,
    size: u64,
    #[serde(rename = "RootFS")]
    root_fs: RootFs,
}

/// The `Config` of `image inspect`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigView {
    user: String,
    exposed_ports: Option<BTreeMap<String, Value>>,
    env: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    healthcheck: Option<HealthcheckView>,
    volumes: Option<BTreeMap<String, Value>>,
    working_dir: String,
    entrypoint: Option<Vec<String>>,
    labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "String::is_empty")]
    stop_signal: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct HealthcheckView {
    test: Vec<String>,
    #[serde(skip_serializing_if = "is_zero")]
    interval: i64,
    #[serde(skip_serializing_if = "is_zero")]
    timeout: i64,
    #[serde(skip_serializing_if = "is_zero")]
    start_period: i64,
    #[serde(skip_serializing_if = "is_zero")]
    retries: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct RootFs {
    r#type: &'static str,
    layers: Vec<String>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// `image inspect`'s view of one image; empty lists and maps are `null`,
/// as Go's are.
pub fn inspect_view(image: &Image) -> InspectView {
    let c = image.config.clone().unwrap_or_default();
    let list = |v: Vec<String>| (!v.is_empty()).then_some(v);
    let set =
        |v: &[String]| (!v.is_empty()).then(|| v.iter().map(|k| (k.clone(), json!({}))).collect());
    let names = |v: &[String]| v.iter().map(|n| familiar(n)).collect();
    InspectView {
        id: image.id.clone(),
        repo_tags: names(&image.repo_tags),
        repo_digests: names(&image.repo_digests),
        parent: "",
        comment: "",
        created: rfc3339(image.created.as_ref()),
        config: ConfigView {
            user: c.user,
            exposed_ports: set(&c.exposed_ports),
            env: list(c.env),
            cmd: list(c.cmd),
            healthcheck: c.healthcheck.map(|h| HealthcheckView {
                test: h.test,
                interval: h.interval_ns,
                timeout: h.timeout_ns,
                start_period: h.start_period_ns,
                retries: i64::from(h.retries),
            }),
            volumes: set(&c.volumes),
            working_dir: c.working_dir,
            entrypoint: list(c.entrypoint),
            labels: (!c.labels.is_empty()).then_some(c.labels),
            stop_signal: c.stop_signal,
        },
        size: image.size,
        root_fs: RootFs {
            r#type: "layers",
            layers: image.layers.clone(),
        },
    }
}
