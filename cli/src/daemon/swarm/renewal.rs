//! Putting renewed certificates to use, including role changes
//! (`node promote/demote`).

use super::*;

impl SwarmNode {
    /// What renewal needs: the current credentials, the
    /// manager to ask (a manager asks itself; it forwards to the leader),
    /// and the node's client TLS. `None` outside a swarm.
    pub async fn renewal_view(&self) -> Option<(NodeCredentials, String, ClientTls)> {
        let inner = self.inner.lock().await;
        let file = inner.file.as_ref()?;
        let tls = inner.tls.clone()?;
        // The agent's manager is the leader; a manager may ask itself.
        let manager = inner
            .session
            .as_ref()
            .and_then(|s| s.borrow().manager.clone())
            .or_else(|| file.is_manager().then(|| file.advertise_addr.clone()))
            .or_else(|| file.managers.first().cloned())?;
        Some((tls.creds, manager, tls.client))
    }

    /// Puts renewed credentials to use: on disk, in the node's client TLS,
    /// and on the manager's cluster port; and when the certificate carries
    /// a new role, becomes a manager (joins Raft through `via`) or stops
    /// being one.
    pub async fn apply_renewed(&self, creds: NodeCredentials, via: &str) -> anyhow::Result<()> {
        let mut inner = self.inner.lock().await;
        let mut file = inner
            .file
            .clone()
            .ok_or_else(|| anyhow::anyhow!("left the swarm meanwhile"))?;
        let identity = creds.identity()?;
        anyhow::ensure!(
            identity.node_id == file.node_id,
            "renewed credentials name another node"
        );
        creds.save(&self.creds_dir())?;
        let tls = NodeTls {
            client: inner.node_tls()?.client,
            creds: creds.clone(),
        };
        tls.client.set(creds.client_config()?);
        inner.tls = Some(tls.clone());
        match (file.is_manager(), identity.role) {
            (false, NodeRole::Manager) => {
                file.role = "manager".into();
                inner.manager = Some(self.join_raft(&mut file, &tls, via).await?);
                file.save(&self.state_dir)?;
                tracing::info!(node = %file.node_id, "promoted: this node is now a manager");
            }
            (true, NodeRole::Worker) => {
                if let Some(manager) = inner.manager.take() {
                    manager.stop().await;
                }
                if let Err(e) = std::fs::remove_dir_all(self.manager_dir()) {
                    tracing::warn!(error = %e, "could not remove the old manager state");
                }
                file.role = "worker".into();
                file.raft_id = 0;
                file.save(&self.state_dir)?;
                tracing::info!(node = %file.node_id, "demoted: this node is now a worker");
            }
            _ => {
                if let Some(manager) = &inner.manager {
                    manager.reload_credentials(&creds)?;
                }
            }
        }
        inner.file = Some(file);
        Ok(())
    }
}
