//! `swarm init`, and `--force-new-cluster` for disaster recovery. What a
//! new cluster holds is the manager's to say
//! (`shoal_manager::runtime::bootstrap`); this is the node's part: its
//! addresses, keys and certificate, and its files.

use std::time::Duration;

use shoal_manager::ca::{JoinTokens, RootCa};
use shoal_manager::runtime::Bootstrap;
use shoal_manager::runtime::bootstrap::{self, ClusterSettings, FOUNDER_RAFT_ID, Founder};
use shoal_manager::seal::UnlockKey;
use shoal_proto::credentials::NodeCredentials;
use shoal_proto::identity::{NodeIdentity, NodeKey, NodeRole, new_id, new_node_id};
use shoal_proto::local::{SwarmInitRequest, SwarmInitResponse};
use shoal_proto::store::StoreSnapshot;

use super::{NodeTls, Running, SwarmNode};
use crate::NodeError;
use crate::addr;
use crate::swarm_file::SwarmFile;

impl SwarmNode {
    /// `swarm init`.
    pub async fn init(&self, request: SwarmInitRequest) -> Result<SwarmInitResponse, NodeError> {
        let mut running = self.transition.lock().await;
        if request.force_new_cluster {
            return self.force_new_cluster(&mut running).await;
        }
        self.init_cluster(&mut running, request, None).await
    }

    /// A new cluster with this node as its first manager; `restored` is
    /// what a backup brings back (its cluster settings replace the
    /// request's).
    pub(super) async fn init_cluster(
        &self,
        running: &mut Running,
        request: SwarmInitRequest,
        restored: Option<StoreSnapshot>,
    ) -> Result<SwarmInitResponse, NodeError> {
        if self.file().is_some() {
            return Err(NodeError::AlreadyInSwarm);
        }
        let restored = restored.unwrap_or_default();
        let mut settings = settings(&request);
        if let Some(old) = restored.clusters.last() {
            settings.restore_from(old);
        }
        let unlock_key = settings.autolock.then(UnlockKey::generate);
        let listen = addr::listen(&request.listen_addr).map_err(NodeError::Address)?;
        let advertise = addr::advertise(&request.advertise_addr, listen, &addr::interfaces())
            .map_err(NodeError::Address)?;
        let cluster_id = new_id();
        let node_id = new_node_id();
        let root = RootCa::generate(&cluster_id)?;
        let key = NodeKey::generate()?;
        let expiry = settings.node_cert_expiry();
        check_cert_expiry(expiry)?;
        let identity = NodeIdentity {
            node_id: node_id.clone(),
            role: NodeRole::Manager,
            cluster_id: cluster_id.clone(),
        };
        let cert = root.issue(&key.csr_pem()?, &identity, &[advertise.ip()], expiry)?;
        let creds = NodeCredentials {
            key_pem: key.to_pem(),
            cert_pem: cert.clone(),
            roots_pem: root.cert_pem().to_string(),
        };
        creds.save(&self.machine.creds_dir())?;

        let tokens = JoinTokens::generate(root.digest());
        let cluster =
            bootstrap::cluster(&cluster_id, &settings, &root, &tokens, unlock_key.as_ref());
        let founder = Founder {
            node_id: node_id.clone(),
            description: self.machine.description(),
            advertise,
            certificate: cert,
        };
        let node = bootstrap::founder_node(founder, &root);
        let file = SwarmFile {
            node_id: node_id.clone(),
            cluster_id,
            role: "manager".into(),
            listen_addr: listen.to_string(),
            advertise_addr: advertise.to_string(),
            raft_id: FOUNDER_RAFT_ID,
            managers: vec![advertise.to_string()],
        };
        let tls = NodeTls::new(creds)?;
        let bootstrap = Bootstrap::new_cluster(cluster, node, restored);
        let manager = match self
            .start_manager(&file, &tls, bootstrap, unlock_key.clone())
            .await
        {
            Ok(m) => m,
            Err(e) => {
                self.forget()?;
                return Err(e);
            }
        };
        file.save(self.state_dir())?;
        running.manager = Some(manager);
        self.start_member(running, &file, tls);
        self.view.send_modify(|v| v.file = Some(file));
        tracing::info!(node = %node_id, %advertise, "swarm initialized");
        Ok(SwarmInitResponse {
            node_id,
            worker_token: tokens.worker.to_string(),
            manager_addr: advertise.to_string(),
            unlock_key: unlock_key
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            restored: None,
        })
    }

    /// `swarm init --force-new-cluster`: this manager becomes the only one
    /// of a cluster that keeps everything it knew (disaster recovery after
    /// losing a majority of managers).
    async fn force_new_cluster(
        &self,
        running: &mut Running,
    ) -> Result<SwarmInitResponse, NodeError> {
        let mut file = self
            .file()
            .filter(SwarmFile::is_manager)
            .ok_or(NodeError::ForceNeedsManager)?;
        let manager = running.manager.take().ok_or(NodeError::LockedFirst)?;
        let ctx = manager.context().clone();
        let (index, store) = ctx.store.snapshot();
        let term = ctx.raft.status().term;
        let worker_token = store
            .clusters
            .first()
            .and_then(|c| c.join_tokens.as_ref())
            .map(|t| t.worker.clone())
            .unwrap_or_default();
        manager.stop().await;
        if let Some(member) = running.member.take() {
            member.stop().await;
        }
        let member = shoal_proto::raft::RaftMember {
            raft_id: file.raft_id,
            node_id: file.node_id.clone(),
            addr: file.advertise_addr.clone(),
        };
        let dir = self.machine.manager_dir();
        shoal_manager::runtime::force_new_cluster(&dir, member, store, index, term)
            .map_err(NodeError::ForceNewCluster)?;
        file.managers = vec![file.advertise_addr.clone()];
        file.save(self.state_dir())?;
        let tls = self.node_tls()?;
        let manager = self
            .start_manager(&file, &tls, Bootstrap::Restart, None)
            .await?;
        running.manager = Some(manager);
        self.start_member(running, &file, tls);
        tracing::warn!(node = %file.node_id, "forced a new cluster: this manager is now the only one");
        let response = SwarmInitResponse {
            node_id: file.node_id.clone(),
            worker_token,
            manager_addr: file.advertise_addr.clone(),
            unlock_key: String::new(),
            restored: None,
        };
        self.view.send_modify(|v| v.file = Some(file));
        Ok(response)
    }
}

/// The cluster settings `request` asks for.
fn settings(request: &SwarmInitRequest) -> ClusterSettings {
    ClusterSettings {
        autolock: request.autolock,
        cert_expiry: Duration::from_secs(request.cert_expiry_seconds),
        task_history_limit: request.task_history_limit,
        default_addr_pool: request.default_addr_pool.clone(),
        subnet_size: request.subnet_size,
        data_path_port: request.data_path_port,
    }
}

/// The bounds `swarm update` applies too: at least
/// [`shoal_proto::limits::MIN_CERT_EXPIRY`], at most
/// [`shoal_proto::limits::MAX_DURATION`].
fn check_cert_expiry(expiry: Duration) -> Result<(), NodeError> {
    use shoal_proto::limits::{MAX_DURATION, MIN_CERT_EXPIRY, human};
    if expiry < MIN_CERT_EXPIRY {
        return Err(NodeError::CertExpiry(format!(
            "minimum certificate expiry time is: {}",
            human(MIN_CERT_EXPIRY)
        )));
    }
    if expiry > MAX_DURATION {
        return Err(NodeError::CertExpiry(format!(
            "certificate expiry cannot be longer than {}",
            human(MAX_DURATION)
        )));
    }
    Ok(())
}
