//! Overlay networks on one node: per network a namespace holding a bridge
//! (with the subnet's gateway) and a VXLAN device, static FDB and
//! neighbour entries for every remote endpoint, and a veth into each
//! local task's namespace. One [`Overlay`] per daemon, owned by one actor.
//!
//! The VXLAN device is created in the daemon's own namespace, so its UDP
//! socket lives there on the underlay, then moved into the network's
//! namespace and enslaved to the bridge (as Docker does). Each network
//! having its own namespace is what lets subnets overlap.
//!
//! Everything is found by name, so a restarted daemon adopts what its
//! previous run made: every call is idempotent.

mod attach;
mod egress;
pub mod names;
mod network;
pub mod plan;

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub use attach::{MESH_HOST_ADDR, MESH_PREFIX, MESH_SANDBOX_ADDR, Sandbox};
pub use egress::{EGRESS_GATEWAY, EGRESS_POOL};
use network::NetNs;

use super::netlink::Netlink;
use super::{NetError, NetworkView, ns};

/// The MTU inside overlays: 1500 on the underlay less VXLAN's 50 bytes.
pub const OVERLAY_MTU: u32 = 1450;

/// One daemon's overlay data plane.
pub struct Overlay {
    /// Carried by every namespace and interface name this daemon makes.
    prefix: String,
    /// The VXLAN source address (this node's underlay address).
    node_addr: Ipv4Addr,
    /// The VXLAN UDP port.
    vxlan_port: u16,
    /// Where namespaces are pinned.
    dir: PathBuf,
    /// The daemon's own namespace (the underlay).
    home: File,
    /// A connection into `home`, opened on first use.
    home_nl: Option<Netlink>,
    /// Network namespaces set up (or adopted) so far, by network id.
    networks: HashMap<String, NetNs>,
}

impl Overlay {
    /// An overlay working from the calling thread's namespace.
    pub fn new(prefix: &str, node_addr: Ipv4Addr, vxlan_port: u16) -> Result<Self, NetError> {
        Self::with_home(prefix, node_addr, vxlan_port, ns::current()?)
    }

    /// An overlay working from namespace `home` (tests run several
    /// "nodes" in one process this way).
    pub fn with_home(
        prefix: &str,
        node_addr: Ipv4Addr,
        vxlan_port: u16,
        home: File,
    ) -> Result<Self, NetError> {
        names::check_prefix(prefix)?;
        Ok(Self {
            prefix: prefix.to_string(),
            node_addr,
            vxlan_port,
            dir: PathBuf::from(ns::NETNS_DIR),
            home,
            home_nl: None,
            networks: HashMap::new(),
        })
    }

    /// Pins namespaces in `dir` instead of /run/netns.
    pub fn with_netns_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = dir.into();
        self
    }

    /// The prefix of every name this daemon makes.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The name of network `network_id`'s namespace.
    pub fn network_ns_name(&self, network_id: &str) -> String {
        names::network_ns(&self.prefix, network_id)
    }

    /// Where the namespace of network `network_id` is pinned.
    pub fn network_ns_path(&self, network_id: &str) -> PathBuf {
        self.dir.join(self.network_ns_name(network_id))
    }

    /// The connection into the daemon's namespace.
    async fn home_nl(&mut self) -> Result<&Netlink, NetError> {
        if self.home_nl.is_none() {
            self.home_nl = Some(Netlink::open(&self.home).await?);
        }
        self.home_nl
            .as_ref()
            .ok_or_else(|| NetError::UnknownNetwork("home".into()))
    }

    /// Makes the node match the view: every network set up with its
    /// peers, entries and networks that left removed (a network only once
    /// no local task is attached to it). Goes on past a failing network
    /// and returns the first failure.
    pub async fn sync(&mut self, view: &NetworkView) -> Result<(), NetError> {
        let (plans, mut errors) = plan::plan(view, self.node_addr);
        for p in plans.values() {
            if let Err(e) = self.sync_network(p).await {
                errors.push(e);
            }
        }
        let wanted: BTreeSet<PathBuf> = plans.keys().map(|id| self.network_ns_path(id)).collect();
        let prefix = names::network_ns_prefix(&self.prefix);
        for path in ns::list(&self.dir, &prefix) {
            if !wanted.contains(&path)
                && let Err(e) = self.retire_network(&path).await
            {
                errors.push(e);
            }
        }
        for e in &errors {
            tracing::warn!(error = %e, "overlay sync");
        }
        errors.into_iter().next().map_or(Ok(()), Err)
    }

    /// Sets up one network and programs its peers.
    async fn sync_network(&mut self, p: &plan::NetworkPlan) -> Result<(), NetError> {
        if !self.networks.contains_key(&p.id) {
            let path = self.network_ns_path(&p.id);
            let net = NetNs::ensure(self, path, p).await?;
            self.networks.insert(p.id.clone(), net);
        }
        let net = self
            .networks
            .get(&p.id)
            .ok_or_else(|| NetError::UnknownNetwork(p.id.clone()))?;
        match net.program(&p.peers).await {
            Ok(()) => Ok(()),
            Err(e) => {
                // Perhaps someone deleted it under us: rebuild next time.
                self.networks.remove(&p.id);
                Err(e)
            }
        }
    }

    /// Removes a network namespace that left the view, unless a local
    /// task is still attached to it.
    async fn retire_network(&mut self, path: &Path) -> Result<(), NetError> {
        let cached = self
            .networks
            .iter()
            .find(|(_, n)| n.path == path)
            .map(|(id, _)| id.clone());
        let net = match cached.and_then(|id| self.networks.remove(&id)) {
            Some(net) => net,
            None => NetNs::adopt(path.to_path_buf()).await?,
        };
        if net.in_use().await? {
            tracing::debug!(ns = %path.display(), "network left the view but a task still uses it");
            return Ok(());
        }
        tracing::info!(ns = %path.display(), "removing overlay network");
        net.remove().await
    }

    /// The set-up network `id`, adopting its namespace from a previous
    /// run of the daemon if need be.
    async fn network(&mut self, id: &str) -> Result<&NetNs, NetError> {
        if !self.networks.contains_key(id) {
            let path = self.network_ns_path(id);
            if !ns::exists(&path) {
                return Err(NetError::UnknownNetwork(id.to_string()));
            }
            let net = NetNs::adopt(path).await?;
            self.networks.insert(id.to_string(), net);
        }
        self.networks
            .get(id)
            .ok_or_else(|| NetError::UnknownNetwork(id.to_string()))
    }

    /// Removes every namespace and interface this daemon made (`swarm
    /// leave`; a plain daemon stop leaves them for the next run to adopt).
    /// Goes on past failures and returns the first.
    pub async fn remove_all(&mut self) -> Result<(), NetError> {
        let mut errors = Vec::new();
        // Our namespaces must not be pinned by our own sockets.
        self.networks.clear();
        let prefix = self.prefix.clone();
        let home = self.home_nl().await?;
        // The sandbox link's daemon-side end, tasks' egress links and
        // half-made VXLAN devices (created, not yet moved) live in the
        // daemon's namespace.
        match home.links().await {
            Ok(links) => {
                for l in links {
                    let ours = l.name == names::mesh_host_if(&prefix)
                        || names::is_vxlan(&prefix, &l.name)
                        || names::is_egress_veth(&prefix, &l.name);
                    if ours && let Err(e) = home.del(l.index).await {
                        errors.push(e);
                    }
                }
            }
            Err(e) => errors.push(e),
        }
        for path in ns::list(&self.dir, &names::ns_prefix(&prefix)) {
            let removed = match NetNs::adopt_any(path).await {
                Ok(net) => net.remove().await,
                Err(e) => Err(e),
            };
            if let Err(e) = removed {
                errors.push(e);
            }
        }
        errors.into_iter().next().map_or(Ok(()), Err)
    }
}
