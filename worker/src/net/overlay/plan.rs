//! What the view asks of this node, as plain data: per network its VNI,
//! gateway and the remote peers to program. Pure, so it is unit-tested
//! without a kernel.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use shoal_proto::dispatcher::EndpointTask;
use shoal_proto::objects::Network;

use super::super::{NetError, NetworkView, mac_for, parse_cidr};

/// Docker's driver option carrying a network's VXLAN id(s).
pub const VXLAN_ID_OPTION: &str = "com.docker.network.driver.overlay.vxlanid_list";

/// A remote endpoint on a network: reached through VXLAN at `node`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Peer {
    /// The endpoint's overlay address.
    pub ip: Ipv4Addr,
    /// Its MAC (derived from the address).
    pub mac: [u8; 6],
    /// Its node's underlay address.
    pub node: Ipv4Addr,
}

/// One network as this node programs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPlan {
    /// The network id.
    pub id: String,
    /// The VXLAN id.
    pub vni: u32,
    /// The bridge's address (the subnet's gateway).
    pub gateway: Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix: u8,
    /// Remote tasks (and, on ingress, remote sandboxes).
    pub peers: BTreeSet<Peer>,
}

/// Plans every network of the view for the node at `me`. Networks that
/// cannot be programmed are returned as errors beside the others, so one
/// bad network does not cut the rest off.
pub fn plan(view: &NetworkView, me: Ipv4Addr) -> (BTreeMap<String, NetworkPlan>, Vec<NetError>) {
    let mut plans = BTreeMap::new();
    let mut errors = Vec::new();
    for net in &view.networks {
        match network(net) {
            Ok(p) => {
                plans.insert(p.id.clone(), p);
            }
            Err(e) => errors.push(e),
        }
    }
    for ep in view.tasks.iter().chain(&view.ingress_sandboxes) {
        add_peers(&mut plans, ep, me);
    }
    (plans, errors)
}

/// Adds a remote endpoint's addresses to the networks they are on.
fn add_peers(plans: &mut BTreeMap<String, NetworkPlan>, ep: &EndpointTask, me: Ipv4Addr) {
    let Ok(node) = ep.node_addr.parse::<Ipv4Addr>() else {
        return;
    };
    if node == me {
        return; // Local endpoints sit on the bridge itself.
    }
    for addr in &ep.addresses {
        let (Some(p), Some((ip, _))) = (plans.get_mut(&addr.network_id), parse_cidr(&addr.address))
        else {
            continue;
        };
        p.peers.insert(Peer {
            ip,
            mac: mac_for(ip),
            node,
        });
    }
}

/// VNI, gateway and prefix of one network object.
fn network(net: &Network) -> Result<NetworkPlan, NetError> {
    let bad = |reason: &str| NetError::BadNetwork {
        id: net.id.clone(),
        reason: reason.to_string(),
    };
    let vni = net
        .driver_state
        .as_ref()
        .and_then(|d| d.options.get(VXLAN_ID_OPTION))
        .and_then(|list| list.split(',').next())
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|v| (1..1 << 24).contains(v))
        .ok_or_else(|| bad("no VXLAN id"))?;
    let ipam = net
        .ipam
        .as_ref()
        .filter(|i| !i.configs.is_empty())
        .or(net.spec.as_ref().and_then(|s| s.ipam.as_ref()));
    let config = ipam
        .and_then(|i| i.configs.first())
        .ok_or_else(|| bad("no subnet"))?;
    let (subnet, prefix) = parse_cidr(&config.subnet).ok_or_else(|| bad("bad subnet"))?;
    if prefix > 30 {
        return Err(bad("subnet too small"));
    }
    let gateway = match config.gateway.parse::<Ipv4Addr>() {
        Ok(g) => g,
        // Docker's default: the subnet's first address.
        Err(_) => Ipv4Addr::from(u32::from(subnet) & (u32::MAX << (32 - prefix)) | 1),
    };
    Ok(NetworkPlan {
        id: net.id.clone(),
        vni,
        gateway,
        prefix,
        peers: BTreeSet::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::dispatcher::EndpointAddress;
    use shoal_proto::objects::{Driver, IpamConfig, IpamOptions};

    fn net(id: &str, vni: &str, subnet: &str, gateway: &str) -> Network {
        Network {
            id: id.into(),
            driver_state: Some(Driver {
                name: "overlay".into(),
                options: [(VXLAN_ID_OPTION.to_string(), vni.to_string())].into(),
            }),
            ipam: Some(IpamOptions {
                driver: None,
                configs: vec![IpamConfig {
                    subnet: subnet.into(),
                    range: String::new(),
                    gateway: gateway.into(),
                }],
            }),
            ..Default::default()
        }
    }

    fn task(node: &str, addrs: &[(&str, &str)]) -> EndpointTask {
        EndpointTask {
            node_addr: node.into(),
            addresses: addrs
                .iter()
                .map(|(n, a)| EndpointAddress {
                    network_id: n.to_string(),
                    address: a.to_string(),
                    aliases: vec![],
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn plans_remote_peers_per_network() {
        let view = NetworkView {
            networks: vec![
                net("n1", "4097", "10.0.9.0/24", "10.0.9.1"),
                net("n2", "4098,4099", "10.0.9.0/24", ""),
                net("bad", "", "10.0.9.0/24", ""),
            ],
            tasks: vec![
                task("198.18.0.1", &[("n1", "10.0.9.5/24")]),
                task(
                    "198.18.0.2",
                    &[("n1", "10.0.9.6/24"), ("n2", "10.0.9.6/24")],
                ),
                task("198.18.0.2", &[("gone", "10.0.9.7/24")]),
            ],
            ..Default::default()
        };
        let (plans, errors) = plan(&view, "198.18.0.1".parse().unwrap());
        assert_eq!(errors.len(), 1);
        assert_eq!(plans.len(), 2);
        let n1 = &plans["n1"];
        assert_eq!(n1.vni, 4097);
        let peer = Peer {
            ip: "10.0.9.6".parse().unwrap(),
            mac: [2, 0x42, 10, 0, 9, 6],
            node: "198.18.0.2".parse().unwrap(),
        };
        assert_eq!(n1.peers, BTreeSet::from([peer]));
        let n2 = &plans["n2"];
        assert_eq!(
            (n2.vni, n2.gateway, n2.prefix),
            (4098, "10.0.9.1".parse().unwrap(), 24)
        );
        assert_eq!(n2.peers.len(), 1);
    }
}
