//! The values of `service create|update` flags, as Docker's CLI reads them:
//! durations (`1m30s`), sizes (`512M`), CPUs (`0.5`), ports, mounts, and
//! secret/config references. Each parser is a clap value parser, so a bad
//! value fails before the daemon is contacted, naming what was expected.

use prost_types::Duration;
use shoal_proto::objects::{Mount, PortConfig, mount, port_config};

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

/// Nanoseconds of a duration, as Docker's JSON shows them.
pub fn nanos(d: &Duration) -> i64 {
    d.seconds * 1_000_000_000 + i64::from(d.nanos)
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
/// `destination`, `ro` as Docker also accepts.
pub fn mount(s: &str) -> Result<Mount, String> {
    let mut m = Mount::default();
    for field in s.split(',').filter(|f| !f.is_empty()) {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        match k.trim().to_ascii_lowercase().as_str() {
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
            other => {
                return Err(format!(
                    "invalid field {other:?} in --mount {s:?}: use type, source, target or readonly"
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
    Ok(m)
}

/// Go's `strconv.ParseBool`, with a bare flag meaning true.
fn boolean(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "" | "1" | "t" | "true" => Ok(true),
        "0" | "f" | "false" => Ok(false),
        _ => Err(format!("invalid boolean {v:?}")),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> f64 {
        let d = duration(s).unwrap();
        d.seconds as f64 + f64::from(d.nanos) / 1e9
    }

    #[test]
    fn durations_like_go() {
        assert_eq!(secs("10s"), 10.0);
        assert_eq!(secs("1m30s"), 90.0);
        assert_eq!(secs("500ms"), 0.5);
        assert_eq!(secs("1.5s"), 1.5);
        assert_eq!(secs("2h"), 7200.0);
        assert_eq!(secs("0"), 0.0);
        for bad in ["", "10", "ten", "5x", "s"] {
            let err = duration(bad).unwrap_err();
            assert!(err.contains("invalid duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn sizes_and_cpus() {
        assert_eq!(memory("512M"), Ok(512 << 20));
        assert_eq!(memory("1g"), Ok(1 << 30));
        assert_eq!(memory("1GiB"), Ok(1 << 30));
        assert_eq!(memory("64kb"), Ok(64 << 10));
        assert_eq!(memory("1024"), Ok(1024));
        assert!(memory("lots").unwrap_err().contains("invalid size"));
        assert_eq!(cpus("0.5"), Ok(500_000_000));
        assert_eq!(cpus("2"), Ok(2_000_000_000));
        assert!(cpus("-1").is_err() && cpus("half").is_err());
    }

    #[test]
    fn ports_short_and_long() {
        let p = port("8080:80").unwrap();
        assert_eq!((p.published_port, p.target_port), (8080, 80));
        assert_eq!(p.protocol(), port_config::Protocol::Tcp);
        assert_eq!(p.publish_mode(), port_config::PublishMode::Ingress);
        let p = port("53:53/udp").unwrap();
        assert_eq!(p.protocol(), port_config::Protocol::Udp);
        let p = port("80").unwrap();
        assert_eq!((p.published_port, p.target_port), (0, 80));
        let p = port("mode=host,target=80,published=8080,protocol=udp").unwrap();
        assert_eq!(p.publish_mode(), port_config::PublishMode::Host);
        assert_eq!((p.published_port, p.target_port), (8080, 80));
        assert!(port("99999:80").unwrap_err().contains("invalid port"));
        assert!(port("80/icmp").unwrap_err().contains("invalid protocol"));
        assert!(
            port("published=80")
                .unwrap_err()
                .contains("target is required")
        );
        assert!(
            port("mode=bridge,target=1")
                .unwrap_err()
                .contains("publish mode")
        );
        assert_eq!(port_rm("80"), Ok((80, 0)));
        assert_eq!(port_rm("53/udp"), Ok((53, 1)));
        assert_eq!(port_rm("8080:80"), Ok((80, 0)));
    }

    #[test]
    fn mounts() {
        let m = mount("type=bind,source=/data,target=/srv,readonly").unwrap();
        assert_eq!(m.r#type(), mount::Type::Bind);
        assert_eq!(
            (m.source.as_str(), m.target.as_str(), m.read_only),
            ("/data", "/srv", true)
        );
        let m = mount("source=vol,target=/v").unwrap();
        assert_eq!(m.r#type(), mount::Type::Volume);
        assert!(!m.read_only);
        let m = mount("type=tmpfs,dst=/tmp,tmpfs-size=64M").unwrap();
        assert_eq!(m.tmpfs_size_bytes, 64 << 20);
        assert!(
            mount("type=nfs,target=/x")
                .unwrap_err()
                .contains("mount type")
        );
        assert!(
            mount("source=x")
                .unwrap_err()
                .contains("target is required")
        );
        assert!(
            mount("type=bind,target=/x")
                .unwrap_err()
                .contains("needs a source")
        );
        assert!(
            mount("target=/x,colour=red")
                .unwrap_err()
                .contains("colour")
        );
        assert!(
            mount("target=/x,readonly=maybe")
                .unwrap_err()
                .contains("boolean")
        );
    }

    #[test]
    fn file_refs() {
        let r = file_ref("db_pass").unwrap();
        assert_eq!(
            (r.source.as_str(), r.target.as_str(), r.mode),
            ("db_pass", "", 0o444)
        );
        let r = file_ref("source=db,target=pw,uid=1000,gid=10,mode=0400").unwrap();
        assert_eq!((r.uid, r.gid, r.mode), (1000, 10, 0o400));
        assert_eq!(r.target, "pw");
        assert!(
            file_ref("target=x")
                .unwrap_err()
                .contains("source is required")
        );
        assert!(file_ref("source=a,mode=999").unwrap_err().contains("octal"));
        assert!(file_ref("source=a,uid=me").unwrap_err().contains("uid"));
    }

    #[test]
    fn key_values() {
        assert_eq!(key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(key_value("a"), Ok(("a".into(), "".into())));
        assert!(key_value("=x").is_err());
    }
}
