//! One network's namespace on this node: set up (bridge with the gateway
//! address, VXLAN device enslaved to it), peers programmed as static FDB
//! and neighbour entries, and torn down.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use rtnetlink::{LinkBridge, LinkVxlan};

use super::plan::{NetworkPlan, Peer};
use super::{OVERLAY_MTU, Overlay, names};
use crate::net::netlink::Netlink;
use crate::net::{NetError, ns};

/// A namespace of ours, with a connection into it.
pub(super) struct NetNs {
    /// Where it is pinned.
    pub path: PathBuf,
    /// The namespace itself (to move links into it).
    pub file: File,
    /// A connection inside it.
    pub nl: Netlink,
    /// The bridge, in a network namespace.
    pub bridge: Option<u32>,
    /// The VXLAN device, in a network namespace.
    pub vxlan: Option<u32>,
}

impl NetNs {
    /// Opens a namespace of ours as it is, whatever it holds.
    pub async fn adopt_any(path: PathBuf) -> Result<Self, NetError> {
        let file = ns::open(&path)?;
        let nl = Netlink::open(&file).await?;
        let links = nl.links().await?;
        let find =
            |pred: &dyn Fn(&str) -> bool| links.iter().find(|l| pred(&l.name)).map(|l| l.index);
        Ok(Self {
            bridge: find(&|n| n == names::BRIDGE),
            // Only our links live in a network namespace: the VXLAN
            // device is the one named `v…`.
            vxlan: find(&|n| n.starts_with('v')),
            path,
            file,
            nl,
        })
    }

    /// Opens a network namespace left by a previous run of the daemon.
    pub async fn adopt(path: PathBuf) -> Result<Self, NetError> {
        let net = Self::adopt_any(path).await?;
        match net.bridge {
            Some(_) => Ok(net),
            None => Err(NetError::MissingLink {
                name: names::BRIDGE.into(),
                ns: net.path,
            }),
        }
    }

    /// Creates (or completes) the namespace of network `p` at `path`.
    pub async fn ensure(
        ov: &mut Overlay,
        path: PathBuf,
        p: &NetworkPlan,
    ) -> Result<Self, NetError> {
        if !ns::exists(&path) {
            tracing::info!(network = %p.id, vni = p.vni, ns = %path.display(), "creating overlay network");
            ns::create(&path).await?;
        }
        let mut net = Self::adopt_any(path).await?;
        let bridge = match net.bridge {
            Some(i) => i,
            None => {
                let msg = LinkBridge::new(names::BRIDGE).mtu(OVERLAY_MTU).build();
                net.nl.add(names::BRIDGE, msg).await?;
                net.need(names::BRIDGE).await?
            }
        };
        net.bridge = Some(bridge);
        net.nl.add_address(bridge, p.gateway, p.prefix).await?;
        net.nl.up(bridge).await?;

        let name = names::vxlan(&ov.prefix, p.vni);
        let vxlan = match net.nl.index(&name).await? {
            Some(i) => i,
            None => {
                create_vxlan(ov, &name, p.vni, &net.file).await?;
                net.need(&name).await?
            }
        };
        net.vxlan = Some(vxlan);
        net.nl.enslave(vxlan, bridge).await?;
        Ok(net)
    }

    /// The index of link `name`, which must exist.
    pub async fn need(&self, name: &str) -> Result<u32, NetError> {
        self.nl
            .index(name)
            .await?
            .ok_or_else(|| NetError::MissingLink {
                name: name.to_string(),
                ns: self.path.clone(),
            })
    }

    /// Makes the VXLAN device's FDB and neighbour entries exactly `peers`.
    pub async fn program(&self, peers: &BTreeSet<Peer>) -> Result<(), NetError> {
        let vxlan = self.vxlan.ok_or_else(|| NetError::MissingLink {
            name: "vxlan".into(),
            ns: self.path.clone(),
        })?;
        let want: BTreeSet<([u8; 6], Ipv4Addr)> = peers.iter().map(|p| (p.mac, p.node)).collect();
        let have: BTreeSet<_> = self.nl.fdb(vxlan).await?.into_iter().collect();
        for (mac, node) in have.difference(&want) {
            self.nl.fdb_del(vxlan, *mac, *node).await?;
        }
        for (mac, node) in want.difference(&have) {
            self.nl.fdb_add(vxlan, *mac, *node).await?;
        }
        // The VXLAN device answers ARP from these (proxy mode): no
        // broadcast ever crosses the underlay.
        let want: BTreeSet<(Ipv4Addr, [u8; 6])> = peers.iter().map(|p| (p.ip, p.mac)).collect();
        let have: BTreeSet<_> = self.nl.neighbours(vxlan).await?.into_iter().collect();
        for (ip, _) in have.difference(&want) {
            if !want.iter().any(|(w, _)| w == ip) {
                self.nl.neighbour_del(vxlan, *ip).await?;
            }
        }
        for (ip, mac) in want.difference(&have) {
            self.nl.neighbour_add(vxlan, *ip, *mac).await?;
        }
        Ok(())
    }

    /// Whether a local task (or the sandbox) is attached.
    pub async fn in_use(&self) -> Result<bool, NetError> {
        Ok(self
            .nl
            .links()
            .await?
            .iter()
            .any(|l| names::is_task_veth(&l.name)))
    }

    /// Deletes every link inside (so the VXLAN port and the tasks' ends
    /// go now, not when the kernel gets round to the namespace), then
    /// unpins the namespace.
    pub async fn remove(self) -> Result<(), NetError> {
        for l in self.nl.links().await? {
            if l.name != "lo" {
                self.nl.del(l.index).await?;
            }
        }
        let path = self.path.clone();
        // Our socket and file pin the namespace: let go of both first.
        drop(self);
        ns::remove(&path)
    }
}

/// Creates VXLAN device `name` in the daemon's namespace (its UDP socket
/// binds there, on the underlay) and moves it into `target`.
async fn create_vxlan(
    ov: &mut Overlay,
    name: &str,
    vni: u32,
    target: &File,
) -> Result<(), NetError> {
    let (local, port) = (ov.node_addr, ov.vxlan_port);
    let home = ov.home_nl().await?;
    // A device made by a run that died before moving it.
    if let Some(stale) = home.index(name).await? {
        home.del(stale).await?;
    }
    let msg = LinkVxlan::new(name, vni)
        .local(local)
        .port(port)
        .learning(false)
        .proxy(true)
        .mtu(OVERLAY_MTU)
        .build();
    home.add(name, msg).await?;
    let index = home
        .index(name)
        .await?
        .ok_or_else(|| NetError::MissingLink {
            name: name.to_string(),
            ns: PathBuf::from("the daemon's namespace"),
        })?;
    home.move_to(index, target).await
}
