//! `swarm leave`: out of Raft (a manager), the node's tasks and data
//! plane removed, the swarm's files deleted.

use super::{SwarmNode, View};
use crate::NodeError;

impl SwarmNode {
    /// `swarm leave`; a manager leaves only with `force`.
    pub async fn leave(&self, force: bool) -> Result<(), NodeError> {
        let mut running = self.transition.lock().await;
        let file = self.file().ok_or(NodeError::NotInSwarm)?;
        if file.is_manager() && !force {
            return Err(NodeError::LeavingManager);
        }
        if let Some(manager) = running.manager.take() {
            let ctx = manager.context().clone();
            if ctx.raft.status().members.len() > 1
                && let Err(e) = ctx.raft.remove_member(file.raft_id).await
            {
                tracing::warn!(error = %e, "could not remove this manager from raft before leaving");
            }
            manager.stop().await;
        }
        if let Some(member) = running.member.take() {
            // Leaving takes the node's tasks with it, as Docker does.
            member.remove_all().await;
            member.stop().await;
        }
        self.view.send_replace(View::default());
        self.forget()?;
        tracing::info!(node = %file.node_id, "left the swarm");
        Ok(())
    }
}
