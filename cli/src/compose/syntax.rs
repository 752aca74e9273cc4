//! The compose short syntaxes that live inside one string: a command line
//! (`sleep 1000`), a port (`127.0.0.1:8080-8081:80-81/udp`) and a volume
//! (`data:/var/lib:ro`). Each returns a plain message; callers add the
//! file, line and key.

use shoal_proto::objects::{PortConfig, port_config};

/// Splits a command as a POSIX shell would (quotes and backslashes), as
/// Docker does for `command: sleep 1000`.
pub fn shell_split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated single quote in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err(format!("unterminated double quote in {s:?}")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated double quote in {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

fn port_range(s: &str, whole: &str) -> Result<(u32, u32), String> {
    let bad = || format!("invalid port {whole:?}: expected e.g. 80, 8080:80, 8000-8001:80-81/udp");
    let num = |t: &str| -> Result<u32, String> {
        let n: u32 = t.parse().map_err(|_| bad())?;
        if n == 0 || n > 65535 {
            return Err(format!(
                "invalid port {whole:?}: {n} is not between 1 and 65535"
            ));
        }
        Ok(n)
    };
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let n = num(s)?;
            (n, n)
        }
    };
    if b < a {
        return Err(format!(
            "invalid port range {s:?} in {whole:?}: the end is before the start"
        ));
    }
    Ok((a, b))
}

pub fn protocol(p: &str) -> Result<port_config::Protocol, String> {
    match p {
        "tcp" => Ok(port_config::Protocol::Tcp),
        "udp" => Ok(port_config::Protocol::Udp),
        "sctp" => Ok(port_config::Protocol::Sctp),
        _ => Err(format!("invalid protocol {p:?}: expected tcp, udp or sctp")),
    }
}

/// The short port syntax; a range gives one config per port.
pub fn ports(s: &str) -> Result<Vec<PortConfig>, String> {
    let (spec, proto) = match s.rsplit_once('/') {
        Some((a, p)) => (a, protocol(p)?),
        None => (s, port_config::Protocol::Tcp),
    };
    let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
    // rsplitn yields target first; an IP (possibly IPv6 with colons) is last.
    let (published, target) = match parts.as_slice() {
        [target] => (None, *target),
        [target, published] | [target, published, _] => (Some(*published), *target),
        _ => return Err(format!("invalid port {s:?}")),
    };
    let (t0, t1) = port_range(target, s)?;
    let published = match published.filter(|p| !p.is_empty()) {
        Some(p) => Some(port_range(p, s)?),
        None => None,
    };
    let mut out = Vec::new();
    for (i, t) in (t0..=t1).enumerate() {
        let pub_port = match published {
            None => 0,
            Some((p0, p1)) => {
                if p1 - p0 != t1 - t0 && p0 != p1 {
                    return Err(format!(
                        "invalid port {s:?}: the published and target ranges differ in size"
                    ));
                }
                if p0 == p1 { p0 } else { p0 + i as u32 }
            }
        };
        out.push(PortConfig {
            protocol: proto as i32,
            target_port: t,
            published_port: pub_port,
            publish_mode: port_config::PublishMode::Ingress as i32,
            ..PortConfig::default()
        });
    }
    Ok(out)
}

/// The short volume syntax: (source, target, options); source empty for
/// an anonymous volume.
pub fn volume(s: &str) -> Result<(String, String, Vec<String>), String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (source, target, opts) = match parts.as_slice() {
        [t] => ("", *t, ""),
        [a, b] if b.starts_with('/') => (*a, *b, ""),
        [t, o] => ("", *t, *o),
        [a, b, o] => (*a, *b, *o),
        _ => {
            return Err(format!(
                "invalid volume {s:?}: expected SOURCE:TARGET[:MODE]"
            ));
        }
    };
    if !target.starts_with('/') {
        return Err(format!(
            "invalid volume {s:?}: the target {target:?} must be an absolute path"
        ));
    }
    let opts: Vec<String> = opts
        .split(',')
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .collect();
    for o in &opts {
        if !matches!(
            o.as_str(),
            "ro" | "rw"
                | "z"
                | "Z"
                | "nocopy"
                | "shared"
                | "rshared"
                | "slave"
                | "rslave"
                | "private"
                | "rprivate"
                | "consistent"
                | "cached"
                | "delegated"
        ) {
            return Err(format!("invalid volume {s:?}: unknown mode {o:?}"));
        }
    }
    Ok((source.to_string(), target.to_string(), opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split() {
        assert_eq!(shell_split("sleep 1000").unwrap(), ["sleep", "1000"]);
        assert_eq!(
            shell_split(r#"sh -c 'echo "hi there"' x\ y"#).unwrap(),
            ["sh", "-c", "echo \"hi there\"", "x y"]
        );
        assert!(shell_split("sh -c 'oops").is_err());
    }

    #[test]
    fn short_ports() {
        let p = ports("8080:80").unwrap();
        assert_eq!((p[0].published_port, p[0].target_port), (8080, 80));
        let p = ports("127.0.0.1:53:53/udp").unwrap();
        assert_eq!(p[0].protocol, port_config::Protocol::Udp as i32);
        assert_eq!(ports("8000-8002:80-82").unwrap().len(), 3);
        assert_eq!(ports("80").unwrap()[0].published_port, 0);
        assert!(ports("80x").is_err());
        assert!(ports("9000-8000:80-81").is_err());
        assert!(ports("70000:80").is_err());
    }

    #[test]
    fn short_volumes() {
        assert_eq!(
            volume("data:/var/lib/data:ro").unwrap(),
            ("data".into(), "/var/lib/data".into(), vec!["ro".into()])
        );
        assert_eq!(volume("/tmp").unwrap().0, "");
        assert!(volume("data:relative").is_err());
    }
}
