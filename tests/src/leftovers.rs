//! What a test's daemons leave outside their namespaces and state dirs
//! when they die with it: Docker containers (the machine's one dockerd
//! keeps them) and mounts under the run's dir (task tmpfs, network
//! namespace binds), which would keep the dir from being removed.

use std::path::Path;
use std::process::{Command, Stdio};

/// The label every Shoal container carries.
pub const LABEL_MANAGED: &str = "com.shoal.managed";
/// The label naming the node a container belongs to.
pub const LABEL_NODE_ID: &str = "com.docker.swarm.node.id";

/// Ids of the Shoal containers of node `node_id`, running or not.
pub fn containers_of(node_id: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--no-trunc", "--filter"])
        .arg(format!("label={LABEL_MANAGED}=true"))
        .arg("--filter")
        .arg(format!("label={LABEL_NODE_ID}={node_id}"))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// `docker rm -f` every Shoal container of these nodes (only theirs: other
/// runs and users share the dockerd).
pub fn remove_containers(node_ids: &[String]) {
    for node in node_ids {
        let ids = containers_of(node);
        if ids.is_empty() {
            continue;
        }
        let removed = Command::new("docker")
            .args(["rm", "-f", "-v"])
            .args(&ids)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
        if !removed.is_ok_and(|s| s.success()) {
            eprintln!("harness: could not remove containers {ids:?} of node {node}");
        }
    }
}

/// Lazily unmounts every mount at or below `dir`, deepest first.
pub fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let Ok(dir) = dir.canonicalize() else {
        return;
    };
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape)
        .filter(|p| Path::new(p).starts_with(&dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Mount points under `dir` now (the run's own view of /proc/self/mounts).
pub fn mounts_under(dir: &Path) -> Vec<(String, String)> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    info.lines()
        .filter_map(|line| {
            let point = unescape(line.split(' ').nth(4)?);
            // After the " - " separator: filesystem type, source, options.
            let fstype = line.split(" - ").nth(1)?.split(' ').next()?.to_string();
            Path::new(&point)
                .starts_with(&dir)
                .then_some((point, fstype))
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let mut out = Vec::with_capacity(field.len());
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Deletes the network namespaces a node's data plane made: `<prefix>-*`
/// in /run/netns, the prefix being the first six characters of its id.
pub fn remove_data_plane(node_ids: &[String]) {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    let prefixes: Vec<String> = node_ids
        .iter()
        .map(|id| {
            format!(
                "{}-",
                id.chars().take(6).collect::<String>().to_ascii_lowercase()
            )
        })
        .collect();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if prefixes.iter().any(|p| name.starts_with(p.as_str())) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &name])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn unescapes_like_the_kernel_escapes() {
        assert_eq!(super::unescape("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(super::unescape("/plain"), "/plain");
    }
}
