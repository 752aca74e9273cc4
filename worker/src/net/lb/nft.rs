//! The nftables backend: one table `ip shoal` per namespace, replaced
//! whole and atomically on every sync (`nft -f` runs a script as one
//! transaction: declare, delete, redefine).
//!
//! Balancing is `dnat to numgen random mod N map { 0 : a, 1 : b, ... }`;
//! conntrack keeps an established connection on its backend, so a task
//! leaving the map only stops getting new connections.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};

use super::plan::{MeshPlan, NodePlan, SANDBOX_LINK_ADDR, VipPlan};
use super::{LbError, LoadBalancer};
use crate::net::nsenter;
use crate::net::overlay::EGRESS_POOL;

/// The table every rule of ours lives in.
pub const TABLE: &str = "shoal";

/// nftables DNAT balancing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Nftables;

impl LoadBalancer for Nftables {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn sync_task(&self, netns: &Path, plan: &VipPlan) -> Result<(), LbError> {
        apply(netns, &task_rules(plan))
    }

    fn sync_sandbox(&self, netns: &Path, plan: &MeshPlan) -> Result<(), LbError> {
        forwarding(netns)?;
        apply(netns, &sandbox_rules(plan))
    }

    fn sync_node(&self, netns: &Path, plan: &NodePlan) -> Result<(), LbError> {
        forwarding(netns)?;
        apply(netns, &node_rules(plan))
    }

    fn clear(&self, netns: &Path) -> Result<(), LbError> {
        apply(
            netns,
            &format!("table ip {TABLE}\ndelete table ip {TABLE}\n"),
        )
    }
}

/// Routed namespaces (the node, the sandbox) must forward.
pub(super) fn forwarding(netns: &Path) -> Result<(), LbError> {
    nsenter::sysctl(netns, "net.ipv4.ip_forward", "1").map_err(|source| LbError::Sysctl {
        netns: netns.display().to_string(),
        source,
    })
}

/// Runs `script` with `nft -f -` inside `netns`.
pub fn apply(netns: &Path, script: &str) -> Result<(), LbError> {
    let ns = netns.display().to_string();
    let input = script.to_string();
    let out = nsenter::in_netns(netns, move || {
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes())?;
        }
        child.wait_with_output()
    })
    .map_err(|source| LbError::Spawn {
        netns: ns.clone(),
        source,
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LbError::Nft {
            netns: ns,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// `dnat to` one backend, or a random pick among several; `port`
/// rewrites the destination port too.
fn dnat(backends: &[Ipv4Addr], port: Option<u16>) -> String {
    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
    match backends {
        [one] => format!("dnat to {one}{port}"),
        many => {
            let map = many
                .iter()
                .enumerate()
                .map(|(i, ip)| format!("{i} : {ip}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "dnat to numgen random mod {} map {{ {map} }}{port}",
                many.len()
            )
        }
    }
}

/// Starts a script that atomically replaces our table.
fn header() -> String {
    format!("table ip {TABLE}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n")
}

fn chain(out: &mut String, name: &str, hook: &str, rules: &[String]) {
    let _ = writeln!(out, "  chain {name} {{\n    {hook}; policy accept;");
    for r in rules {
        let _ = writeln!(out, "    {r}");
    }
    out.push_str("  }\n");
}

/// A task's namespace: connections to a VIP (any port) go to one of the
/// service's ready tasks; with none ready they are refused at once.
pub fn task_rules(plan: &VipPlan) -> String {
    let mut nat = Vec::new();
    let mut refuse = Vec::new();
    for v in &plan.vips {
        if v.backends.is_empty() {
            refuse.push(format!(
                "ip daddr {} meta l4proto tcp reject with tcp reset",
                v.vip
            ));
            refuse.push(format!("ip daddr {} reject", v.vip));
        } else {
            nat.push(format!(
                "ip daddr {} meta l4proto {{ tcp, udp, sctp }} {}",
                v.vip,
                dnat(&v.backends, None)
            ));
        }
    }
    let mut s = header();
    chain(&mut s, "vip", "type nat hook output priority -100", &nat);
    chain(
        &mut s,
        "vip-refuse",
        "type filter hook output priority filter",
        &refuse,
    );
    s.push_str("}\n");
    s
}

/// The routing-mesh sandbox: a published port arriving from the daemon's
/// namespace goes to a ready task's ingress address and target port, with
/// the sandbox's ingress address as source so the reply comes back here
/// (and is un-NATed on its way to the client).
/// The sandbox side of the link from the node (see `overlay::attach`).
const SANDBOX_LINK_IF: &str = "mesh0";

pub fn sandbox_rules(plan: &MeshPlan) -> String {
    let nat: Vec<String> = plan
        .ports
        .iter()
        .filter(|p| !p.backends.is_empty())
        .map(|p| {
            format!(
                "{} dport {} {}",
                p.proto.nft(),
                p.published,
                dnat(&p.backends, Some(p.target))
            )
        })
        .collect();
    let snat = match plan.sandbox_addr {
        Some((ip, prefix)) => {
            let net = u32::from(ip) & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            format!(
                "ct status dnat ip daddr {}/{prefix} snat to {ip}",
                Ipv4Addr::from(net)
            )
        }
        None => "ct status dnat masquerade".to_string(),
    };
    let mut s = header();
    chain(
        &mut s,
        "mesh",
        "type nat hook prerouting priority dstnat",
        &nat,
    );
    // Host-mode ports were translated on the node already: what comes in
    // over the link and goes on to a task leaves with the sandbox's source.
    let forwarded =
        format!("iifname \"{SANDBOX_LINK_IF}\" oifname != \"{SANDBOX_LINK_IF}\" masquerade");
    chain(
        &mut s,
        "mesh-snat",
        "type nat hook postrouting priority srcnat",
        &[snat, forwarded],
    );
    s.push_str("}\n");
    s
}

/// The daemon's namespace: published ports on any local address go to the
/// sandbox (ingress mode) or the local task (host mode), from outside
/// (prerouting) and from the node itself (output).
pub fn node_rules(plan: &NodePlan) -> String {
    let mut nat: Vec<String> = plan
        .mesh
        .iter()
        .map(|(proto, port)| {
            format!(
                "fib daddr type local {} dport {port} dnat to {SANDBOX_LINK_ADDR}:{port}",
                proto.nft()
            )
        })
        .collect();
    nat.extend(
        plan.host
            .iter()
            .filter(|p| !p.backends.is_empty())
            .map(|p| {
                format!(
                    "fib daddr type local {} dport {} {}",
                    p.proto.nft(),
                    p.published,
                    dnat(&p.backends, Some(p.target))
                )
            }),
    );
    let mut s = header();
    chain(
        &mut s,
        "publish",
        "type nat hook prerouting priority dstnat",
        &nat,
    );
    chain(
        &mut s,
        "publish-local",
        "type nat hook output priority -100",
        &nat,
    );
    // The node's own clients: a source the sandbox can always answer.
    let masq = vec![format!(
        "ip daddr {SANDBOX_LINK_ADDR} fib saddr type local masquerade"
    )];
    chain(
        &mut s,
        "publish-snat",
        "type nat hook postrouting priority srcnat",
        &masq,
    );
    // Tasks' egress links (`overlay::egress`): out as the node.
    let (pool, bits) = EGRESS_POOL;
    let egress = vec![format!(
        "ip saddr {pool}/{bits} ip daddr != {pool}/{bits} masquerade"
    )];
    chain(
        &mut s,
        "egress",
        "type nat hook postrouting priority srcnat",
        &egress,
    );
    let fwd = vec!["ct status dnat accept".to_string()];
    chain(
        &mut s,
        "publish-forward",
        "type filter hook forward priority filter",
        &fwd,
    );
    s.push_str("}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::super::plan::{Proto, Published, Vip};
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn task_script() {
        let plan = VipPlan {
            vips: vec![
                Vip {
                    service: "web".into(),
                    vip: ip("10.0.5.2"),
                    backends: vec![ip("10.0.5.11"), ip("10.0.5.12")],
                },
                Vip {
                    service: "db".into(),
                    vip: ip("10.0.5.3"),
                    backends: vec![],
                },
            ],
        };
        let s = task_rules(&plan);
        assert!(s.starts_with("table ip shoal\ndelete table ip shoal\n"));
        assert!(s.contains(
            "ip daddr 10.0.5.2 meta l4proto { tcp, udp, sctp } dnat to numgen random mod 2 map { 0 : 10.0.5.11, 1 : 10.0.5.12 }\n"
        ));
        assert!(s.contains("ip daddr 10.0.5.3 reject\n"));
    }

    #[test]
    fn mesh_scripts() {
        let s = sandbox_rules(&MeshPlan {
            sandbox_addr: Some((ip("10.255.0.250"), 16)),
            ports: vec![Published {
                proto: Proto::Udp,
                published: 8080,
                target: 80,
                backends: vec![ip("10.255.0.5")],
            }],
        });
        assert!(s.contains("udp dport 8080 dnat to 10.255.0.5:80\n"));
        assert!(s.contains("ct status dnat ip daddr 10.255.0.0/16 snat to 10.255.0.250\n"));
        let n = node_rules(&NodePlan {
            mesh: vec![(Proto::Tcp, 8080)],
            host: vec![],
        });
        assert!(n.contains("fib daddr type local tcp dport 8080 dnat to 169.254.250.2:8080\n"));
    }
}
