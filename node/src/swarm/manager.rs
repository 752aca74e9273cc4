//! Starting this node's manager: from its swarm file, and as a new Raft
//! member through a manager that is one (join, promotion).

use shoal_manager::raft::node::RaftConfig;
use shoal_manager::runtime::{Bootstrap, Manager, ManagerConfig};
use shoal_manager::seal::UnlockKey;
use shoal_proto::raft::JoinRequest;
use shoal_proto::raft::raft_membership_client::RaftMembershipClient;

use super::{NodeTls, SwarmNode};
use crate::NodeError;
use crate::addr;
use crate::swarm_file::SwarmFile;

impl SwarmNode {
    /// Starts the manager `file` describes, as a branch of the node's
    /// shutdown tree.
    pub(super) async fn start_manager(
        &self,
        file: &SwarmFile,
        tls: &NodeTls,
        bootstrap: Bootstrap,
        unlock_key: Option<UnlockKey>,
    ) -> Result<Manager, NodeError> {
        let config = ManagerConfig {
            dir: self.machine.manager_dir(),
            node_id: file.node_id.clone(),
            raft_id: file.raft_id,
            listen: addr::listen(&file.listen_addr).map_err(NodeError::Address)?,
            advertise: file.advertise_addr.clone(),
            credentials: tls.creds.clone(),
            client_tls: tls.client.clone(),
            raft: RaftConfig::new(file.raft_id),
            unlock_key,
        };
        let slot = self.slot.clone();
        Ok(Manager::start_under(config, bootstrap, slot, &self.shutdown).await?)
    }

    /// Joins Raft through the manager at `via` (this node holds a manager
    /// certificate) and starts the manager from the members it answers
    /// with; records the Raft id and managers in `file`.
    pub(crate) async fn join_raft(
        &self,
        file: &mut SwarmFile,
        tls: &NodeTls,
        via: &str,
    ) -> Result<Manager, NodeError> {
        let mut membership =
            RaftMembershipClient::new(shoal_proto::net::channel(via, tls.client.clone()));
        let joined = membership
            .join(JoinRequest {
                addr: file.advertise_addr.clone(),
            })
            .await
            .map_err(|s| super::join::join_error(via, s))?
            .into_inner();
        file.raft_id = joined.raft_id;
        file.managers = joined.members.iter().map(|m| m.addr.clone()).collect();
        let bootstrap = Bootstrap::Join {
            peers: joined.members,
        };
        self.start_manager(file, tls, bootstrap, None).await
    }
}
