//! Egress: a task reaches addresses outside the cluster through its node,
//! as Swarm's `docker_gwbridge` gives every task. Routed rather than
//! bridged: a veth from the task's namespace to the daemon's, the task's
//! address from the node's [`EGRESS_POOL`] with a /32 route pointing back
//! at it, and the daemon-side end holding [`EGRESS_GATEWAY`] (the task's
//! default gateway, the same on every link, as Calico does). The node
//! masquerades what leaves the pool (`lb::nft::node_rules`).
//!
//! The daemon's routing table is the record of which addresses are taken,
//! so a restarted daemon allocates around the tasks it adopts without a
//! file of its own.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;

use super::attach::need;
use super::{Overlay, names};
use crate::net::netlink::Netlink;
use crate::net::{NetError, ns};

/// Every node's task egress addresses: the last of Docker's default bridge
/// pools (172.17–31.0.0/16), the least likely to meet one of Docker's own
/// networks on a node that runs both.
pub const EGRESS_POOL: (Ipv4Addr, u8) = (Ipv4Addr::new(172, 31, 0, 0), 16);
/// The gateway every task sees on its egress link (link-local: it never
/// leaves the link).
pub const EGRESS_GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The egress link's MTU: a plain veth to the node.
const EGRESS_MTU: u32 = 1500;

/// Whether `ip` is in the egress pool.
pub fn in_pool(ip: Ipv4Addr) -> bool {
    let (net, prefix) = EGRESS_POOL;
    let mask = u32::MAX << (32 - u32::from(prefix));
    u32::from(ip) & mask == u32::from(net)
}

/// The lowest pool address (from `.0.2`) not in `taken`.
fn first_free(taken: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let (net, prefix) = EGRESS_POOL;
    let base = u32::from(net);
    let size = 1u32 << (32 - u32::from(prefix));
    (2..size - 1)
        .map(|i| Ipv4Addr::from(base + i))
        .find(|ip| !taken.contains(ip))
}

impl Overlay {
    /// Gives task `task_id` (namespace `netns`) its egress link as
    /// interface `eth<n>`, keeping the address it already has (a restarted
    /// daemon adopting it). Returns the task's egress address.
    pub async fn egress(
        &mut self,
        task_id: &str,
        netns: &Path,
        n: usize,
    ) -> Result<Ipv4Addr, NetError> {
        let task_ns = ns::open(netns)?;
        let task = Netlink::open(&task_ns).await?;
        let host_if = names::egress_veth(&self.prefix, task_id);
        let task_if = names::task_if(n);
        let home = self.home_nl().await?;
        let routes = home.routes().await?;
        let host_end = home.index(&host_if).await?;
        let task_end = task.index(&task_if).await?;
        // Both ends and a route: a link from before (a restarted daemon).
        let kept = match (host_end, task_end) {
            (Some(h), Some(_)) => routes
                .iter()
                .find(|(ip, prefix, oif)| *prefix == 32 && *oif == Some(h) && in_pool(*ip))
                .map(|(ip, _, _)| *ip),
            _ => None,
        };
        let addr = match kept {
            Some(addr) => addr,
            None => {
                // Half of one from an interrupted attach goes first.
                if let Some(h) = host_end {
                    home.del(h).await?;
                }
                if let Some(t) = task_end {
                    task.del(t).await?;
                }
                let taken: BTreeSet<Ipv4Addr> = routes
                    .iter()
                    .filter(|(ip, prefix, _)| *prefix == 32 && in_pool(*ip))
                    .map(|(ip, _, _)| *ip)
                    .collect();
                let addr = first_free(&taken).ok_or(NetError::EgressPoolFull)?;
                home.add_veth(&host_if, &task_if, &task_ns, None, EGRESS_MTU)
                    .await?;
                addr
            }
        };
        let h = need(home, &host_if, "the daemon's namespace").await?;
        home.add_address(h, EGRESS_GATEWAY, 32).await?;
        home.up(h).await?;
        home.route_dev(addr, 32, h).await?;
        let t = need(&task, &task_if, "the task").await?;
        task.add_address(t, addr, 32).await?;
        task.up(t).await?;
        task.route_dev(EGRESS_GATEWAY, 32, t).await?;
        task.default_route(EGRESS_GATEWAY).await?;
        Ok(addr)
    }

    /// Removes task `task_id`'s egress link (its route goes with it).
    pub async fn egress_remove(&mut self, task_id: &str) -> Result<(), NetError> {
        let host_if = names::egress_veth(&self.prefix, task_id);
        let home = self.home_nl().await?;
        if let Some(h) = home.index(&host_if).await? {
            home.del(h).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_the_lowest_free_pool_address() {
        let mut taken = BTreeSet::new();
        assert_eq!(first_free(&taken), Some(Ipv4Addr::new(172, 31, 0, 2)));
        taken.insert(Ipv4Addr::new(172, 31, 0, 2));
        taken.insert(Ipv4Addr::new(172, 31, 0, 4));
        assert_eq!(first_free(&taken), Some(Ipv4Addr::new(172, 31, 0, 3)));
        assert!(in_pool(Ipv4Addr::new(172, 31, 200, 9)));
        assert!(!in_pool(Ipv4Addr::new(172, 30, 0, 9)));
    }
}
