//! The seam between task actors and the data plane: a task is wired into
//! its networks after its engine prepared its namespace and before its
//! process starts, and unwired when it is removed.

use std::path::Path;
use std::time::Duration;

use shoal_proto::objects::Task;

use super::NetError;
use super::dns::DnsError;
use super::lb::LbError;

/// What task actors need from the data plane.
#[tonic::async_trait]
pub trait DataPlane: Send + Sync + 'static {
    /// Plugs the task's namespace into every network it is attached to.
    async fn attach(&self, task: &Task, netns: &Path) -> Result<(), AttachError>;
    /// Unplugs the task (it is being removed).
    async fn detach(&self, task_id: &str);
}

/// Why a task could not be wired into its networks. The task actor
/// reports it as the task's failure ("network attach failed: ...").
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The managers' view did not name the task's networks in time.
    #[error("the managers did not describe networks {networks:?} within {waited:?}")]
    NoView {
        /// The networks waited for.
        networks: Vec<String>,
        /// How long.
        waited: Duration,
    },
    /// The view gives this node an address the overlay cannot use.
    #[error("node address {0:?} is not IPv4")]
    NodeAddr(String),
    /// Links, namespaces or routes.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The task's resolver.
    #[error(transparent)]
    Dns(#[from] DnsError),
    /// The task's VIP rules.
    #[error(transparent)]
    Lb(#[from] LbError),
    /// The thread that loads the rules did not finish.
    #[error(transparent)]
    Join(#[from] tokio::task::JoinError),
}
