//! Putting renewed certificates to use, including role changes (`node
//! promote/demote`): a promoted node joins Raft and starts its manager, a
//! demoted one stops it and deletes its state.

use shoal_proto::credentials::NodeCredentials;
use shoal_proto::identity::NodeRole;
use shoal_proto::net::ClientTls;
use shoal_proto::shutdown::CancellationToken;

use crate::NodeError;
use crate::swarm::{NodeTls, SwarmNode};

impl SwarmNode {
    /// What renewal needs: the current credentials, the manager to ask (a
    /// manager asks itself; it forwards to the leader), and the node's
    /// client TLS. `None` outside a swarm.
    pub(crate) fn renewal_view(&self) -> Option<(NodeCredentials, String, ClientTls)> {
        let view = self.view.borrow();
        let file = view.file.as_ref()?;
        let tls = view.tls.clone()?;
        // The agent's manager is the leader; a manager may ask itself.
        let manager = view
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
    /// being one. Gives up with `Ok` if `stop` fires before the node's
    /// transition lock is free (the node is leaving or stopping).
    pub(crate) async fn apply_renewed(
        &self,
        creds: NodeCredentials,
        via: &str,
        stop: &CancellationToken,
    ) -> Result<(), NodeError> {
        let Some(mut running) = self.transition_or(stop).await else {
            return Ok(());
        };
        let mut file = self.file().ok_or(NodeError::NotInSwarm)?;
        let identity = creds.identity()?;
        if identity.node_id != file.node_id {
            return Err(NodeError::ForeignCertificate);
        }
        creds.save(&self.machine.creds_dir())?;
        let tls = NodeTls {
            client: self.node_tls()?.client,
            creds: creds.clone(),
        };
        tls.client.set(creds.client_config()?);
        self.view.send_modify(|v| v.tls = Some(tls.clone()));
        match (file.is_manager(), identity.role) {
            (false, NodeRole::Manager) => {
                file.role = "manager".into();
                running.manager = Some(self.join_raft(&mut file, &tls, via).await?);
                file.save(self.state_dir())?;
                tracing::info!(node = %file.node_id, "promoted: this node is now a manager");
            }
            (true, NodeRole::Worker) => {
                if let Some(manager) = running.manager.take() {
                    manager.stop().await;
                }
                if let Err(e) = std::fs::remove_dir_all(self.machine.manager_dir()) {
                    tracing::warn!(error = %e, "could not remove the old manager state");
                }
                file.role = "worker".into();
                file.raft_id = 0;
                file.save(self.state_dir())?;
                tracing::info!(node = %file.node_id, "demoted: this node is now a worker");
            }
            _ => {
                if let Some(manager) = &running.manager {
                    manager.reload_credentials(&creds)?;
                }
            }
        }
        self.view.send_modify(|v| v.file = Some(file));
        Ok(())
    }
}
