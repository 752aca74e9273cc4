//! The IPVS backend, for kernels with `ip_vs` (Docker's way): nftables
//! marks the traffic (a VIP's, a published port's) with a firewall mark
//! and IPVS balances each mark over its destinations in masquerade mode.
//! IPVS is driven over generic netlink with hand-encoded messages
//! (`linux/ip_vs.h`); the encoding is unit-tested, the kernel side only
//! where the module exists.

use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

use super::nft::{self, TABLE};
use super::plan::{MeshPlan, NodePlan, VipPlan};
use super::{LbError, LoadBalancer, Nftables};
use crate::net::nsenter;

mod msg;
mod sock;

pub use msg::{Dest, Service};

/// Whether this kernel has IPVS (loaded, or available as a module).
pub fn ipvs_available() -> bool {
    if Path::new("/proc/net/ip_vs").exists() {
        return true;
    }
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let dir = format!("/lib/modules/{}/kernel/net/netfilter/ipvs", release.trim());
    Path::new(&dir).join("ip_vs.ko").exists()
        || std::fs::read_dir(&dir).is_ok_and(|mut d| {
            d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("ip_vs.ko")))
        })
}

/// IPVS balancing (fwmark services, masquerade forwarding).
#[derive(Debug, Default, Clone, Copy)]
pub struct Ipvs;

/// The first mark; marks are per namespace, renumbered on each sync.
const MARK_BASE: u32 = 0x5300;

impl LoadBalancer for Ipvs {
    fn name(&self) -> &'static str {
        "ipvs"
    }

    fn sync_task(&self, netns: &Path, plan: &VipPlan) -> Result<(), LbError> {
        let mut marks = Vec::new();
        let mut services = Vec::new();
        for (i, v) in plan.vips.iter().enumerate() {
            let mark = MARK_BASE + i as u32;
            marks.push(format!(
                "ip daddr {} meta l4proto {{ tcp, udp, sctp }} meta mark set {mark}",
                v.vip
            ));
            services.push((mark, dests(&v.backends, 0)));
        }
        nft::apply(netns, &mark_rules("output", &marks, None))?;
        program(netns, services)
    }

    fn sync_sandbox(&self, netns: &Path, plan: &MeshPlan) -> Result<(), LbError> {
        nft::forwarding(netns)?;
        nsenter::sysctl(netns, "net.ipv4.vs.conntrack", "1")
            .map_err(|source| ipvs_err(netns, source))?;
        let mut marks = Vec::new();
        let mut services = Vec::new();
        for (i, p) in plan.ports.iter().enumerate() {
            let mark = MARK_BASE + i as u32;
            marks.push(format!(
                "{} dport {} meta mark set {mark}",
                p.proto.nft(),
                p.published
            ));
            services.push((mark, dests(&p.backends, p.target)));
        }
        let snat = plan.sandbox_addr.map(|(ip, _)| ip);
        nft::apply(netns, &mark_rules("prerouting", &marks, snat))?;
        program(netns, services)
    }

    fn sync_node(&self, netns: &Path, plan: &NodePlan) -> Result<(), LbError> {
        // Published ports are plain DNAT either way.
        Nftables.sync_node(netns, plan)
    }

    fn clear(&self, netns: &Path) -> Result<(), LbError> {
        Nftables.clear(netns)?;
        program(netns, Vec::new())
    }
}

fn ipvs_err(netns: &Path, source: io::Error) -> LbError {
    LbError::Ipvs {
        netns: netns.display().to_string(),
        source,
    }
}

fn dests(backends: &[Ipv4Addr], port: u16) -> Vec<Dest> {
    backends
        .iter()
        .map(|ip| Dest {
            addr: *ip,
            port,
            weight: 1,
        })
        .collect()
}

/// Our table with a mangle chain setting marks (and, in the sandbox,
/// source NAT of marked traffic so replies come back).
fn mark_rules(hook: &str, marks: &[String], snat: Option<Ipv4Addr>) -> String {
    let mut s = format!("table ip {TABLE}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n");
    s.push_str(&format!(
        "  chain mark {{\n    type filter hook {hook} priority mangle; policy accept;\n"
    ));
    for m in marks {
        s.push_str(&format!("    {m}\n"));
    }
    s.push_str("  }\n");
    if let Some(ip) = snat {
        s.push_str(&format!(
            "  chain mesh-snat {{\n    type nat hook postrouting priority srcnat; policy accept;\n    meta mark >= {MARK_BASE} meta mark < {} snat to {ip}\n  }}\n",
            MARK_BASE + 0x100
        ));
    }
    s.push_str("}\n");
    s
}

/// Replaces the namespace's IPVS state: flush, then one fwmark service
/// per entry with its destinations.
fn program(netns: &Path, services: Vec<(u32, Vec<Dest>)>) -> Result<(), LbError> {
    nsenter::in_netns(netns, move || {
        let mut nl = sock::Genl::open()?;
        let family = nl.family("IPVS")?;
        nl.request(&msg::flush(family))?;
        for (mark, dests) in &services {
            let svc = Service::fwmark(*mark);
            nl.request(&msg::new_service(family, &svc))?;
            for d in dests {
                nl.request(&msg::new_dest(family, &svc, d))?;
            }
        }
        Ok(())
    })
    .map_err(|e| ipvs_err(netns, e))
}
