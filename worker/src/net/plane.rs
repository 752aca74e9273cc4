//! The seam between task actors and the data plane: a task is wired into
//! its networks after its engine prepared its namespace and before its
//! process starts, and unwired when it is removed.

use std::path::Path;

use shoal_proto::objects::Task;

/// What task actors need from the data plane.
#[tonic::async_trait]
pub trait DataPlane: Send + Sync + 'static {
    /// Plugs the task's namespace into every network it is attached to.
    async fn attach(&self, task: &Task, netns: &Path) -> Result<(), String>;
    /// Unplugs the task (it is being removed).
    async fn detach(&self, task_id: &str);
}
