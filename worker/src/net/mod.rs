//! The data plane: overlay networks, service discovery, load balancing
//! and the routing mesh, programmed from the [`NetworkView`] the leader's
//! dispatcher streams to each node.
//!
//! - `overlay`: per network, a namespace with a bridge and a VXLAN device
//!   (so subnets may overlap between networks); static FDB and neighbour
//!   entries for every remote task and node sandbox; a veth into each
//!   task's namespace, set up before the task's process starts; the
//!   node's routing-mesh sandbox plumbing.
//! - `netlink`, `ns`: the narrow Linux side effects the data plane makes
//!   (rtnetlink connections bound to one namespace; pinned namespaces).
//! - `dns`: a resolver at 127.0.0.11 inside each task's namespace.
//! - `lb`: nftables VIP balancing inside task namespaces, and the routing
//!   mesh on the node (published ingress ports → the ingress sandbox →
//!   ready tasks, with source NAT so replies come back); IPVS instead
//!   where the kernel has it.
//! - `forward`: accepts in Docker's `DOCKER-USER` chain where dockerd
//!   filters forwarding in the daemon's namespace.
//! - `nsenter`: running code (binding sockets, spawning `nft`) inside a
//!   pinned namespace from a throwaway thread.
//! - `agent`: the actor that applies each view and wires tasks in and out;
//!   `plane`: the seam task actors call it through (`DataPlane`, whose
//!   `attach` fails with a typed `AttachError`).
//!
//! Naming: several daemons share one kernel in tests, so every namespace
//! and interface this node creates carries a short prefix derived from its
//! node id.

pub mod agent;
pub mod plane;

use std::net::Ipv4Addr;

pub mod dns;
mod error;
pub mod forward;
pub mod lb;
pub mod netlink;
pub mod ns;
pub mod nsenter;
pub mod overlay;
#[cfg(test)]
mod testview;

pub use error::NetError;
pub use overlay::{Overlay, Sandbox};
pub use shoal_proto::dispatcher::NetworkView;

/// A task's interface on one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The network.
    pub network_id: String,
    /// The task's address.
    pub ip: Ipv4Addr,
    /// The network's prefix length.
    pub prefix: u8,
    /// The interface's MAC, derived from the address.
    pub mac: [u8; 6],
}

/// Docker's MAC for an overlay address: `02:42:` and the address's bytes.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// Parses `10.0.1.5/24`.
pub fn parse_cidr(cidr: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, prefix) = cidr.split_once('/')?;
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    Some((ip.parse().ok()?, prefix))
}

/// The attachment for a network id and a CIDR address.
pub fn attachment(network_id: &str, cidr: &str) -> Option<Attachment> {
    let (ip, prefix) = parse_cidr(cidr)?;
    Some(Attachment {
        network_id: network_id.to_string(),
        ip,
        prefix,
        mac: mac_for(ip),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_and_cidrs() {
        let a = attachment("n1", "10.0.1.5/24").unwrap();
        assert_eq!(a.mac, [2, 0x42, 10, 0, 1, 5]);
        assert_eq!(a.prefix, 24);
        assert!(parse_cidr("10.0.1.5").is_none());
        assert!(parse_cidr("10.0.1.5/33").is_none());
    }
}
