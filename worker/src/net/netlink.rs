//! One rtnetlink connection bound to one network namespace, and the few
//! link, address, route, FDB and neighbour operations the data plane needs.
//!
//! A netlink socket belongs to the namespace it was opened in, so
//! [`Netlink::open`] opens it on a thread that entered the namespace; the
//! connection is then driven by the runtime like any other socket.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd as _;

use futures_util::TryStreamExt as _;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteScope};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};
use tokio::task::JoinHandle;

use super::NetError;

/// `ENODEV`/`ENOENT`/`EEXIST` as netlink reports them (negated errno).
const ENODEV: i32 = -19;
const ENOENT: i32 = -2;
const EEXIST: i32 = -17;

/// A link's index and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The interface index in its namespace.
    pub index: u32,
    /// The interface name.
    pub name: String,
}

/// A netlink connection into one namespace; closed when dropped.
pub struct Netlink {
    handle: Handle,
    conn: JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        // The connection task owns the socket, which pins the namespace.
        self.conn.abort();
    }
}

/// The kernel's errno for a netlink failure (negative), if it was one.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(m.raw_code()),
        _ => None,
    }
}

impl Netlink {
    /// Opens a connection inside namespace `ns`.
    pub async fn open(ns: &File) -> Result<Self, NetError> {
        let rt = tokio::runtime::Handle::current();
        let (conn, handle, _) = super::ns::run_in(ns, move || {
            let _guard = rt.enter();
            rtnetlink::new_connection()
        })
        .await
        .map_err(NetError::io("open netlink in", "namespace"))?;
        Ok(Self {
            handle,
            conn: tokio::spawn(conn),
        })
    }

    /// Every link in the namespace.
    pub async fn links(&self) -> Result<Vec<Link>, NetError> {
        let msgs: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(NetError::netlink("list links"))?;
        Ok(msgs.iter().filter_map(link_of).collect())
    }

    /// The index of link `name`, if there is one.
    pub async fn index(&self, name: &str) -> Result<Option<u32>, NetError> {
        let mut found = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match found.try_next().await {
            Ok(msg) => Ok(msg.map(|m| m.header.index)),
            Err(e) if matches!(errno(&e), Some(ENODEV)) => Ok(None),
            Err(e) => Err(NetError::netlink(format!("find link {name}"))(e)),
        }
    }

    /// Creates a link (bridge, VXLAN, veth) from a built message.
    pub async fn add(&self, what: &str, msg: LinkMessage) -> Result<(), NetError> {
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(NetError::netlink(format!("add link {what}")))
    }

    /// Changes a link (up, controller, namespace, MAC) from a built message.
    pub async fn set(&self, what: &str, msg: LinkMessage) -> Result<(), NetError> {
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(NetError::netlink(format!("set link {what}")))
    }

    /// Deletes link `index`; gone already is fine.
    pub async fn del(&self, index: u32) -> Result<(), NetError> {
        match self.handle.link().del(index).execute().await {
            Err(e) if !matches!(errno(&e), Some(ENODEV)) => {
                Err(NetError::netlink(format!("delete link {index}"))(e))
            }
            _ => Ok(()),
        }
    }

    /// Brings link `index` up.
    pub async fn up(&self, index: u32) -> Result<(), NetError> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.set(&index.to_string(), msg).await
    }

    /// Moves link `index` into namespace `ns` (it gets a new index there).
    pub async fn move_to(&self, index: u32, ns: &File) -> Result<(), NetError> {
        let msg = LinkUnspec::new_with_index(index)
            .setns_by_fd(ns.as_raw_fd())
            .build();
        self.set(&index.to_string(), msg).await
    }

    /// Enslaves link `index` to bridge `controller` and brings it up.
    pub async fn enslave(&self, index: u32, controller: u32) -> Result<(), NetError> {
        let msg = LinkUnspec::new_with_index(index)
            .controller(controller)
            .up()
            .build();
        self.set(&index.to_string(), msg).await
    }

    /// Creates a veth pair: `name` here, `peer` straight in namespace
    /// `peer_ns` with MAC `peer_mac` (else the kernel's); both ends get MTU `mtu`.
    pub async fn add_veth(
        &self,
        name: &str,
        peer: &str,
        peer_ns: &File,
        peer_mac: Option<[u8; 6]>,
        mtu: u32,
    ) -> Result<(), NetError> {
        let mut peer_msg = LinkMessageBuilder::<LinkUnspec>::new().name(peer).mtu(mtu);
        if let Some(mac) = peer_mac {
            peer_msg = peer_msg.address(mac.to_vec());
        }
        let peer_msg = peer_msg.setns_by_fd(peer_ns.as_raw_fd()).build();
        let msg = LinkVeth::new(name, peer)
            .mtu(mtu)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
            .build();
        self.add(name, msg).await
    }

    /// Puts `ip/prefix` on link `index`; already there is fine.
    pub async fn add_address(&self, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<(), NetError> {
        self.handle
            .address()
            .add(index, IpAddr::V4(ip), prefix)
            .replace()
            .execute()
            .await
            .map_err(NetError::netlink(format!("add address {ip}/{prefix}")))
    }

    /// A route to `dest/prefix` via `gateway`; already there is fine.
    pub async fn route_via(
        &self,
        dest: Ipv4Addr,
        prefix: u8,
        gateway: Ipv4Addr,
    ) -> Result<(), NetError> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(dest, prefix)
            .gateway(gateway)
            .build();
        self.add_route(route, format!("route {dest}/{prefix} via {gateway}"))
            .await
    }

    /// A link-scope route to `dest/prefix` out of link `index`; already
    /// there is fine.
    pub async fn route_dev(&self, dest: Ipv4Addr, prefix: u8, index: u32) -> Result<(), NetError> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(dest, prefix)
            .output_interface(index)
            .scope(RouteScope::Link)
            .build();
        self.add_route(route, format!("route {dest}/{prefix} dev {index}"))
            .await
    }

    /// Adds (or replaces) a route; `what` names it in errors.
    async fn add_route(&self, route: RouteMessage, what: String) -> Result<(), NetError> {
        self.handle
            .route()
            .add(route)
            .replace()
            .execute()
            .await
            .map_err(NetError::netlink(what))
    }

    /// The IPv4 routes of the main table with a destination: (address,
    /// prefix length, outgoing link).
    pub async fn routes(&self) -> Result<Vec<(Ipv4Addr, u8, Option<u32>)>, NetError> {
        let msgs: Vec<RouteMessage> = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute()
            .try_collect()
            .await
            .map_err(NetError::netlink("list routes"))?;
        Ok(msgs
            .iter()
            .filter_map(|m| {
                let mut dest = None;
                let mut oif = None;
                for a in &m.attributes {
                    match a {
                        RouteAttribute::Destination(RouteAddress::Inet(ip)) => dest = Some(*ip),
                        RouteAttribute::Oif(i) => oif = Some(*i),
                        _ => {}
                    }
                }
                Some((dest?, m.header.destination_prefix_length, oif))
            })
            .collect())
    }

    /// The default route via `gateway`; already there is fine.
    pub async fn default_route(&self, gateway: Ipv4Addr) -> Result<(), NetError> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .build();
        self.add_route(route, format!("default route via {gateway}"))
            .await
    }

    /// The static VXLAN FDB entries on `vxlan`: (MAC, remote node).
    pub async fn fdb(&self, vxlan: u32) -> Result<Vec<([u8; 6], Ipv4Addr)>, NetError> {
        let msgs: Vec<NeighbourMessage> = self
            .handle
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Bridge)
            .execute()
            .try_collect()
            .await
            .map_err(NetError::netlink("list fdb"))?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.ifindex == vxlan)
            .filter_map(|m| Some((mac_of(m)?, dst_of(m)?)))
            .collect())
    }

    /// Adds (or moves) FDB entry `mac → node` on `vxlan`, permanent.
    pub async fn fdb_add(&self, vxlan: u32, mac: [u8; 6], node: Ipv4Addr) -> Result<(), NetError> {
        self.handle
            .neighbours()
            .add_bridge(vxlan, &mac)
            .flags(NeighbourFlags::Own)
            .destination(IpAddr::V4(node))
            .replace()
            .execute()
            .await
            .map_err(NetError::netlink(format!(
                "add fdb {} dst {node}",
                fmt_mac(mac)
            )))
    }

    /// Removes FDB entry `mac → node` from `vxlan`; gone already is fine.
    pub async fn fdb_del(&self, vxlan: u32, mac: [u8; 6], node: Ipv4Addr) -> Result<(), NetError> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        msg.header.ifindex = vxlan;
        msg.header.flags = NeighbourFlags::Own;
        msg.header.state = NeighbourState::Permanent;
        msg.attributes = vec![
            NeighbourAttribute::LinkLayerAddress(mac.to_vec()),
            NeighbourAttribute::Destination(NeighbourAddress::Inet(node)),
        ];
        self.del_neighbour(msg, format!("delete fdb {}", fmt_mac(mac)))
            .await
    }

    /// The permanent IPv4 neighbours on link `index`: (address, MAC).
    pub async fn neighbours(&self, index: u32) -> Result<Vec<(Ipv4Addr, [u8; 6])>, NetError> {
        let msgs: Vec<NeighbourMessage> = self
            .handle
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Inet)
            .execute()
            .try_collect()
            .await
            .map_err(NetError::netlink("list neighbours"))?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.ifindex == index && m.header.state == NeighbourState::Permanent)
            .filter_map(|m| Some((dst_of(m)?, mac_of(m)?)))
            .collect())
    }

    /// Sets permanent neighbour `ip → mac` on link `index`.
    pub async fn neighbour_add(
        &self,
        index: u32,
        ip: Ipv4Addr,
        mac: [u8; 6],
    ) -> Result<(), NetError> {
        self.handle
            .neighbours()
            .add(index, IpAddr::V4(ip))
            .link_layer_address(&mac)
            .replace()
            .execute()
            .await
            .map_err(NetError::netlink(format!("add neighbour {ip}")))
    }

    /// Removes neighbour `ip` from link `index`; gone already is fine.
    pub async fn neighbour_del(&self, index: u32, ip: Ipv4Addr) -> Result<(), NetError> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.ifindex = index;
        msg.attributes = vec![NeighbourAttribute::Destination(NeighbourAddress::Inet(ip))];
        self.del_neighbour(msg, format!("delete neighbour {ip}"))
            .await
    }

    async fn del_neighbour(&self, msg: NeighbourMessage, op: String) -> Result<(), NetError> {
        match self.handle.neighbours().del(msg).execute().await {
            Err(e) if !matches!(errno(&e), Some(ENOENT) | Some(ENODEV)) => {
                Err(NetError::netlink(op)(e))
            }
            _ => Ok(()),
        }
    }
}

/// Whether a netlink failure says the object exists already.
pub fn is_exists(e: &NetError) -> bool {
    matches!(e, NetError::Netlink { source, .. } if errno(source) == Some(EEXIST))
}

fn link_of(m: &LinkMessage) -> Option<Link> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(Link {
            index: m.header.index,
            name: name.clone(),
        }),
        _ => None,
    })
}

fn mac_of(m: &NeighbourMessage) -> Option<[u8; 6]> {
    m.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(l) => l.as_slice().try_into().ok(),
        _ => None,
    })
}

fn dst_of(m: &NeighbourMessage) -> Option<Ipv4Addr> {
    m.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
        // FDB entries (AF_BRIDGE) carry the remote as raw bytes.
        NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
            <[u8; 4]>::try_from(b.as_slice()).ok().map(Ipv4Addr::from)
        }
        _ => None,
    })
}

/// `02:42:0a:00:09:05`.
pub fn fmt_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
