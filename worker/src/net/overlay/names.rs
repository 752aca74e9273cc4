//! Names of the namespaces and interfaces one daemon creates. Several
//! daemons share a kernel in tests, so each name carries the daemon's
//! prefix; interface names stay within IFNAMSIZ (15 characters).

use super::super::NetError;

/// The bridge inside each network namespace (names there are private).
pub const BRIDGE: &str = "br0";
/// The sandbox's end of its link to the daemon's namespace.
pub const MESH_SANDBOX_IF: &str = "mesh0";
/// The pseudo task id the routing-mesh sandbox attaches as.
pub const SANDBOX_TASK: &str = "shoal-ingress-sandbox";

/// Checks a daemon prefix: short enough for interface names, and free of
/// the `-` that separates it from the rest of a name.
pub fn check_prefix(prefix: &str) -> Result<(), NetError> {
    let ok = (1..=6).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(NetError::BadPrefix(prefix.to_string()))
    }
}

/// What every namespace of this daemon starts with.
pub fn ns_prefix(prefix: &str) -> String {
    format!("{prefix}-")
}

/// What every network namespace of this daemon starts with.
pub fn network_ns_prefix(prefix: &str) -> String {
    format!("{prefix}-n-")
}

/// The namespace of a network: `<prefix>-n-<first 12 of the id>`.
pub fn network_ns(prefix: &str, network_id: &str) -> String {
    let short: String = network_id.chars().take(12).collect();
    format!("{}{short}", network_ns_prefix(prefix))
}

/// The routing-mesh sandbox's namespace.
pub fn sandbox_ns(prefix: &str) -> String {
    format!("{prefix}-sbox")
}

/// The VXLAN device: created in the daemon's namespace, where names are
/// shared, so it carries the prefix and the VNI (`v` + 6 + `.` + 6 hex;
/// the dot keeps prefix `ab` from claiming `abc`'s devices).
pub fn vxlan(prefix: &str, vni: u32) -> String {
    format!("v{prefix}.{vni:x}")
}

/// Whether a link in the daemon's namespace is one of our VXLAN devices.
pub fn is_vxlan(prefix: &str, name: &str) -> bool {
    name.starts_with(&format!("v{prefix}."))
}

/// The network-side end of a task's veth for its `n`th attachment:
/// `t` + a stable hash of the task id + `n`.
pub fn task_veth(task_id: &str, n: usize) -> String {
    format!("{}{n}", task_veth_prefix(task_id))
}

/// What every network-side veth of a task starts with.
pub fn task_veth_prefix(task_id: &str) -> String {
    format!("t{:08x}x", fnv1a(task_id))
}

/// Whether a link in a network namespace is a task's veth.
pub fn is_task_veth(name: &str) -> bool {
    name.len() > 10 && name.starts_with('t') && name.as_bytes()[9] == b'x'
}

/// The task-side name of its `n`th attachment.
pub fn task_if(n: usize) -> String {
    format!("eth{n}")
}

/// The daemon-side end of a task's egress link: `e` + the prefix + a
/// stable hash of the task id.
pub fn egress_veth(prefix: &str, task_id: &str) -> String {
    format!("e{prefix}{:08x}", fnv1a(task_id))
}

/// Whether a link in the daemon's namespace is one of our egress links.
pub fn is_egress_veth(prefix: &str, name: &str) -> bool {
    name.len() == 1 + prefix.len() + 8 && name.starts_with(&format!("e{prefix}"))
}

/// The daemon-side end of the link to the routing-mesh sandbox.
pub fn mesh_host_if(prefix: &str) -> String {
    format!("m{prefix}")
}

/// FNV-1a: stable across builds and restarts (std's hasher is not
/// promised to be), so a restarted daemon finds its interfaces.
fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_are_recognised() {
        check_prefix("abc123").unwrap();
        assert!(check_prefix("abc-1").is_err());
        assert!(check_prefix("abcdefg").is_err());
        assert!(vxlan("abc123", 0xff_ffff).len() <= 15);
        assert!(is_vxlan("abc123", &vxlan("abc123", 4097)));
        assert!(!is_vxlan("abc", &vxlan("abcd", 4097)));
        let veth = task_veth("a-very-long-task-identifier-0123456789", 12);
        assert!(veth.len() <= 15);
        assert!(is_task_veth(&veth));
        assert!(veth.starts_with(&task_veth_prefix("a-very-long-task-identifier-0123456789")));
        assert_ne!(task_veth("task-a", 0), task_veth("task-b", 0));
        assert!(!is_task_veth(BRIDGE));
        assert_eq!(network_ns("ab", "0123456789abcdef"), "ab-n-0123456789ab");
        let egress = egress_veth("abc123", "a-very-long-task-identifier");
        assert!(egress.len() <= 15 && is_egress_veth("abc123", &egress));
        assert!(!is_egress_veth("abc12", &egress));
    }
}
