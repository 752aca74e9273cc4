//! `swarm init`, and `--force-new-cluster` for disaster recovery.

use shoal_proto::store::StoreSnapshot;

use super::backup;
use super::*;

impl SwarmNode {
    /// `swarm init`.
    pub async fn init(&self, request: SwarmInitRequest) -> Result<SwarmInitResponse, Status> {
        let mut inner = self.inner.lock().await;
        if request.force_new_cluster {
            return self.force_new_cluster(&mut inner).await;
        }
        self.init_cluster(&mut inner, request, None).await
    }

    /// A new cluster with this node as its first manager; `restored` is
    /// what a backup brings back (its cluster settings replace the
    /// request's).
    pub(super) async fn init_cluster(
        &self,
        inner: &mut Inner,
        mut request: SwarmInitRequest,
        restored: Option<StoreSnapshot>,
    ) -> Result<SwarmInitResponse, Status> {
        if inner.file.is_some() {
            return Err(Status::failed_precondition(ALREADY_IN_SWARM));
        }
        let mut restored = restored.unwrap_or_default();
        let old_cluster = restored.clusters.pop();
        if let Some(old) = &old_cluster {
            take_settings(&mut request, old);
        }
        let unlock_key = request.autolock.then(UnlockKey::generate);
        let listen = addr::listen(&request.listen_addr).map_err(Status::invalid_argument)?;
        let advertise = addr::advertise(&request.advertise_addr, listen, &addr::interfaces())
            .map_err(Status::invalid_argument)?;
        let cluster_id = new_id();
        let node_id = new_node_id();
        let root = RootCa::generate(&cluster_id).map_err(internal)?;
        let key = NodeKey::generate().map_err(internal)?;
        let expiry = match request.cert_expiry_seconds {
            0 => DEFAULT_NODE_CERT_EXPIRY,
            s => Duration::from_secs(s),
        };
        check_cert_expiry(expiry)?;
        let identity = NodeIdentity {
            node_id: node_id.clone(),
            role: NodeRole::Manager,
            cluster_id: cluster_id.clone(),
        };
        let cert = root
            .issue(
                &key.csr_pem().map_err(internal)?,
                &identity,
                &[advertise.ip()],
                expiry,
            )
            .map_err(internal)?;
        let creds = NodeCredentials {
            key_pem: key.to_pem(),
            cert_pem: cert.clone(),
            roots_pem: root.cert_pem().to_string(),
        };
        creds.save(&self.creds_dir()).map_err(internal)?;

        let tokens = JoinTokens::generate(root.digest());
        let raft_id = 1;
        let mut cluster = Cluster {
            id: cluster_id.clone(),
            spec: Some(ClusterSpec {
                annotations: Some(Annotations {
                    name: "default".into(),
                    ..Default::default()
                }),
                orchestration: Some(OrchestrationConfig {
                    task_history_retention_limit: if request.task_history_limit > 0 {
                        request.task_history_limit
                    } else {
                        5
                    },
                }),
                raft: Some(objects::RaftConfig {
                    snapshot_interval: 10_000,
                    keep_old_snapshots: 0,
                    log_entries_for_slow_followers: 500,
                    heartbeat_tick: 1,
                    election_tick: 10,
                }),
                dispatcher: Some(DispatcherConfig {
                    heartbeat_period: prost_types::Duration::try_from(
                        shoal_manager::dispatcher::DEFAULT_HEARTBEAT,
                    )
                    .ok(),
                }),
                ca_config: Some(CaConfig {
                    node_cert_expiry: prost_types::Duration::try_from(expiry).ok(),
                    force_rotate: 0,
                }),
                encryption: Some(EncryptionConfig {
                    auto_lock_managers: request.autolock,
                }),
            }),
            root_ca: Some(objects::RootCa {
                ca_cert: root.cert_pem().as_bytes().to_vec(),
                ca_key: root.key_pem().into_bytes(),
                ca_cert_digest: root.digest().to_string(),
                ..Default::default()
            }),
            join_tokens: Some(objects::JoinTokens {
                worker: tokens.worker.to_string(),
                manager: tokens.manager.to_string(),
            }),
            default_addr_pool: if request.default_addr_pool.is_empty() {
                vec!["10.0.0.0/8".into()]
            } else {
                request.default_addr_pool.clone()
            },
            subnet_size: if request.subnet_size == 0 {
                24
            } else {
                request.subnet_size
            },
            data_path_port: if request.data_path_port == 0 {
                4789
            } else {
                request.data_path_port
            },
            unlock_key: unlock_key
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            ..Default::default()
        };
        let node = Node {
            id: node_id.clone(),
            spec: Some(NodeSpec {
                desired_role: objects::NodeRole::Manager as i32,
                ..Default::default()
            }),
            description: Some(self.description()),
            status: Some(NodeStatus {
                state: node_status::State::Ready as i32,
                message: String::new(),
                addr: advertise.ip().to_string(),
            }),
            manager_status: Some(ManagerStatus {
                raft_id,
                addr: advertise.to_string(),
                leader: true,
                reachability: manager_status::Reachability::Reachable as i32,
            }),
            role: objects::NodeRole::Manager as i32,
            certificate: Some(NodeCertificate {
                role: objects::NodeRole::Manager as i32,
                certificate: cert.into_bytes(),
                status: node_certificate::Status::Issued as i32,
                issuer_digest: root.digest().to_string(),
                ..Default::default()
            }),
            ..Default::default()
        };
        if let Some(old) = old_cluster {
            restore_spec(&mut cluster, old);
        }
        // A restored cluster keeps its ingress network (its subnet and the
        // published ports' allocations belong to it).
        let ingress = match restored.networks.iter().position(backup::is_ingress) {
            Some(at) => restored.networks.swap_remove(at),
            None => shoal_manager::runtime::ingress_network(),
        };
        let file = SwarmFile {
            node_id: node_id.clone(),
            cluster_id,
            role: "manager".into(),
            listen_addr: listen.to_string(),
            advertise_addr: advertise.to_string(),
            raft_id,
            managers: vec![advertise.to_string()],
        };
        let bootstrap = Bootstrap::New {
            cluster: Box::new(cluster),
            node: Box::new(node),
            ingress: Box::new(ingress),
            restored: Box::new(restored),
        };
        let tls = ClientTls::new(creds.client_config().map_err(internal)?);
        let manager = match self
            .start_manager(&file, creds.clone(), &tls, bootstrap, unlock_key.clone())
            .await
        {
            Ok(m) => m,
            Err(e) => {
                self.forget().map_err(internal)?;
                return Err(Status::internal(format!("{e:#}")));
            }
        };
        file.save(&self.state_dir).map_err(internal)?;
        inner.manager = Some(manager);
        self.start_agent(inner, &file, NodeTls { creds, client: tls })
            .map_err(internal)?;
        inner.file = Some(file);
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
    async fn force_new_cluster(&self, inner: &mut Inner) -> Result<SwarmInitResponse, Status> {
        let mut file = inner
            .file
            .clone()
            .filter(SwarmFile::is_manager)
            .ok_or_else(|| {
                Status::failed_precondition(
                    "--force-new-cluster needs a node that is a manager of an existing swarm",
                )
            })?;
        let manager = inner
            .manager
            .take()
            .ok_or_else(|| Status::failed_precondition(LOCKED_FIRST))?;
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
        if let Some(agent) = inner.agent.take() {
            agent.cancel();
        }
        let member = shoal_proto::raft::RaftMember {
            raft_id: file.raft_id,
            node_id: file.node_id.clone(),
            addr: file.advertise_addr.clone(),
        };
        shoal_manager::runtime::force_new_cluster(&self.manager_dir(), member, store, index, term)
            .map_err(internal)?;
        file.managers = vec![file.advertise_addr.clone()];
        file.save(&self.state_dir).map_err(internal)?;
        let tls = inner.node_tls()?;
        let manager = self
            .start_manager(
                &file,
                tls.creds.clone(),
                &tls.client,
                Bootstrap::Restart,
                None,
            )
            .await
            .map_err(|e| Status::internal(format!("{e:#}")))?;
        inner.manager = Some(manager);
        self.start_agent(inner, &file, tls).map_err(internal)?;
        tracing::warn!(node = %file.node_id, "forced a new cluster: this manager is now the only one");
        let response = SwarmInitResponse {
            node_id: file.node_id.clone(),
            worker_token,
            manager_addr: file.advertise_addr.clone(),
            unlock_key: String::new(),
            restored: None,
        };
        inner.file = Some(file);
        Ok(response)
    }
}

/// The bounds `swarm update` applies too: at least
/// [`shoal_proto::limits::MIN_CERT_EXPIRY`], at most
/// [`shoal_proto::limits::MAX_DURATION`].
fn check_cert_expiry(expiry: Duration) -> Result<(), Status> {
    use shoal_proto::limits::{MAX_DURATION, MIN_CERT_EXPIRY, human};
    if expiry < MIN_CERT_EXPIRY {
        return Err(Status::invalid_argument(format!(
            "minimum certificate expiry time is: {}",
            human(MIN_CERT_EXPIRY)
        )));
    }
    if expiry > MAX_DURATION {
        return Err(Status::invalid_argument(format!(
            "certificate expiry cannot be longer than {}",
            human(MAX_DURATION)
        )));
    }
    Ok(())
}

/// A restore's init: the backed-up cluster's settings replace the flags
/// (its networks' subnets come from its pools; autolock stays on if it
/// was).
fn take_settings(request: &mut SwarmInitRequest, old: &Cluster) {
    let spec = old.spec.clone().unwrap_or_default();
    request.autolock |= spec.encryption.is_some_and(|e| e.auto_lock_managers);
    if let Some(expiry) = spec
        .ca_config
        .and_then(|c| c.node_cert_expiry)
        .and_then(|d| Duration::try_from(d).ok())
        .filter(|_| request.cert_expiry_seconds == 0)
    {
        request.cert_expiry_seconds = expiry.as_secs();
    }
    if let Some(o) = spec.orchestration {
        request.task_history_limit = o.task_history_retention_limit;
    }
    request.default_addr_pool = old.default_addr_pool.clone();
    request.subnet_size = old.subnet_size;
    request.data_path_port = old.data_path_port;
}

/// The backed-up cluster's name, labels, Raft and dispatcher settings on
/// the new cluster object (its CA, tokens and lock are the new one's).
fn restore_spec(cluster: &mut Cluster, old: Cluster) {
    let (Some(spec), Some(old)) = (cluster.spec.as_mut(), old.spec) else {
        return;
    };
    spec.annotations = old.annotations;
    if old.raft.is_some() {
        spec.raft = old.raft;
    }
    if old.dispatcher.is_some() {
        spec.dispatcher = old.dispatcher;
    }
}
