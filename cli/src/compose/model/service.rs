//! `services.NAME`: every key but `deploy` (see [`super::deploy`]).

use std::collections::BTreeMap;
use std::path::Path;

use shoal_proto::objects::{HealthConfig, Mount, PortConfig, mount, port_config};

use super::{FileRef, IGNORED_SERVICE_KEYS, Project, Service, deploy, runtime};
use crate::compose::errors::Result;
use crate::compose::read::At;
use crate::compose::syntax;
use crate::compose::yaml::{Value, join};

const KEYS: &[&str] = &[
    "image",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "labels",
    "ports",
    "networks",
    "volumes",
    "tmpfs",
    "secrets",
    "configs",
    "healthcheck",
    "stop_grace_period",
    "stop_signal",
    "user",
    "working_dir",
    "hostname",
    "init",
    "tty",
    "deploy",
];

/// Reads one service; returns it and the ignored keys it had.
pub fn read(
    name: &str,
    at: At<'_>,
    p: &Project,
    env: &BTreeMap<String, String>,
) -> Result<(Service, Vec<String>)> {
    let mut ignored = Vec::new();
    let known: Vec<&str> = KEYS.iter().chain(runtime::KEYS).copied().collect();
    let f = at.fields(&known, IGNORED_SERVICE_KEYS, &mut ignored)?;
    let text =
        |k: &str| -> Result<String> { f.get(k).map(|v| v.scalar()).unwrap_or(Ok(String::new())) };
    let image = match f.get("image") {
        Some(v) => v.string()?,
        None => return Err(at.err("an image is required (swarm cannot build images)")),
    };
    let mut s = Service {
        name: name.to_string(),
        image,
        command: f.get("command").map(command).transpose()?,
        entrypoint: f.get("entrypoint").map(command).transpose()?,
        env: environment(f.get("env_file"), f.get("environment"), env)?,
        labels: f
            .get("labels")
            .map(|v| v.labels())
            .transpose()?
            .unwrap_or_default(),
        ports: Vec::new(),
        networks: Vec::new(),
        mounts: Vec::new(),
        secrets: Vec::new(),
        configs: Vec::new(),
        healthcheck: f.get("healthcheck").map(healthcheck).transpose()?.flatten(),
        stop_grace_period: f
            .get("stop_grace_period")
            .map(|v| v.duration())
            .transpose()?,
        stop_signal: text("stop_signal")?,
        user: text("user")?,
        working_dir: text("working_dir")?,
        hostname: text("hostname")?,
        init: f
            .get("init")
            .map(|v| v.bool())
            .transpose()?
            .unwrap_or(false),
        tty: f.get("tty").map(|v| v.bool()).transpose()?.unwrap_or(false),
        cap_add: Vec::new(),
        cap_drop: Vec::new(),
        read_only: false,
        ulimits: Vec::new(),
        sysctls: BTreeMap::new(),
        extra_hosts: Vec::new(),
        logging: None,
        deploy: deploy::read(f.get("deploy"), &mut ignored)?,
    };
    runtime::read(&f, &mut s)?;
    if let Some(v) = f.get("ports") {
        for (path, n) in v.items()? {
            s.ports.extend(port(At::new(n, &path))?);
        }
    }
    if let Some(v) = f.get("networks") {
        s.networks = networks(v, p)?;
    }
    if let Some(v) = f.get("volumes") {
        for (path, n) in v.items()? {
            s.mounts.push(volume(At::new(n, &path), p)?);
        }
    }
    if let Some(v) = f.get("tmpfs") {
        for target in v.string_or_list()? {
            s.mounts.push(Mount {
                r#type: mount::Type::Tmpfs as i32,
                target,
                ..Mount::default()
            });
        }
    }
    if let Some(v) = f.get("secrets") {
        s.secrets = file_refs(v, "secret", |k| p.secrets.contains_key(k))?;
    }
    if let Some(v) = f.get("configs") {
        s.configs = file_refs(v, "config", |k| p.configs.contains_key(k))?;
    }
    Ok((s, ignored))
}

/// `command:`/`entrypoint:` as a string (split like a shell) or a list.
fn command(at: At<'_>) -> Result<Vec<String>> {
    match &at.node.value {
        Value::Str(s) => syntax::shell_split(s).map_err(|m| at.err(m)),
        Value::Seq(_) => at.strings(),
        Value::Null => Ok(Vec::new()),
        _ => Err(at.err(format!(
            "invalid type: {}, expected a string or a list of strings",
            at.node.value.describe()
        ))),
    }
}

/// `env_file` entries, then `environment`; bare `KEY`s take the shell's
/// value or are dropped, as in Docker. Sorted, so specs compare stably.
fn environment(
    files: Option<At<'_>>,
    environment: Option<At<'_>>,
    shell: &BTreeMap<String, String>,
) -> Result<Vec<String>> {
    let mut vars: BTreeMap<String, Option<String>> = BTreeMap::new();
    if let Some(files) = files {
        let base = Path::new(&*files.node.file)
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .to_path_buf();
        for name in files.string_or_list()? {
            let path = base.join(&name);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| files.err(format!("cannot read env file {}: {e}", path.display())))?;
            for (k, v) in crate::compose::load::parse_env_text(&text) {
                vars.insert(k, v);
            }
        }
    }
    if let Some(env) = environment {
        match &env.node.value {
            Value::Seq(_) | Value::Map(_) | Value::Null => vars.extend(env.dict()?),
            _ => {
                return Err(env.err(format!(
                    "invalid type: {}, expected a mapping or a list of KEY=VALUE strings",
                    env.node.value.describe()
                )));
            }
        }
    }
    Ok(vars
        .into_iter()
        .filter_map(|(k, v)| match v {
            Some(v) => Some(format!("{k}={v}")),
            None => shell.get(&k).map(|v| format!("{k}={v}")),
        })
        .collect())
}

fn healthcheck(at: At<'_>) -> Result<Option<HealthConfig>> {
    const KEYS: &[&str] = &[
        "test",
        "interval",
        "timeout",
        "retries",
        "start_period",
        "start_interval",
        "disable",
    ];
    let mut skipped = Vec::new();
    let f = at.fields(KEYS, &[], &mut skipped)?;
    let mut h = HealthConfig::default();
    if f.get("disable")
        .map(|v| v.bool())
        .transpose()?
        .unwrap_or(false)
    {
        h.test = vec!["NONE".into()];
        return Ok(Some(h));
    }
    if let Some(t) = f.get("test") {
        h.test = match &t.node.value {
            Value::Str(s) => vec!["CMD-SHELL".into(), s.clone()],
            _ => t.strings()?,
        };
        if let Some(first) = h.test.first()
            && !matches!(first.as_str(), "CMD" | "CMD-SHELL" | "NONE")
        {
            return Err(t.err(format!(
                "the first item must be CMD, CMD-SHELL or NONE, not {first:?}"
            )));
        }
    }
    h.interval = f.get("interval").map(|v| v.duration()).transpose()?;
    h.timeout = f.get("timeout").map(|v| v.duration()).transpose()?;
    h.start_period = f.get("start_period").map(|v| v.duration()).transpose()?;
    if let Some(r) = f.get("retries") {
        h.retries = r.u32()?;
    }
    Ok(Some(h))
}

fn port(at: At<'_>) -> Result<Vec<PortConfig>> {
    match &at.node.value {
        Value::Str(s) => syntax::ports(s).map_err(|m| at.err(m)),
        Value::Int(i) => syntax::ports(&i.to_string()).map_err(|m| at.err(m)),
        Value::Map(_) => {
            const KEYS: &[&str] = &[
                "target",
                "published",
                "protocol",
                "mode",
                "host_ip",
                "name",
                "app_protocol",
            ];
            let mut skipped = Vec::new();
            let f = at.fields(KEYS, &[], &mut skipped)?;
            let target = f
                .get("target")
                .ok_or_else(|| at.err("a long-syntax port needs `target`"))?;
            let mut p = PortConfig {
                target_port: target.u32()?,
                ..PortConfig::default()
            };
            if let Some(v) = f.get("published") {
                p.published_port = v.u32()?;
            }
            if p.target_port == 0 || p.target_port > 65535 || p.published_port > 65535 {
                return Err(at.err("ports must be between 1 and 65535"));
            }
            if let Some(v) = f.get("protocol") {
                p.protocol = syntax::protocol(&v.string()?).map_err(|m| v.err(m))? as i32;
            }
            if let Some(v) = f.get("mode") {
                p.publish_mode = match v.string()?.as_str() {
                    "ingress" => port_config::PublishMode::Ingress,
                    "host" => port_config::PublishMode::Host,
                    other => {
                        return Err(
                            v.err(format!("invalid mode {other:?}: expected ingress or host"))
                        );
                    }
                } as i32;
            }
            if let Some(v) = f.get("name") {
                p.name = v.string()?;
            }
            Ok(vec![p])
        }
        _ => Err(at.err(format!(
            "invalid type: {}, expected a port string or mapping",
            at.node.value.describe()
        ))),
    }
}

fn networks(at: At<'_>, p: &Project) -> Result<Vec<(String, Vec<String>)>> {
    let mut out = Vec::new();
    let check = |name: &str, line_at: At<'_>| {
        if name == "default" || p.networks.contains_key(name) {
            Ok(())
        } else {
            Err(line_at.err(format!(
                "undefined network {name:?}: declare it under the top-level networks"
            )))
        }
    };
    match &at.node.value {
        Value::Seq(_) => {
            for (path, n) in at.items()? {
                let item = At::new(n, &path);
                let name = item.string()?;
                check(&name, item)?;
                out.push((name, Vec::new()));
            }
        }
        _ => {
            for (k, v) in at.entries()? {
                let path = join(at.path, &k.name);
                let item = At::new(v, &path);
                check(&k.name, item)?;
                let mut aliases = Vec::new();
                if !item.is_null() {
                    let mut skipped = Vec::new();
                    let f = item.fields(
                        &[
                            "aliases",
                            "ipv4_address",
                            "ipv6_address",
                            "priority",
                            "driver_opts",
                        ],
                        &[],
                        &mut skipped,
                    )?;
                    if let Some(a) = f.get("aliases") {
                        aliases = a.strings()?;
                    }
                }
                out.push((k.name.clone(), aliases));
            }
        }
    }
    Ok(out)
}

fn volume(at: At<'_>, p: &Project) -> Result<Mount> {
    let base = Path::new(&*at.node.file)
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .to_path_buf();
    let mut m = Mount::default();
    let mut volume_section = false;
    let kind: String = match &at.node.value {
        Value::Str(s) => {
            let (source, target, opts) = syntax::volume(s).map_err(|m| at.err(m))?;
            m.source = source;
            m.target = target;
            m.read_only = opts.iter().any(|o| o == "ro");
            m.volume_nocopy = opts.iter().any(|o| o == "nocopy");
            if m.source.starts_with(['/', '.', '~']) {
                "bind"
            } else {
                "volume"
            }
            .into()
        }
        Value::Map(_) => {
            const KEYS: &[&str] = &[
                "type",
                "source",
                "target",
                "read_only",
                "bind",
                "volume",
                "tmpfs",
                "consistency",
            ];
            let mut skipped = Vec::new();
            let f = at.fields(KEYS, &[], &mut skipped)?;
            let kind = f
                .get("type")
                .map(|v| v.string())
                .transpose()?
                .unwrap_or_else(|| "volume".into());
            m.source = f
                .get("source")
                .map(|v| v.string())
                .transpose()?
                .unwrap_or_default();
            m.target = f
                .get("target")
                .ok_or_else(|| at.err("a long-syntax volume needs `target`"))?
                .string()?;
            m.read_only = f
                .get("read_only")
                .map(|v| v.bool())
                .transpose()?
                .unwrap_or(false);
            if let Some(v) = f.get("volume") {
                let g = v.fields(&["nocopy", "subpath"], &[], &mut skipped)?;
                if let Some(x) = g.get("nocopy") {
                    m.volume_nocopy = x.bool()?;
                }
                if let Some(x) = g.get("subpath") {
                    return Err(x.err("volume subpaths are not supported"));
                }
                volume_section = true;
            }
            if let Some(t) = f.get("tmpfs") {
                let g = t.fields(&["size", "mode"], &[], &mut skipped)?;
                if let Some(v) = g.get("size") {
                    m.tmpfs_size_bytes = v.bytes()?;
                }
                if let Some(v) = g.get("mode") {
                    m.tmpfs_mode = v.u32()?;
                }
            }
            kind
        }
        _ => {
            return Err(at.err(format!(
                "invalid type: {}, expected a volume string or mapping",
                at.node.value.describe()
            )));
        }
    };
    m.r#type = match kind.as_str() {
        "volume" => mount::Type::Volume,
        "bind" => mount::Type::Bind,
        "tmpfs" => mount::Type::Tmpfs,
        other => {
            return Err(at.err(format!(
                "invalid volume type {other:?}: expected volume, bind or tmpfs"
            )));
        }
    } as i32;
    if kind != "volume" && (volume_section || m.volume_nocopy) {
        return Err(at.err(format!("volume options are incompatible with type {kind}")));
    }
    if kind == "bind" && !m.source.starts_with('/') {
        m.source = base.join(&m.source).to_string_lossy().into_owned();
    }
    if kind == "volume" && !m.source.is_empty() && !p.volumes.contains_key(&m.source) {
        return Err(at.err(format!(
            "undefined volume {:?}: declare it under the top-level volumes",
            m.source
        )));
    }
    Ok(m)
}

fn file_refs(at: At<'_>, kind: &str, declared: impl Fn(&str) -> bool) -> Result<Vec<FileRef>> {
    let mut out = Vec::new();
    for (path, n) in at.items()? {
        let item = At::new(n, &path);
        let mut r = FileRef {
            source: String::new(),
            target: String::new(),
            uid: 0,
            gid: 0,
            mode: 0o444,
        };
        match &n.value {
            Value::Map(_) => {
                let mut skipped = Vec::new();
                let f = item.fields(
                    &["source", "target", "uid", "gid", "mode"],
                    &[],
                    &mut skipped,
                )?;
                r.source = f
                    .get("source")
                    .ok_or_else(|| item.err(format!("a long-syntax {kind} needs `source`")))?
                    .string()?;
                if let Some(v) = f.get("target") {
                    r.target = v.string()?;
                }
                if let Some(v) = f.get("uid") {
                    r.uid = v.u32()?;
                }
                if let Some(v) = f.get("gid") {
                    r.gid = v.u32()?;
                }
                if let Some(v) = f.get("mode") {
                    r.mode = v.u32()?;
                }
            }
            _ => r.source = item.string()?,
        }
        if !declared(&r.source) {
            return Err(item.err(format!(
                "undefined {kind} {:?}: declare it under the top-level {kind}s",
                r.source
            )));
        }
        out.push(r);
    }
    Ok(out)
}
