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
use shoal_worker::exec::EngineParams;
use shoal_worker::host::HostFacts;
use shoal_worker::logs::LogsConfig;
use shoal_worker::worker::Command as WorkerCommand;
use tokio::sync::{Mutex, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::addr;
use super::swarm_file::SwarmFile;

mod backup;
mod init;
mod join;
mod renewal;

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
    docker_socket: PathBuf,
    /// The node's image store (embedded engine only).
    images: Option<Arc<shoal_worker::image::ImageStore>>,
    /// The node's volume store (embedded engine only).
    volumes: Option<Arc<shoal_worker::volume::VolumeStore>>,
    slot: ManagerSlot,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    file: Option<SwarmFile>,
    manager: Option<Manager>,
    /// Stops the node-side loops: agent, manager-list keeper, renewal.
    agent: Option<CancellationToken>,
    /// The node's credentials and client TLS, shared by its agent and manager.
    tls: Option<NodeTls>,
    session: Option<watch::Receiver<SessionState>>,
    /// The worker that runs this node's tasks.
    worker: Option<mpsc::Sender<WorkerCommand>>,
    /// The node's data plane.
    plane: Option<std::sync::Arc<shoal_worker::net::agent::NetAgent>>,
}

/// A node's credentials and the client TLS built from them, kept together
/// so renewal swaps both and nothing re-reads them from disk.
#[derive(Clone)]
struct NodeTls {
    creds: NodeCredentials,
    client: ClientTls,
}

impl Inner {
    /// The node's credentials and client TLS; an error outside a swarm.
    fn node_tls(&self) -> Result<NodeTls, Status> {
        self.tls
            .clone()
            .ok_or_else(|| Status::failed_precondition("This node is not part of a swarm"))
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

impl SwarmNode {
    /// The swarm side of a daemon; call [`SwarmNode::resume`] next.
    pub fn new(
        state_dir: PathBuf,
        engine: EngineInfo,
        docker_socket: PathBuf,
        images: Option<Arc<shoal_worker::image::ImageStore>>,
        volumes: Option<Arc<shoal_worker::volume::VolumeStore>>,
        slot: ManagerSlot,
    ) -> Arc<SwarmNode> {
        Arc::new_cyclic(|me| SwarmNode {
            me: me.clone(),
            state_dir,
            engine,
            docker_socket,
            images,
            volumes,
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
                pids: 0,
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
                    inner.tls = Some(NodeTls { creds, client: tls });
                    inner.file = Some(file);
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        self.start_agent(&mut inner, &file, NodeTls { creds, client: tls })?;
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

    /// Joins Raft through the manager at `via` (this node holds a manager
    /// certificate) and starts the manager from the members it answers
    /// with; records the Raft id and managers in `file`.
    async fn join_raft(
        &self,
        file: &mut SwarmFile,
        tls: &NodeTls,
        via: &str,
    ) -> Result<Manager, Status> {
        let mut membership =
            RaftMembershipClient::new(shoal_proto::net::channel(via, tls.client.clone()));
        let joined = membership
            .join(JoinRequest {
                addr: file.advertise_addr.clone(),
            })
            .await
            .map_err(|s| join::join_error(via, s))?
            .into_inner();
        file.raft_id = joined.raft_id;
        file.managers = joined.members.iter().map(|m| m.addr.clone()).collect();
        self.start_manager(
            file,
            tls.creds.clone(),
            &tls.client,
            Bootstrap::Join {
                peers: joined.members,
            },
            None,
        )
        .await
        .map_err(|e| Status::internal(format!("{e:#}")))
    }

    fn start_agent(&self, inner: &mut Inner, file: &SwarmFile, tls: NodeTls) -> anyhow::Result<()> {
        let mut managers = file.managers.clone();
        if file.is_manager() {
            managers.insert(0, file.advertise_addr.clone());
        }
        let (worker_tx, worker_rx) = mpsc::channel(64);
        let (net_tx, net_rx) = watch::channel(None);
        let (report_tx, report_rx) = mpsc::unbounded_channel();
        let config = AgentConfig {
            managers,
            tls: tls.client.clone(),
            description: self.description(),
            worker: worker_tx.clone(),
            networks: std::sync::Arc::new(net_tx),
        };
        let stop = CancellationToken::new();
        let (state_tx, state_rx) = watch::channel(SessionState::default());
        let params = EngineParams {
            state_dir: self.state_dir.clone(),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            node_id: file.node_id.clone(),
            docker_socket: self.docker_socket.clone(),
            images: self.images.clone(),
            volumes: self.volumes.clone(),
        };
        let info = self.engine.clone();
        let worker_stop = stop.clone();
        let net_agent =
            shoal_worker::net::agent::NetAgent::start(&file.node_id, net_rx, stop.clone());
        inner.plane = Some(net_agent.clone());
        let plane: std::sync::Arc<dyn shoal_worker::net::plane::DataPlane> = net_agent;
        let (node_id, logs_tls, session) =
            (file.node_id.clone(), tls.client.clone(), state_rx.clone());
        let logs = move |engine| LogsConfig {
            node_id,
            tls: logs_tls,
            engine,
            session,
        };
        tokio::spawn(async move {
            match shoal_worker::exec::build(&info, &params).await {
                Ok(engine) => {
                    // Logs are read from the same engine that runs the tasks.
                    tokio::spawn(shoal_worker::logs::run(
                        logs(engine.clone()),
                        worker_stop.clone(),
                    ));
                    shoal_worker::worker::run(
                        engine,
                        Some(plane),
                        worker_rx,
                        report_tx,
                        worker_stop,
                    )
                    .await
                }
                Err(e) => {
                    tracing::error!(error = %e, engine = %info.display(), "the engine could not start: this node runs no tasks")
                }
            }
        });
        tokio::spawn(agent::run(config, state_tx, report_rx, stop.clone()));
        inner.worker = Some(worker_tx);
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
        let tls = inner.node_tls()?;
        let manager = self
            .start_manager(
                &file,
                tls.creds.clone(),
                &tls.client,
                Bootstrap::Restart,
                Some(key),
            )
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
        if let Some(worker) = inner.worker.take() {
            // Leaving takes the node's tasks with it, as Docker does.
            let (done, wait) = tokio::sync::oneshot::channel();
            if worker.send(WorkerCommand::RemoveAll(done)).await.is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(30), wait).await;
            }
        }
        if let Some(plane) = inner.plane.take() {
            plane.remove_all().await;
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

    /// What `shoal info` shows under Swarm; `brief` leaves out the store
    /// digest (a hash of every object).
    pub async fn info(&self, brief: bool) -> SwarmInfo {
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
                let (applied, digest) = match brief {
                    true => (ctx.store.applied_index(), String::new()),
                    false => {
                        let (applied, digest) = ctx.store.digest();
                        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                        (applied, format!("sha256:{hex}"))
                    }
                };
                (
                    ctx.raft.status().members.len() as u32,
                    ctx.store.view(|t| t.all::<Node>().count()) as u32,
                    applied,
                    digest,
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
