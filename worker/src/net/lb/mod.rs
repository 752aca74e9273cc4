//! Load balancing behind one trait: service VIPs inside task namespaces,
//! and the routing mesh (the daemon's namespace and the node's ingress
//! sandbox). The worker computes backend-neutral plans from the view
//! ([`vip_plan`], [`mesh_plan`], [`node_plan`]) and hands them to the
//! backend [`choose`] picked: IPVS where the kernel has it, nftables
//! otherwise. Both resync whole state each time: a task that stops being
//! ready in the view is out of rotation after the next sync.

mod ipvs;
mod nft;
mod plan;

use std::path::Path;

pub use ipvs::{Ipvs, ipvs_available};
pub use nft::{Nftables, TABLE};
pub use plan::{
    MeshPlan, NodePlan, Proto, Published, SANDBOX_LINK_ADDR, Vip, VipPlan, mesh_plan, node_plan,
    vip_plan,
};

/// Errors programming a namespace.
#[derive(Debug, thiserror::Error)]
pub enum LbError {
    /// Entering the namespace or starting `nft`.
    #[error("running nft in {netns}: {source}")]
    Spawn {
        /// The namespace.
        netns: String,
        /// Why.
        source: std::io::Error,
    },
    /// `nft` refused the script.
    #[error("nft rejected the rules in {netns}: {stderr}")]
    Nft {
        /// The namespace.
        netns: String,
        /// What nft said.
        stderr: String,
    },
    /// Turning forwarding on.
    #[error("setting ip_forward in {netns}: {source}")]
    Sysctl {
        /// The namespace.
        netns: String,
        /// Why.
        source: std::io::Error,
    },
    /// Talking to IPVS over generic netlink.
    #[error("ipvs in {netns}: {source}")]
    Ipvs {
        /// The namespace.
        netns: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A load-balancing backend. Every call replaces the namespace's whole
/// state with the plan's; calls block (namespace threads, `nft`), so async
/// callers use `spawn_blocking`.
pub trait LoadBalancer: Send + Sync {
    /// The backend's name, for logs.
    fn name(&self) -> &'static str;
    /// VIP balancing inside a task's namespace.
    fn sync_task(&self, netns: &Path, plan: &VipPlan) -> Result<(), LbError>;
    /// The routing-mesh sandbox's balancing.
    fn sync_sandbox(&self, netns: &Path, plan: &MeshPlan) -> Result<(), LbError>;
    /// Published ports in the daemon's own namespace.
    fn sync_node(&self, netns: &Path, plan: &NodePlan) -> Result<(), LbError>;
    /// Removes everything this backend programmed in `netns`.
    fn clear(&self, netns: &Path) -> Result<(), LbError>;
}

/// IPVS when the kernel has it, nftables otherwise.
pub fn choose() -> Box<dyn LoadBalancer> {
    if ipvs_available() {
        Box::new(Ipvs)
    } else {
        Box::new(Nftables)
    }
}
