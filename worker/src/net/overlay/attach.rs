//! Local endpoints: a veth from a network's bridge into each task's
//! namespace, and the node's routing-mesh sandbox (an endpoint on the
//! ingress network plus a private link to the daemon's namespace).

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::network::NetNs;
use super::{OVERLAY_MTU, Overlay, names};
use crate::net::netlink::Netlink;
use crate::net::{Attachment, NetError, ns};

/// The daemon's end of the link to the routing-mesh sandbox.
pub const MESH_HOST_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 250, 1);
/// The sandbox's end of that link.
pub const MESH_SANDBOX_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 250, 2);
/// The link's prefix length.
pub const MESH_PREFIX: u8 = 30;
/// The MTU of the sandbox link (plain veth, no encapsulation).
const MESH_MTU: u32 = 1500;

/// The node's routing-mesh sandbox, as the load balancer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// Where its namespace is pinned.
    pub netns: PathBuf,
    /// Its address on the ingress network.
    pub ingress_addr: Ipv4Addr,
    /// The daemon-side interface of the link into it.
    pub host_if: String,
    /// The daemon-side address of that link.
    pub host_addr: Ipv4Addr,
    /// The sandbox-side interface of that link.
    pub sandbox_if: String,
    /// The sandbox-side address of that link (its default gateway is
    /// `host_addr`).
    pub sandbox_addr: Ipv4Addr,
}

impl Overlay {
    /// Wires task `task_id`'s namespace at `netns` into its networks: for
    /// the `n`th attachment, `ethN` with the attachment's MAC and address,
    /// its other end on the network's bridge; `lo` up. Idempotent: a retry
    /// (after a daemon restart, say) finds what is there and completes it.
    pub async fn attach(
        &mut self,
        task_id: &str,
        netns: &Path,
        attachments: &[Attachment],
    ) -> Result<(), NetError> {
        let task_ns = ns::open(netns)?;
        let task = Netlink::open(&task_ns).await?;
        if let Some(lo) = task.index("lo").await? {
            task.up(lo).await?;
        }
        for (n, a) in attachments.iter().enumerate() {
            let net = self.network(&a.network_id).await?;
            plug(net, &task, &task_ns, task_id, n, a).await?;
        }
        Ok(())
    }

    /// Unplugs task `task_id` from every network: deletes its veths (their
    /// task-side ends go with them). Nothing attached is fine.
    pub async fn detach(&mut self, task_id: &str) -> Result<(), NetError> {
        let ours = names::task_veth_prefix(task_id);
        let mut first_error = None;
        for path in ns::list(&self.dir, &names::network_ns_prefix(&self.prefix)) {
            let temp;
            let net = match self.networks.values().find(|n| n.path == path) {
                Some(net) => net,
                None => {
                    temp = NetNs::adopt_any(path).await?;
                    &temp
                }
            };
            for l in net.nl.links().await? {
                if l.name.starts_with(&ours)
                    && let Err(e) = net.nl.del(l.index).await
                {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Sets up the node's routing-mesh sandbox: a namespace attached to
    /// the ingress network (sync the view first) with this node's ingress
    /// address, and a veth link to the daemon's namespace
    /// ([`MESH_HOST_ADDR`] ↔ [`MESH_SANDBOX_ADDR`]) that is the sandbox's
    /// default route; forwarding on inside. Idempotent.
    pub async fn sandbox(&mut self, ingress: &Attachment) -> Result<Sandbox, NetError> {
        let path = self.dir.join(names::sandbox_ns(&self.prefix));
        if !ns::exists(&path) {
            ns::create(&path).await?;
        }
        self.attach(names::SANDBOX_TASK, &path, std::slice::from_ref(ingress))
            .await?;

        let sandbox_ns = ns::open(&path)?;
        let sandbox = Netlink::open(&sandbox_ns).await?;
        let host_if = names::mesh_host_if(&self.prefix);
        let home = self.home_nl().await?;
        if sandbox.index(names::MESH_SANDBOX_IF).await?.is_none() {
            // A daemon-side end whose peer vanished with an old sandbox.
            if let Some(stale) = home.index(&host_if).await? {
                home.del(stale).await?;
            }
            home.add_veth(
                &host_if,
                names::MESH_SANDBOX_IF,
                &sandbox_ns,
                None,
                MESH_MTU,
            )
            .await?;
        }
        let h = need(home, &host_if, "the daemon's namespace").await?;
        home.add_address(h, MESH_HOST_ADDR, MESH_PREFIX).await?;
        home.up(h).await?;
        let s = need(&sandbox, names::MESH_SANDBOX_IF, "the sandbox").await?;
        sandbox
            .add_address(s, MESH_SANDBOX_ADDR, MESH_PREFIX)
            .await?;
        sandbox.up(s).await?;
        sandbox.default_route(MESH_HOST_ADDR).await?;
        ns::sysctl(&sandbox_ns, "net/ipv4/ip_forward", "1").await?;
        Ok(Sandbox {
            netns: path,
            ingress_addr: ingress.ip,
            host_if,
            host_addr: MESH_HOST_ADDR,
            sandbox_if: names::MESH_SANDBOX_IF.to_string(),
            sandbox_addr: MESH_SANDBOX_ADDR,
        })
    }
}

/// Plugs the `n`th attachment of a task into network `net`.
async fn plug(
    net: &NetNs,
    task: &Netlink,
    task_ns: &File,
    task_id: &str,
    n: usize,
    a: &Attachment,
) -> Result<(), NetError> {
    let bridge = net.bridge.ok_or_else(|| NetError::MissingLink {
        name: names::BRIDGE.into(),
        ns: net.path.clone(),
    })?;
    let (host, eth) = (names::task_veth(task_id, n), names::task_if(n));
    let mut host_end = net.nl.index(&host).await?;
    let task_end = task.index(&eth).await?;
    if host_end.is_some() != task_end.is_some() {
        // Half a pair from an interrupted attach: start over.
        for (nl, index) in [(&net.nl, host_end), (task, task_end)] {
            if let Some(i) = index {
                nl.del(i).await?;
            }
        }
        host_end = None;
    }
    if host_end.is_none() {
        net.nl
            .add_veth(&host, &eth, task_ns, Some(a.mac), OVERLAY_MTU)
            .await?;
    }
    let h = net.need(&host).await?;
    net.nl.enslave(h, bridge).await?;
    let t = need(task, &eth, "the task").await?;
    task.add_address(t, a.ip, a.prefix).await?;
    task.up(t).await
}

/// The index of link `name` in a namespace described by `where_`.
pub(super) async fn need(nl: &Netlink, name: &str, where_: &str) -> Result<u32, NetError> {
    nl.index(name).await?.ok_or_else(|| NetError::MissingLink {
        name: name.to_string(),
        ns: PathBuf::from(where_),
    })
}
