//! `services.NAME` keys of the container's runtime: `cap_add`, `cap_drop`,
//! `read_only`, `ulimits`, `sysctls`, `extra_hosts` and `logging`, checked
//! with the rules of `service create`'s flags so a bad value is the same
//! error in both, located here by file, line and key.

use std::collections::BTreeMap;

use shoal_proto::objects::{LogDriver, Ulimit};

use super::Service;
use crate::compose::errors::Result;
use crate::compose::read::{At, Fields};
use crate::compose::yaml::{Value, join};
use crate::spec;

/// The keys this module reads.
pub const KEYS: &[&str] = &[
    "cap_add",
    "cap_drop",
    "read_only",
    "ulimits",
    "sysctls",
    "extra_hosts",
    "logging",
];

/// Reads the runtime keys present in `f` into `s`.
pub fn read(f: &Fields<'_>, s: &mut Service) -> Result<()> {
    if let Some(v) = f.get("cap_add") {
        s.cap_add = capabilities(v)?;
    }
    if let Some(v) = f.get("cap_drop") {
        s.cap_drop = capabilities(v)?;
    }
    if let Some(v) = f.get("read_only") {
        s.read_only = v.bool()?;
    }
    if let Some(v) = f.get("ulimits") {
        s.ulimits = ulimits(v)?;
    }
    if let Some(v) = f.get("sysctls") {
        s.sysctls = sysctls(v)?;
    }
    if let Some(v) = f.get("extra_hosts") {
        s.extra_hosts = extra_hosts(v)?;
    }
    if let Some(v) = f.get("logging") {
        s.logging = Some(logging(v)?);
    }
    Ok(())
}

/// A list of capability names, normalized as Docker's (`CAP_` prefixed).
fn capabilities(at: At<'_>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (path, n) in at.items()? {
        let item = At::new(n, &path);
        let c = spec::capability(&item.string()?).map_err(|m| item.err(m))?;
        if c == spec::CAP_RESET {
            return Err(item.err("RESET is for `service update --cap-add`, not a capability"));
        }
        out.push(c);
    }
    Ok(out)
}

/// `nproc: 65535` (soft and hard) or `nofile: {soft: 20000, hard: 40000}`.
fn ulimits(at: At<'_>) -> Result<Vec<Ulimit>> {
    let mut out = BTreeMap::new();
    for (key, node) in at.entries()? {
        let path = join(at.path, &key.name);
        let item = At::new(node, &path);
        let (soft, hard) = match &node.value {
            Value::Map(_) => {
                let mut skipped = Vec::new();
                let f = item.fields(&["soft", "hard"], &[], &mut skipped)?;
                let (Some(soft), Some(hard)) = (f.get("soft"), f.get("hard")) else {
                    return Err(item.err("a ulimit mapping needs both `soft` and `hard`"));
                };
                (soft.int()?, hard.int()?)
            }
            _ => {
                let n = item.int()?;
                (n, n)
            }
        };
        let u = Ulimit {
            name: key.name.clone(),
            soft,
            hard,
        };
        spec::check_ulimit(&u).map_err(|m| item.err_key(key, m))?;
        out.insert(u.name.clone(), u);
    }
    Ok(out.into_values().collect())
}

/// `net.core.somaxconn: 1024` or `["net.core.somaxconn=1024"]`.
fn sysctls(at: At<'_>) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    match &at.node.value {
        Value::Seq(_) => {
            for (path, n) in at.items()? {
                let item = At::new(n, &path);
                let (k, v) = spec::sysctl(&item.scalar()?).map_err(|m| item.err(m))?;
                out.insert(k, v);
            }
        }
        Value::Map(_) | Value::Null => {
            for (key, node) in at.entries()? {
                let path = join(at.path, &key.name);
                let item = At::new(node, &path);
                let v = item.scalar()?;
                spec::check_sysctl(&key.name, &v).map_err(|m| item.err_key(key, m))?;
                out.insert(key.name.clone(), v);
            }
        }
        other => {
            return Err(at.err(format!(
                "invalid type: {}, expected a mapping or a list of KEY=VALUE strings",
                other.describe()
            )));
        }
    }
    Ok(out)
}

/// `["db:10.0.0.5", "db6=::1"]` or `{db: 10.0.0.5, db6: ["::1"]}`, as
/// Swarm's `IP name` entries.
fn extra_hosts(at: At<'_>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    match &at.node.value {
        Value::Seq(_) => {
            for (path, n) in at.items()? {
                let item = At::new(n, &path);
                out.push(spec::host(&item.string()?).map_err(|m| item.err(m))?);
            }
        }
        Value::Map(_) | Value::Null => {
            for (key, node) in at.entries()? {
                let path = join(at.path, &key.name);
                let item = At::new(node, &path);
                for ip in item.string_or_list()? {
                    let entry = format!("{}={ip}", key.name);
                    out.push(spec::host(&entry).map_err(|m| item.err(m))?);
                }
            }
        }
        other => {
            return Err(at.err(format!(
                "invalid type: {}, expected a list of HOST:IP strings or a mapping",
                other.describe()
            )));
        }
    }
    Ok(out)
}

/// `logging: {driver: json-file, options: {max-size: 10m}}`; options
/// without a driver apply to the engine's default one, as in Docker.
fn logging(at: At<'_>) -> Result<LogDriver> {
    let mut skipped = Vec::new();
    let f = at.fields(&["driver", "options"], &[], &mut skipped)?;
    Ok(LogDriver {
        name: f
            .get("driver")
            .map(|v| v.string())
            .transpose()?
            .unwrap_or_default(),
        options: f
            .get("options")
            .map(|v| v.labels())
            .transpose()?
            .unwrap_or_default()
            .into_iter()
            .collect(),
    })
}
