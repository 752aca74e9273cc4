//! Published ports: `--publish` (short and long forms) and the keys
//! `--publish-rm` removes them by.

use shoal_proto::objects::{PortConfig, port_config};

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
