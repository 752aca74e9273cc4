//! This daemon's place in a swarm: none, a worker, or a manager. It owns
//! the running manager (if any), the agent's session, and the files that
//! let a restarted daemon take up where it stopped. Init, join and leave
//! are serialized by one lock: a node changes swarms one step at a time.

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use shoal_manager::ca::{DEFAULT_NODE_CERT_EXPIRY, JoinTokens, RootCa};
use shoal_manager::controlapi::ManagerSlot;
use shoal_manager::raft::node::RaftConfig;
use shoal_manager::runtime::{Bootstrap, Manager, ManagerConfig, ManagerError};
use shoal_manager::seal::UnlockKey;
use shoal_proto::ca::IssueNodeCertificateRequest;
use shoal_proto::ca::node_ca_client::NodeCaClient;
use shoal_proto::credentials::NodeCredentials;
use shoal_proto::identity::{NodeIdentity, NodeKey, NodeRole, new_id, new_node_id};
use shoal_proto::local::{
    SwarmInfo, SwarmInitRequest, SwarmInitResponse, SwarmJoinRequest, SwarmJoinResponse,
};
use shoal_proto::net::ClientTls;
use shoal_proto::objects::{self, *};
use shoal_proto::raft::JoinRequest;
use shoal_proto::raft::raft_membership_client::RaftMembershipClient;
use shoal_proto::token::JoinToken;
use shoal_worker::agent::{self, AgentConfig, SessionState};
use shoal_worker::engine::EngineInfo;
use shoal_worker::host::HostFacts;
use tokio::sync::{Mutex, watch};
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::addr;
use super::swarm_file::SwarmFile;

/// A locked manager must be unlocked before anything else.
const LOCKED_FIRST: &str =
    "this manager is locked or not running: unlock it with `shoal swarm unlock` first";

/// How long a join may take to get its certificate.
const JOIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Docker's words when a node already in a swarm is asked to init or join.
const ALREADY_IN_SWARM: &str = "This node is already part of a swarm. Use \"shoal swarm leave\" to leave this swarm and join another one.";

/// The node's swarm side.
pub struct SwarmNode {
    me: Weak<SwarmNode>,
    state_dir: PathBuf,
    engine: EngineInfo,
    slot: ManagerSlot,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    file: Option<SwarmFile>,
    manager: Option<Manager>,
    /// Stops the node-side loops: agent, manager-list keeper, renewal.
    agent: Option<CancellationToken>,
    /// The node's client TLS, shared by its agent and manager.
    tls: Option<ClientTls>,
    session: Option<watch::Receiver<SessionState>>,
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

impl SwarmNode {
    /// The swarm side of a daemon; call [`SwarmNode::resume`] next.
    pub fn new(state_dir: PathBuf, engine: EngineInfo, slot: ManagerSlot) -> Arc<SwarmNode> {
        Arc::new_cyclic(|me| SwarmNode {
            me: me.clone(),
            state_dir,
            engine,
            slot,
            inner: Mutex::default(),
        })
    }

    fn manager_dir(&self) -> PathBuf {
        self.state_dir.join("manager")
    }

    fn creds_dir(&self) -> PathBuf {
        NodeCredentials::dir(&self.state_dir)
    }

    fn description(&self) -> NodeDescription {
        let host = HostFacts::gather();
        NodeDescription {
            hostname: host.hostname,
            platform: Some(Platform {
                architecture: shoal_proto::build_info::arch().into(),
                os: shoal_proto::build_info::os().into(),
            }),
            resources: Some(Resources {
                nano_cpus: i64::from(host.ncpu) * 1_000_000_000,
                memory_bytes: host.mem_total as i64,
            }),
            engine: Some(EngineDescription {
                kind: self.engine.kind.name().into(),
                version: if self.engine.kind == shoal_worker::engine::EngineKind::Docker {
                    self.engine.version.clone()
                } else {
                    String::new()
                },
                labels: Default::default(),
            }),
        }
    }

    /// Takes up the swarm this node was in before a restart, if any.
    pub async fn resume(&self) -> anyhow::Result<()> {
        let Some(file) = SwarmFile::load(&self.state_dir)? else {
            return Ok(());
        };
        let creds = NodeCredentials::load(&self.creds_dir())?.ok_or_else(|| {
            anyhow::anyhow!(
                "{} lists a swarm but its certificates are missing",
                self.state_dir.display()
            )
        })?;
        let mut inner = self.inner.lock().await;
        let tls = ClientTls::new(creds.client_config()?);
        if file.is_manager() {
            let manager = self
                .start_manager(&file, creds.clone(), &tls, Bootstrap::Restart, None)
                .await;
            match manager {
                Ok(manager) => inner.manager = Some(manager),
                Err(e)
                    if matches!(e.downcast_ref::<ManagerError>(), Some(ManagerError::Locked)) =>
                {
                    // Autolock: serve nothing of the swarm until `swarm unlock`.
                    tracing::warn!(
                        "this manager is locked: run `shoal swarm unlock` with the swarm's unlock key"
                    );
                    self.slot.set_locked(true);
                    inner.tls = Some(tls);
                    inner.file = Some(file);
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        self.start_agent(&mut inner, &file, tls)?;
        tracing::info!(node = %file.node_id, role = %file.role, "resumed swarm membership");
        inner.file = Some(file);
        Ok(())
    }

    async fn start_manager(
        &self,
        file: &SwarmFile,
        credentials: NodeCredentials,
        tls: &ClientTls,
        bootstrap: Bootstrap,
        unlock_key: Option<UnlockKey>,
    ) -> anyhow::Result<Manager> {
        let config = ManagerConfig {
            dir: self.manager_dir(),
            node_id: file.node_id.clone(),
            raft_id: file.raft_id,
            listen: addr::listen(&file.listen_addr).map_err(anyhow::Error::msg)?,
            advertise: file.advertise_addr.clone(),
            credentials,
            client_tls: tls.clone(),
            raft: RaftConfig::new(file.raft_id),
            unlock_key,
        };
        Ok(Manager::start(config, bootstrap, self.slot.clone()).await?)
    }

    fn start_agent(
        &self,
        inner: &mut Inner,
        file: &SwarmFile,
        tls: ClientTls,
    ) -> anyhow::Result<()> {
        let mut managers = file.managers.clone();
        if file.is_manager() {
            managers.insert(0, file.advertise_addr.clone());
        }
        let config = AgentConfig {
            managers,
            tls: tls.clone(),
            description: self.description(),
        };
        let stop = CancellationToken::new();
        let (state_tx, state_rx) = watch::channel(SessionState::default());
        tokio::spawn(agent::run(config, state_tx, stop.clone()));
        tokio::spawn(remember_managers(
            self.state_dir.clone(),
            state_rx.clone(),
            stop.clone(),
        ));
        tokio::spawn(super::renew::run(self.me.clone(), stop.clone()));
        inner.agent = Some(stop);
        inner.session = Some(state_rx);
        inner.tls = Some(tls);
        Ok(())
    }

    /// `swarm init`.
    pub async fn init(&self, request: SwarmInitRequest) -> Result<SwarmInitResponse, Status> {
        let mut inner = self.inner.lock().await;
        if request.force_new_cluster {
            return self.force_new_cluster(&mut inner).await;
        }
        if inner.file.is_some() {
            return Err(Status::failed_precondition(ALREADY_IN_SWARM));
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
        let cluster = Cluster {
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
                    heartbeat_period: prost_types::Duration::try_from(Duration::from_secs(5)).ok(),
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
        let ingress = Network {
            id: new_id(),
            spec: Some(NetworkSpec {
                annotations: Some(Annotations {
                    name: "ingress".into(),
                    labels: Default::default(),
                }),
                driver_config: Some(Driver {
                    name: "overlay".into(),
                    ..Default::default()
                }),
                ingress: true,
                ..Default::default()
            }),
            driver_state: Some(Driver {
                name: "overlay".into(),
                ..Default::default()
            }),
            ..Default::default()
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
        self.start_agent(&mut inner, &file, tls).map_err(internal)?;
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
        let creds = NodeCredentials::load(&self.creds_dir())
            .map_err(internal)?
            .ok_or_else(|| Status::internal("certificates missing"))?;
        let tls = inner
            .tls
            .clone()
            .ok_or_else(|| Status::internal("no TLS state"))?;
        let manager = self
            .start_manager(&file, creds, &tls, Bootstrap::Restart, None)
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
        };
        inner.file = Some(file);
        Ok(response)
    }

    /// `swarm join`.
    pub async fn join(&self, request: SwarmJoinRequest) -> Result<SwarmJoinResponse, Status> {
        let mut inner = self.inner.lock().await;
        if inner.file.is_some() {
            return Err(Status::failed_precondition(ALREADY_IN_SWARM));
        }
        let token: JoinToken = request
            .token
            .trim()
            .parse()
            .map_err(|e: shoal_proto::token::TokenError| Status::invalid_argument(e.to_string()))?;
        let remote = addr::remote(&request.remote_addr);
        let listen = addr::listen(&request.listen_addr).map_err(Status::invalid_argument)?;
        let advertise = addr::advertise(&request.advertise_addr, listen, &addr::interfaces())
            .map_err(Status::invalid_argument)?;

        let bootstrap =
            shoal_proto::tls::bootstrap_client_config(token.root_digest()).map_err(internal)?;
        let key = NodeKey::generate().map_err(internal)?;
        let csr = key.csr_pem().map_err(internal)?;
        let mut ca = NodeCaClient::new(shoal_proto::net::channel(&remote, Arc::new(bootstrap)));
        let call = ca.issue_node_certificate(IssueNodeCertificateRequest {
            csr: csr.into_bytes(),
            token: request.token.trim().to_string(),
            availability: 0,
        });
        let issued = tokio::time::timeout(JOIN_TIMEOUT, call)
            .await
            .map_err(|_| Status::deadline_exceeded(format!("timed out after {JOIN_TIMEOUT:?} joining through {remote}: is a manager listening there?")))?
            .map_err(|s| join_error(&remote, s))?
            .into_inner();
        let creds = NodeCredentials {
            key_pem: key.to_pem(),
            cert_pem: issued.certificate.clone(),
            roots_pem: issued.root_ca.clone(),
        };
        let identity = creds.identity().map_err(internal)?;
        creds.save(&self.creds_dir()).map_err(internal)?;

        let mut file = SwarmFile {
            node_id: identity.node_id.clone(),
            cluster_id: identity.cluster_id.clone(),
            role: identity.role.to_string(),
            listen_addr: listen.to_string(),
            advertise_addr: advertise.to_string(),
            raft_id: 0,
            managers: vec![remote.clone()],
        };
        let tls = ClientTls::new(creds.client_config().map_err(internal)?);
        if identity.role == NodeRole::Manager {
            let mut membership =
                RaftMembershipClient::new(shoal_proto::net::channel(&remote, tls.clone()));
            let joined = membership
                .join(JoinRequest {
                    addr: advertise.to_string(),
                })
                .await
                .map_err(|s| join_error(&remote, s))?
                .into_inner();
            file.raft_id = joined.raft_id;
            file.managers = joined.members.iter().map(|m| m.addr.clone()).collect();
            let manager = self
                .start_manager(
                    &file,
                    creds.clone(),
                    &tls,
                    Bootstrap::Join {
                        peers: joined.members,
                    },
                    None,
                )
                .await
                .map_err(|e| Status::internal(format!("{e:#}")))?;
            inner.manager = Some(manager);
        }
        file.save(&self.state_dir).map_err(internal)?;
        self.start_agent(&mut inner, &file, tls).map_err(internal)?;
        tracing::info!(node = %file.node_id, role = %file.role, via = %remote, "joined the swarm");
        let response = SwarmJoinResponse {
            node_id: file.node_id.clone(),
            role: file.role.clone(),
        };
        inner.file = Some(file);
        Ok(response)
    }

    /// `swarm unlock`: opens a locked manager with the swarm's unlock key.
    pub async fn unlock(&self, key: &str) -> Result<(), Status> {
        let mut inner = self.inner.lock().await;
        if !self.slot.is_locked() {
            return Err(Status::failed_precondition("swarm is not locked"));
        }
        let key: UnlockKey = key
            .trim()
            .parse()
            .map_err(|e: shoal_manager::seal::SealError| {
                Status::invalid_argument(format!("invalid unlock key: {e}"))
            })?;
        let file = inner
            .file
            .clone()
            .ok_or_else(|| Status::failed_precondition("This node is not part of a swarm"))?;
        let creds = NodeCredentials::load(&self.creds_dir())
            .map_err(internal)?
            .ok_or_else(|| Status::internal("certificates missing"))?;
        let tls = inner
            .tls
            .clone()
            .ok_or_else(|| Status::internal("no TLS state"))?;
        let manager = self
            .start_manager(&file, creds, &tls, Bootstrap::Restart, Some(key))
            .await
            .map_err(|e| match e.downcast_ref::<ManagerError>() {
                Some(ManagerError::WrongUnlockKey) => Status::invalid_argument(e.to_string()),
                _ => Status::internal(format!("{e:#}")),
            })?;
        inner.manager = Some(manager);
        self.slot.set_locked(false);
        self.start_agent(&mut inner, &file, tls).map_err(internal)?;
        tracing::info!("swarm unlocked");
        Ok(())
    }

    /// `swarm leave`.
    pub async fn leave(&self, force: bool) -> Result<(), Status> {
        let mut inner = self.inner.lock().await;
        let Some(file) = inner.file.clone() else {
            return Err(Status::failed_precondition(
                "This node is not part of a swarm",
            ));
        };
        if file.is_manager() && !force {
            return Err(Status::failed_precondition(
                "You are attempting to leave the swarm on a node that is participating as a manager. Removing this node leaves the remaining managers to keep quorum on their own. Use `--force` to suppress this message.",
            ));
        }
        if let Some(manager) = inner.manager.take() {
            let ctx = manager.context().clone();
            let status = ctx.raft.status();
            if status.members.len() > 1
                && let Err(e) = ctx.raft.remove_member(file.raft_id).await
            {
                tracing::warn!(error = %e, "could not remove this manager from raft before leaving");
            }
            manager.stop().await;
        }
        if let Some(agent) = inner.agent.take() {
            agent.cancel();
        }
        inner.session = None;
        inner.tls = None;
        inner.file = None;
        self.forget().map_err(internal)?;
        tracing::info!(node = %file.node_id, "left the swarm");
        Ok(())
    }

    fn forget(&self) -> std::io::Result<()> {
        SwarmFile::remove(&self.state_dir)?;
        for dir in [self.creds_dir(), self.manager_dir()] {
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// What renewal needs: the current credentials (from disk), the
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
        let creds = NodeCredentials::load(&self.creds_dir()).ok()??;
        Some((creds, manager, tls))
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
        let tls = inner
            .tls
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no TLS state"))?;
        tls.set(creds.client_config()?);
        match (file.is_manager(), identity.role) {
            (false, NodeRole::Manager) => {
                let mut membership =
                    RaftMembershipClient::new(shoal_proto::net::channel(via, tls.clone()));
                let joined = membership
                    .join(JoinRequest {
                        addr: file.advertise_addr.clone(),
                    })
                    .await?
                    .into_inner();
                file.role = "manager".into();
                file.raft_id = joined.raft_id;
                file.managers = joined.members.iter().map(|m| m.addr.clone()).collect();
                let manager = self
                    .start_manager(
                        &file,
                        creds.clone(),
                        &tls,
                        Bootstrap::Join {
                            peers: joined.members,
                        },
                        None,
                    )
                    .await?;
                inner.manager = Some(manager);
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

    /// What `shoal info` shows under Swarm.
    pub async fn info(&self) -> SwarmInfo {
        let inner = self.inner.lock().await;
        let Some(file) = &inner.file else {
            return SwarmInfo {
                local_node_state: "inactive".into(),
                ..Default::default()
            };
        };
        let (managers, nodes, applied, digest) = match &inner.manager {
            Some(m) => {
                let ctx = m.context();
                let (applied, snapshot) = ctx.store.snapshot();
                let digest = ring::digest::digest(
                    &ring::digest::SHA256,
                    &prost::Message::encode_to_vec(&snapshot),
                );
                let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
                (
                    ctx.raft.status().members.len() as u32,
                    ctx.store.view(|t| t.all::<Node>().count()) as u32,
                    applied,
                    format!("sha256:{hex}"),
                )
            }
            None => (0, 0, 0, String::new()),
        };
        SwarmInfo {
            local_node_state: if self.slot.is_locked() {
                "locked"
            } else {
                "active"
            }
            .into(),
            node_id: file.node_id.clone(),
            node_addr: file
                .advertise_addr
                .rsplit_once(':')
                .map_or(file.advertise_addr.clone(), |(ip, _)| ip.to_string()),
            control_available: file.is_manager(),
            cluster_id: file.cluster_id.clone(),
            managers,
            nodes,
            raft_applied_index: applied,
            store_digest: digest,
        }
    }

    /// Stops the manager and agent (daemon shutdown); state stays on disk.
    pub async fn stop(&self) {
        let mut inner = self.inner.lock().await;
        if let Some(agent) = inner.agent.take() {
            agent.cancel();
        }
        if let Some(manager) = inner.manager.take() {
            manager.stop().await;
        }
    }
}

/// A join refused or unreachable, said so a user can act on it.
fn join_error(remote: &str, status: Status) -> Status {
    use std::error::Error;
    let mut detail = status.message().to_string();
    let mut source = status.source();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::DeadlineExceeded => {
            Status::unavailable(format!(
                "could not join through the manager at {remote}: {detail}"
            ))
        }
        _ => Status::new(status.code(), detail),
    }
}

/// Keeps the managers the dispatcher tells of in swarm.json, so a restart
/// can reach the cluster even if the first manager is gone.
async fn remember_managers(
    state_dir: PathBuf,
    mut session: watch::Receiver<SessionState>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = session.changed() => if changed.is_err() { return },
        }
        let managers = session.borrow().managers.clone();
        if managers.is_empty() {
            continue;
        }
        if let Ok(Some(mut file)) = SwarmFile::load(&state_dir)
            && file.managers != managers
        {
            file.managers = managers;
            let _ = file.save(&state_dir);
        }
    }
}
