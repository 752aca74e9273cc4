//! The values of `service create|update` flags, as Docker's CLI reads them:
//! durations (`1m30s`), sizes (`512M`), CPUs (`0.5`), ports, mounts,
//! secret/config references, ulimits, sysctls, hosts and capabilities.
//! Each parser is a clap value parser, so a bad value fails before the
//! daemon is contacted, naming what was expected. The compose loader
//! checks the same keys with the same rules.

use prost_types::Duration;
use shoal_proto::objects::{Mount, PortConfig, Ulimit, mount, port_config};

/// A Go duration (`300ms`, `10s`, `1m30s`, `1h`, `1.5s`); a bare `0` too.
pub fn duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}: expected e.g. 500ms, 10s, 1m30s or 2h");
    if s == "0" {
        return Ok(Duration::default());
    }
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        nanos += value * scale;
        rest = &rest[unit_len..];
    }
    let nanos = nanos.round() as i64;
    Ok(Duration {
        seconds: nanos / 1_000_000_000,
        nanos: (nanos % 1_000_000_000) as i32,
    })
}

/// Nanoseconds of a duration, as Docker's JSON shows them (saturating: a
/// spec stored before the manager bounded durations still prints).
pub fn nanos(d: &Duration) -> i64 {
    d.seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(d.nanos))
}

/// A size in bytes (`512M`, `1g`, `1.5GiB`, `1024`), in Docker's binary units.
pub fn memory(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid size {s:?}: expected e.g. 512M, 1g or 1048576");
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let value: f64 = t[..split].parse().map_err(|_| bad())?;
    let unit = t[split..].trim();
    let unit = unit.strip_suffix("ib").or_else(|| unit.strip_suffix('b'));
    let scale: f64 = match unit.unwrap_or(&t[split..]).trim() {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        _ => return Err(bad()),
    };
    if value < 0.0 {
        return Err(bad());
    }
    Ok((value * scale) as i64)
}

/// CPUs as a decimal (`0.5`, `2`) → nano CPUs.
pub fn cpus(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid CPU count {s:?}: expected a number such as 0.5 or 2");
    let v: f64 = s.trim().parse().map_err(|_| bad())?;
    if !v.is_finite() || v < 0.0 {
        return Err(bad());
    }
    Ok((v * 1e9).round() as i64)
}

/// `KEY=VALUE` of a label-like flag; the key must not be empty.
pub fn key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').unwrap_or((s, ""));
    if k.trim().is_empty() {
        return Err(format!("invalid value {s:?}: the key is empty"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// A published port: `8080:80`, `8080:80/udp`, `80` (published port
/// picked by the cluster), or the long form
/// `mode=host,target=80,published=8080,protocol=udp`.
pub fn port(s: &str) -> Result<PortConfig, String> {
    let mut p = PortConfig::default();
    if s.contains('=') {
        for field in s.split(',') {
            let (k, v) = field.split_once('=').ok_or_else(|| {
                format!("invalid field {field:?} in --publish {s:?}: expected key=value")
            })?;
            match k.trim().to_ascii_lowercase().as_str() {
                "mode" => p.set_publish_mode(publish_mode(v)?),
                "target" => p.target_port = port_number(v)?,
                "published" => p.published_port = port_number(v)?,
                "protocol" => p.set_protocol(protocol(v)?),
                "name" => p.name = v.to_string(),
                other => {
                    return Err(format!(
                        "invalid field {other:?} in --publish {s:?}: use mode, target, published or protocol"
                    ));
                }
            }
        }
        if p.target_port == 0 {
            return Err(format!("invalid --publish {s:?}: target is required"));
        }
        return Ok(p);
    }
    let (ports, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    p.set_protocol(protocol(proto)?);
    match ports.split_once(':') {
        Some((published, target)) => {
            p.published_port = port_number(published)?;
            p.target_port = port_number(target)?;
        }
        None => p.target_port = port_number(ports)?,
    }
    if p.target_port == 0 {
        return Err(format!(
            "invalid --publish {s:?}: the target port must not be 0"
        ));
    }
    Ok(p)
}

fn port_number(v: &str) -> Result<u32, String> {
    v.trim()
        .parse::<u16>()
        .map(u32::from)
        .map_err(|_| format!("invalid port {v:?}: expected 0-65535"))
}

fn protocol(v: &str) -> Result<port_config::Protocol, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "tcp" => Ok(port_config::Protocol::Tcp),
        "udp" => Ok(port_config::Protocol::Udp),
        "sctp" => Ok(port_config::Protocol::Sctp),
        _ => Err(format!("invalid protocol {v:?}: expected tcp, udp or sctp")),
    }
}

fn publish_mode(v: &str) -> Result<port_config::PublishMode, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "ingress" => Ok(port_config::PublishMode::Ingress),
        "host" => Ok(port_config::PublishMode::Host),
        _ => Err(format!(
            "invalid publish mode {v:?}: expected ingress or host"
        )),
    }
}

/// The key a published port is known by in `--publish-rm`: `80/tcp`.
pub fn port_key(p: &PortConfig) -> (u32, i32) {
    (p.target_port, p.protocol)
}

/// `--publish-rm` value: `80`, `80/udp`, or a full `--publish` form.
pub fn port_rm(s: &str) -> Result<(u32, i32), String> {
    if s.contains('=') || s.contains(':') {
        return port(s).map(|p| port_key(&p));
    }
    let (target, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    Ok((port_number(target)?, protocol(proto)? as i32))
}

/// `type=volume|bind|tmpfs,source=..,target=..,readonly`; `src`, `dst`,
/// `destination`, `ro` as Docker also accepts, and a named volume's
/// `volume-label=K=V`, `volume-driver=`, `volume-opt=K=V`, `volume-nocopy`.
/// Fields are CSV, as Docker's: `"volume-opt=o=addr=10.0.0.1,rw"` in
/// double quotes keeps its comma.
pub fn mount(s: &str) -> Result<Mount, String> {
    let mut m = Mount::default();
    let mut volume_field = None;
    for field in csv_fields(s)?.iter().filter(|f| !f.is_empty()) {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        let key = k.trim().to_ascii_lowercase();
        if key.starts_with("volume-") {
            volume_field = Some(key.clone());
        }
        match key.as_str() {
            "type" => m.set_type(match v {
                "volume" => mount::Type::Volume,
                "bind" => mount::Type::Bind,
                "tmpfs" => mount::Type::Tmpfs,
                _ => {
                    return Err(format!(
                        "invalid mount type {v:?}: expected volume, bind or tmpfs"
                    ));
                }
            }),
            "source" | "src" => m.source = v.to_string(),
            "target" | "dst" | "destination" => m.target = v.to_string(),
            "readonly" | "ro" => {
                m.read_only = boolean(v).map_err(|e| format!("{e} in --mount {s:?}"))?
            }
            "tmpfs-size" => m.tmpfs_size_bytes = memory(v)?,
            "tmpfs-mode" => {
                m.tmpfs_mode = u32::from_str_radix(v, 8)
                    .map_err(|_| format!("invalid tmpfs-mode {v:?}: expected octal, e.g. 1777"))?
            }
            "volume-label" | "volume-opt" => {
                let (name, value) = v.split_once('=').unwrap_or((v, ""));
                if name.is_empty() {
                    return Err(format!(
                        "invalid {key} {v:?} in --mount {s:?}: expected {key}=KEY=VALUE"
                    ));
                }
                let map = match key.as_str() {
                    "volume-label" => &mut m.volume_labels,
                    _ => &mut m.volume_options,
                };
                map.insert(name.to_string(), value.to_string());
            }
            "volume-driver" => m.volume_driver = v.to_string(),
            "volume-nocopy" => {
                m.volume_nocopy = boolean(v).map_err(|e| format!("{e} in --mount {s:?}"))?
            }
            other => {
                return Err(format!(
                    "invalid field {other:?} in --mount {s:?}: use type, source, target, readonly, \
                     tmpfs-size, tmpfs-mode, volume-label, volume-driver, volume-opt or volume-nocopy"
                ));
            }
        }
    }
    if m.target.is_empty() {
        return Err(format!("invalid --mount {s:?}: target is required"));
    }
    if m.r#type() == mount::Type::Bind && m.source.is_empty() {
        return Err(format!(
            "invalid --mount {s:?}: a bind mount needs a source"
        ));
    }
    if m.r#type() == mount::Type::Tmpfs && !m.source.is_empty() {
        return Err(format!(
            "invalid --mount {s:?}: a tmpfs mount takes no source"
        ));
    }
    if let Some(field) = volume_field
        && m.r#type() != mount::Type::Volume
    {
        let kind = if m.r#type() == mount::Type::Bind {
            "bind"
        } else {
            "tmpfs"
        };
        return Err(format!(
            "invalid --mount {s:?}: cannot mix {field:?} with mount type {kind:?}"
        ));
    }
    Ok(m)
}

/// The fields of a CSV line, as Go's `encoding/csv` reads Docker's
/// `--mount`: commas split, double quotes group, `""` is a quote.
fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let field = fields.last_mut().expect("never empty");
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => field.push(c),
        }
    }
    if quoted {
        return Err(format!("invalid --mount {s:?}: unterminated quote"));
    }
    Ok(fields)
}

/// Go's `strconv.ParseBool`, with a bare flag meaning true.
pub fn boolean(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "" | "1" | "t" | "true" => Ok(true),
        "0" | "f" | "false" => Ok(false),
        _ => Err(format!("invalid boolean {v:?}: expected true or false")),
    }
}

/// A `--secret` / `--config` before its name is resolved to an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// The secret's or config's name (or id).
    pub source: String,
    /// The file name in the task; empty for the default.
    pub target: String,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// `NAME`, or `source=NAME,target=PATH,uid=0,gid=0,mode=0400`.
pub fn file_ref(s: &str) -> Result<FileRef, String> {
    let mut r = FileRef {
        source: String::new(),
        target: String::new(),
        uid: 0,
        gid: 0,
        mode: 0o444,
    };
    if !s.contains('=') {
        r.source = s.to_string();
    } else {
        for field in s.split(',') {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| format!("invalid field {field:?} in {s:?}: expected key=value"))?;
            let number = |what: &str| {
                v.parse::<u32>()
                    .map_err(|_| format!("invalid {what} {v:?}: expected a number"))
            };
            match k.trim().to_ascii_lowercase().as_str() {
                "source" | "src" => r.source = v.to_string(),
                "target" => r.target = v.to_string(),
                "uid" => r.uid = number("uid")?,
                "gid" => r.gid = number("gid")?,
                "mode" => {
                    r.mode = u32::from_str_radix(v, 8)
                        .map_err(|_| format!("invalid mode {v:?}: expected octal, e.g. 0400"))?
                }
                other => {
                    return Err(format!(
                        "invalid field {other:?} in {s:?}: use source, target, uid, gid or mode"
                    ));
                }
            }
        }
    }
    if r.source.is_empty() {
        return Err(format!("invalid reference {s:?}: source is required"));
    }
    Ok(r)
}

/// The resources `--ulimit` may name, as Docker's (go-units) knows them.
pub const ULIMIT_NAMES: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// `nofile=1024:2048` (`NAME=SOFT[:HARD]`; a single value is both, `-1`
/// is unlimited), as `docker service create --ulimit` reads it.
pub fn ulimit(s: &str) -> Result<Ulimit, String> {
    let (name, limits) = s.split_once('=').ok_or_else(|| {
        format!("invalid ulimit {s:?}: expected NAME=SOFT[:HARD], e.g. nofile=1024:2048")
    })?;
    let number = |v: &str| {
        v.trim()
            .parse::<i64>()
            .map_err(|_| format!("invalid ulimit {s:?}: {v:?} is not a number"))
    };
    let (soft, hard) = match limits.split(':').collect::<Vec<_>>().as_slice() {
        [soft] => (number(soft)?, number(soft)?),
        [soft, hard] => (number(soft)?, number(hard)?),
        _ => {
            return Err(format!(
                "invalid ulimit {s:?}: expected at most two values, SOFT[:HARD]"
            ));
        }
    };
    let u = Ulimit {
        name: name.to_string(),
        soft,
        hard,
    };
    check_ulimit(&u).map_err(|e| format!("invalid ulimit {s:?}: {e}"))?;
    Ok(u)
}

/// A known name, and a soft limit within the hard one (`-1`: unlimited).
pub fn check_ulimit(u: &Ulimit) -> Result<(), String> {
    if !ULIMIT_NAMES.contains(&u.name.as_str()) {
        return Err(format!(
            "unknown ulimit {:?}: expected one of {}",
            u.name,
            ULIMIT_NAMES.join(", ")
        ));
    }
    if u.hard != -1 && (u.soft > u.hard || u.soft == -1) {
        return Err(format!(
            "the soft limit must not exceed the hard limit: {} > {}",
            u.soft, u.hard
        ));
    }
    Ok(())
}

/// The key of a `--*-rm` value: `nofile` of `nofile` or `nofile=1024`,
/// as Docker reads them.
pub fn key_of(s: &str) -> &str {
    s.split_once('=').map_or(s, |(k, _)| k)
}

/// `KEY=VALUE` of `--sysctl`: a dotted kernel parameter and its value.
pub fn sysctl(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| {
        format!("invalid sysctl {s:?}: expected KEY=VALUE, e.g. net.core.somaxconn=1024")
    })?;
    check_sysctl(k, v).map_err(|e| format!("invalid sysctl {s:?}: {e}"))?;
    Ok((k.to_string(), v.to_string()))
}

/// A sysctl key is a `/proc/sys` path in dots (`net.ipv4.ip_forward`),
/// and its value is not empty.
pub fn check_sysctl(k: &str, v: &str) -> Result<(), String> {
    let key_ok = !k.is_empty()
        && k.split(['.', '/']).all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
        });
    if !key_ok {
        return Err(format!(
            "{k:?} is not a kernel parameter name such as net.core.somaxconn"
        ));
    }
    if v.trim().is_empty() {
        return Err(format!("{k} has no value"));
    }
    Ok(())
}

/// `--host name:ip` (or `name=ip`; the address may be `[v6]` or
/// `host-gateway`) as Swarm keeps it: `ip name`.
pub fn host(s: &str) -> Result<String, String> {
    let (name, ip) = s
        .split_once('=')
        .or_else(|| s.split_once(':'))
        .ok_or_else(|| format!("invalid host {s:?}: expected HOST:IP, e.g. db.local:10.0.0.5"))?;
    if name.is_empty() || name.contains(':') || name.contains(char::is_whitespace) {
        return Err(format!(
            "invalid host {s:?}: {name:?} is not a host name (expected HOST:IP)"
        ));
    }
    let ip = ip
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(ip);
    if ip != "host-gateway" && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(format!(
            "invalid host {s:?}: {ip:?} is not an IP address (expected HOST:IP)"
        ));
    }
    Ok(format!("{ip} {name}"))
}

/// A capability as Docker normalizes it: upper case, `CAP_` prefixed;
/// `ALL` and `RESET` (update only) as they are.
pub fn capability(s: &str) -> Result<String, String> {
    let c = s.trim().to_ascii_uppercase();
    if c.is_empty() || !c.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "invalid capability {s:?}: expected a name such as NET_ADMIN, CAP_SYS_TIME or ALL"
        ));
    }
    if c == CAP_ALL || c == CAP_RESET || c.starts_with("CAP_") {
        return Ok(c);
    }
    Ok(format!("CAP_{c}"))
}

/// Every capability, in `--cap-add` / `--cap-drop`.
pub const CAP_ALL: &str = "ALL";
/// `service update --cap-add RESET`: forget the added (dropped) ones first.
pub const CAP_RESET: &str = "RESET";

/// Docker's effective add and drop lists: normalized, sorted, each once;
/// `ALL` in a list stands alone; a capability both added and dropped is
/// added.
pub fn effective_caps(add: &[String], drop: &[String]) -> (Vec<String>, Vec<String>) {
    let set = |list: &[String]| -> std::collections::BTreeSet<String> {
        let all: std::collections::BTreeSet<String> = list
            .iter()
            .map(|c| capability(c).unwrap_or_else(|_| c.clone()))
            .collect();
        if all.contains(CAP_ALL) {
            [CAP_ALL.to_string()].into()
        } else {
            all
        }
    };
    let add = set(add);
    let drop = set(drop);
    let drop = drop.difference(&add).cloned().collect();
    (add.into_iter().collect(), drop)
}

/// `--limit-pids`: 0 (the engine's default, unlimited) or more.
pub fn pids(s: &str) -> Result<i64, String> {
    s.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| format!("invalid pids limit {s:?}: expected 0 (unlimited) or more"))
}
