//! Top-level `networks`, `volumes`, `secrets` and `configs`.

use std::collections::BTreeMap;
use std::path::Path;

use super::{FileObject, Network, Volume};
use crate::compose::errors::Result;
use crate::compose::read::At;
use crate::compose::yaml::{Value, join};

/// `external: true` or the 3.x form `external: {name: x}`: (is external, name).
fn external(at: At<'_>) -> Result<(bool, Option<String>)> {
    match &at.node.value {
        Value::Map(_) => {
            let mut skipped = Vec::new();
            let f = at.fields(&["name"], &[], &mut skipped)?;
            Ok((true, f.get("name").map(|n| n.string()).transpose()?))
        }
        _ => Ok((at.bool()?, None)),
    }
}

pub fn networks(at: At<'_>) -> Result<BTreeMap<String, Network>> {
    const KEYS: &[&str] = &[
        "name",
        "driver",
        "driver_opts",
        "external",
        "attachable",
        "internal",
        "ipam",
        "labels",
        "enable_ipv6",
    ];
    let mut out = BTreeMap::new();
    for (key, node) in at.entries()? {
        let path = join(at.path, &key.name);
        let at = At::new(node, &path);
        let mut n = Network::default();
        let mut skipped = Vec::new();
        let f = at.fields(KEYS, &[], &mut skipped)?;
        if let Some(v) = f.get("name") {
            n.name = v.string()?;
        }
        if let Some(v) = f.get("external") {
            let (ext, name) = external(v)?;
            n.external = ext;
            if let Some(name) = name {
                n.name = name;
            }
        }
        if n.external && n.name.is_empty() {
            n.name = key.name.clone();
        }
        if let Some(v) = f.get("driver") {
            n.driver = v.string()?;
            if !matches!(n.driver.as_str(), "overlay" | "bridge" | "host" | "null") {
                return Err(v.err(format!(
                    "driver {:?} is not supported: swarm stacks use overlay networks",
                    n.driver
                )));
            }
        }
        if let Some(v) = f.get("driver_opts") {
            n.driver_opts = v.labels()?;
        }
        if let Some(v) = f.get("labels") {
            n.labels = v.labels()?;
        }
        if let Some(v) = f.get("attachable") {
            n.attachable = v.bool()?;
        }
        if let Some(v) = f.get("internal") {
            n.internal = v.bool()?;
        }
        if let Some(v) = f.get("ipam") {
            n.subnets = ipam(v)?;
        }
        out.insert(key.name.clone(), n);
    }
    Ok(out)
}

fn ipam(at: At<'_>) -> Result<Vec<String>> {
    let mut skipped = Vec::new();
    let f = at.fields(&["driver", "config", "options"], &[], &mut skipped)?;
    let mut subnets = Vec::new();
    if let Some(c) = f.get("config") {
        for (p, n) in c.items()? {
            let item = At::new(n, &p);
            let g = item.fields(
                &["subnet", "ip_range", "gateway", "aux_addresses"],
                &[],
                &mut skipped,
            )?;
            if let Some(s) = g.get("subnet") {
                subnets.push(s.string()?);
            }
        }
    }
    Ok(subnets)
}

pub fn volumes(at: At<'_>) -> Result<BTreeMap<String, Volume>> {
    const KEYS: &[&str] = &["name", "driver", "driver_opts", "external", "labels"];
    let mut out = BTreeMap::new();
    for (key, node) in at.entries()? {
        let path = join(at.path, &key.name);
        let at = At::new(node, &path);
        let mut v = Volume::default();
        let mut skipped = Vec::new();
        let f = at.fields(KEYS, &[], &mut skipped)?;
        if let Some(x) = f.get("name") {
            v.name = x.string()?;
        }
        if let Some(x) = f.get("external") {
            let (ext, name) = external(x)?;
            v.external = ext;
            if let Some(name) = name {
                v.name = name;
            }
        }
        if v.external && v.name.is_empty() {
            v.name = key.name.clone();
        }
        if let Some(x) = f.get("driver") {
            v.driver = x.string()?;
        }
        if let Some(x) = f.get("driver_opts") {
            v.driver_opts = x.labels()?;
        }
        if let Some(x) = f.get("labels") {
            v.labels = x.labels()?;
        }
        out.insert(key.name.clone(), v);
    }
    Ok(out)
}

/// Secrets or configs (`kind` names them in messages). Data comes from
/// `file:` (relative to the compose file that declares it),
/// `environment:` or `content:`.
pub fn file_objects(
    at: At<'_>,
    kind: &str,
    env: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, FileObject>> {
    const KEYS: &[&str] = &[
        "name",
        "file",
        "external",
        "labels",
        "environment",
        "content",
        "driver",
        "driver_opts",
        "template_driver",
    ];
    let mut out = BTreeMap::new();
    for (key, node) in at.entries()? {
        let path = join(at.path, &key.name);
        let at = At::new(node, &path);
        let mut o = FileObject::default();
        let mut skipped = Vec::new();
        let f = at.fields(KEYS, &[], &mut skipped)?;
        if let Some(x) = f.get("name") {
            o.name = x.string()?;
        }
        if let Some(x) = f.get("external") {
            let (ext, name) = external(x)?;
            o.external = ext;
            if let Some(name) = name {
                o.name = name;
            }
        }
        if o.external && o.name.is_empty() {
            o.name = key.name.clone();
        }
        if let Some(x) = f.get("labels") {
            o.labels = x.labels()?;
        }
        if let Some(x) = f.get("file") {
            let rel = x.string()?;
            let base = Path::new(&*x.node.file)
                .parent()
                .unwrap_or_else(|| Path::new("."));
            let file = base.join(&rel);
            let data = std::fs::read(&file)
                .map_err(|e| x.err(format!("cannot read {kind} file {}: {e}", file.display())))?;
            o.data = Some(data);
        } else if let Some(x) = f.get("environment") {
            let var = x.string()?;
            let value = env
                .get(&var)
                .ok_or_else(|| x.err(format!("environment variable {var} is not set")))?;
            o.data = Some(value.clone().into_bytes());
        } else if let Some(x) = f.get("content") {
            o.data = Some(x.scalar()?.into_bytes());
        }
        match (&o.data, o.external) {
            (None, false) => {
                return Err(at.err(format!(
                    "{kind} {:?} needs `file:`, `environment:` or `content:`, or `external: true`",
                    key.name
                )));
            }
            // The manager's limits (Docker's), refused here before any of
            // the stack is created.
            (Some(d), _) => {
                let limit = shoal_proto::limits::data_limit(kind);
                shoal_proto::limits::check_data_size(kind, d.len(), limit)
                    .map_err(|m| at.err(m))?;
            }
            _ => {}
        }
        out.insert(key.name.clone(), o);
    }
    Ok(out)
}
