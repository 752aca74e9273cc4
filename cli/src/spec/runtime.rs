//! The container's runtime keys: ulimits, sysctls, extra hosts and
//! capabilities, with the checks the compose loader applies to its own
//! forms of them.

use shoal_proto::objects::Ulimit;

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
