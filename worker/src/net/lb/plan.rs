//! What the balancers must program, computed from the [`NetworkView`]:
//! backend-neutral, so both backends (and the tests) share it.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use shoal_proto::dispatcher::{EndpointService, EndpointTask};
use shoal_proto::objects::endpoint_spec::ResolutionMode;
use shoal_proto::objects::port_config::{Protocol, PublishMode};

use crate::net::dns::ready_ips;
use crate::net::{NetworkView, parse_cidr};

/// The sandbox end of the link between the daemon's namespace and the
/// node's routing-mesh sandbox (the daemon's end is .1/30).
pub const SANDBOX_LINK_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 250, 2);

/// A transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Proto {
    /// nftables' keyword.
    pub fn nft(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }

    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Sctp => 132,
        }
    }
}

impl From<Protocol> for Proto {
    fn from(p: Protocol) -> Self {
        match p {
            Protocol::Tcp => Proto::Tcp,
            Protocol::Udp => Proto::Udp,
            Protocol::Sctp => Proto::Sctp,
        }
    }
}

/// One service VIP seen from a task: every port goes to a ready task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vip {
    /// The service's name (for logs and rule comments).
    pub service: String,
    /// The VIP on a network the task shares with the service.
    pub vip: Ipv4Addr,
    /// Ready tasks' addresses on that network; empty: connections are
    /// refused.
    pub backends: Vec<Ipv4Addr>,
}

/// The VIP rules of one task's namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VipPlan {
    /// Sorted by VIP.
    pub vips: Vec<Vip>,
}

/// A published port and where it leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Its protocol.
    pub proto: Proto,
    /// The port clients connect to.
    pub published: u16,
    /// The task's port.
    pub target: u16,
    /// Ready tasks' addresses (ingress ones for the mesh).
    pub backends: Vec<Ipv4Addr>,
}

/// The routing-mesh sandbox's rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeshPlan {
    /// The sandbox's own ingress address and prefix: balanced connections
    /// leave with it as their source, so replies come back through it.
    pub sandbox_addr: Option<(Ipv4Addr, u8)>,
    /// Ingress-mode ports, balanced over every ready task in the cluster.
    pub ports: Vec<Published>,
}

/// The rules of the daemon's own namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodePlan {
    /// Ingress-mode ports: to the sandbox, same port.
    pub mesh: Vec<(Proto, u16)>,
    /// Host-mode ports of this node's ready tasks: straight to the task.
    pub host: Vec<Published>,
}

fn ingress_ids(view: &NetworkView) -> HashSet<&str> {
    view.networks
        .iter()
        .filter(|n| n.spec.as_ref().is_some_and(|s| s.ingress))
        .map(|n| n.id.as_str())
        .collect()
}

fn tasks_of<'a>(view: &'a NetworkView, svc: &EndpointService) -> Vec<&'a EndpointTask> {
    view.tasks
        .iter()
        .filter(|t| t.service_id == svc.service_id)
        .collect()
}

fn ports(svc: &EndpointService, mode: PublishMode) -> impl Iterator<Item = (Proto, u16, u16)> + '_ {
    svc.ports
        .iter()
        .filter(move |p| p.publish_mode() == mode)
        .filter_map(|p| {
            let published = u16::try_from(p.published_port).ok().filter(|p| *p != 0)?;
            let target = u16::try_from(p.target_port).ok().filter(|p| *p != 0)?;
            Some((p.protocol().into(), published, target))
        })
}

/// The VIPs a task on `task_network_ids` balances itself (the ingress
/// network's VIPs are the mesh's business).
pub fn vip_plan(view: &NetworkView, task_network_ids: &[String]) -> VipPlan {
    let ingress = ingress_ids(view);
    let mut vips = Vec::new();
    for svc in view
        .services
        .iter()
        .filter(|s| s.mode() == ResolutionMode::Vip)
    {
        let tasks = tasks_of(view, svc);
        for v in &svc.virtual_ips {
            let net = v.network_id.as_str();
            if ingress.contains(net) || !task_network_ids.iter().any(|n| n == net) {
                continue;
            }
            if let Some((vip, _)) = parse_cidr(&v.addr) {
                vips.push(Vip {
                    service: svc.name.clone(),
                    vip,
                    backends: ready_ips(&tasks, net),
                });
            }
        }
    }
    vips.sort_by_key(|v| v.vip);
    vips.dedup_by_key(|v| v.vip);
    VipPlan { vips }
}

/// The sandbox's rules: every ingress-mode port of every service, over
/// the ready tasks' ingress addresses.
pub fn mesh_plan(view: &NetworkView) -> MeshPlan {
    let ingress = ingress_ids(view);
    let sandbox_addr = view
        .ingress_sandboxes
        .iter()
        .filter(|s| s.node_addr == view.node_addr)
        .flat_map(|s| s.addresses.iter())
        .find(|a| ingress.contains(a.network_id.as_str()))
        .and_then(|a| parse_cidr(&a.address));
    let mut out = Vec::new();
    for svc in &view.services {
        let tasks = tasks_of(view, svc);
        let mut backends: Vec<Ipv4Addr> =
            ingress.iter().flat_map(|n| ready_ips(&tasks, n)).collect();
        backends.sort();
        for (proto, published, target) in ports(svc, PublishMode::Ingress) {
            out.push(Published {
                proto,
                published,
                target,
                backends: backends.clone(),
            });
        }
    }
    out.sort_by_key(|p| (p.proto, p.published));
    MeshPlan {
        sandbox_addr,
        ports: out,
    }
}

/// The daemon namespace's rules: ingress ports to the sandbox, host-mode
/// ports of this node's ready tasks to the task.
pub fn node_plan(view: &NetworkView) -> NodePlan {
    let ingress = ingress_ids(view);
    let mut mesh = Vec::new();
    let mut host = Vec::new();
    for svc in &view.services {
        mesh.extend(ports(svc, PublishMode::Ingress).map(|(p, port, _)| (p, port)));
        let local: Vec<Ipv4Addr> = tasks_of(view, svc)
            .into_iter()
            .filter(|t| t.ready && t.node_addr == view.node_addr)
            .filter_map(|t| {
                let mut addrs = t.addresses.iter();
                // Its ingress address: the node reaches it through its
                // sandbox (a route the data plane adds).
                let a = addrs
                    .clone()
                    .find(|a| ingress.contains(a.network_id.as_str()))
                    .or_else(|| addrs.next())?;
                parse_cidr(&a.address).map(|(ip, _)| ip)
            })
            .collect();
        for (proto, published, target) in ports(svc, PublishMode::Host) {
            if !local.is_empty() {
                host.push(Published {
                    proto,
                    published,
                    target,
                    backends: local.clone(),
                });
            }
        }
    }
    mesh.sort();
    mesh.dedup();
    host.sort_by_key(|p| (p.proto, p.published));
    NodePlan { mesh, host }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::testview::{service, task, view};
    use shoal_proto::dispatcher::EndpointAddress;
    use shoal_proto::objects::PortConfig;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn vips_follow_ready_tasks_on_shared_networks() {
        let mut v = view();
        v.services
            .push(service("s1", "web", "front", "10.0.5.2/24"));
        v.services.push(service("s2", "db", "back", "10.0.6.2/24"));
        v.tasks
            .push(task("t1", "s1", "web.1", "front", "10.0.5.11/24", true));
        v.tasks
            .push(task("t2", "s1", "web.2", "front", "10.0.5.12/24", false));
        v.tasks
            .push(task("t3", "s2", "db.1", "back", "10.0.6.11/24", false));
        let plan = vip_plan(&v, &["front".into()]);
        assert_eq!(
            plan.vips,
            vec![Vip {
                service: "web".into(),
                vip: ip("10.0.5.2"),
                backends: vec![ip("10.0.5.11")]
            }]
        );
        let both = vip_plan(&v, &["front".into(), "back".into()]);
        assert_eq!(both.vips.len(), 2);
        assert!(both.vips[1].backends.is_empty());
    }

    #[test]
    fn mesh_and_host_ports() {
        let mut v = view();
        let mut web = service("s1", "web", "ingress", "10.255.0.2/16");
        web.ports.push(PortConfig {
            target_port: 80,
            published_port: 8080,
            ..Default::default()
        });
        let mut adm = service("s2", "adm", "front", "10.0.5.3/24");
        adm.ports.push(PortConfig {
            protocol: Protocol::Udp as i32,
            target_port: 53,
            published_port: 5353,
            publish_mode: PublishMode::Host as i32,
            ..Default::default()
        });
        v.services.extend([web, adm]);
        v.tasks
            .push(task("t1", "s1", "web.1", "ingress", "10.255.0.5/16", true));
        let mut remote = task("t2", "s1", "web.2", "ingress", "10.255.0.6/16", true);
        remote.node_addr = "198.18.0.2".into();
        v.tasks.push(remote);
        v.tasks
            .push(task("t3", "s1", "web.3", "ingress", "10.255.0.7/16", false));
        v.tasks
            .push(task("t4", "s2", "adm.1", "front", "10.0.5.9/24", true));
        let mut other = task("t5", "s2", "adm.2", "front", "10.0.5.10/24", true);
        other.node_addr = "198.18.0.2".into();
        v.tasks.push(other);
        v.ingress_sandboxes.push(EndpointTask {
            node_addr: "198.18.0.1".into(),
            addresses: vec![EndpointAddress {
                network_id: "ingress".into(),
                address: "10.255.0.250/16".into(),
                aliases: vec![],
            }],
            ..Default::default()
        });

        let mesh = mesh_plan(&v);
        assert_eq!(mesh.sandbox_addr, Some((ip("10.255.0.250"), 16)));
        assert_eq!(
            mesh.ports,
            vec![Published {
                proto: Proto::Tcp,
                published: 8080,
                target: 80,
                backends: vec![ip("10.255.0.5"), ip("10.255.0.6")]
            }]
        );
        let node = node_plan(&v);
        assert_eq!(node.mesh, vec![(Proto::Tcp, 8080)]);
        assert_eq!(
            node.host,
            vec![Published {
                proto: Proto::Udp,
                published: 5353,
                target: 53,
                backends: vec![ip("10.0.5.9")]
            }]
        );
    }
}
