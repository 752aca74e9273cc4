//! This node's place in a swarm: none, a worker, or a manager. It owns
//! the running manager (if any), the worker side (`member::Membership`),
//! and the files that let a restarted daemon take up where it stopped.
//!
//! Init, join, leave, unlock and role changes are serialized by the
//! transition lock, which guards the running parts: a node changes swarms
//! one step at a time. What questions read (`info`, renewal's view of the
//! node) is published apart, so they never wait for a transition, such as
//! a leave that waits up to 30 s for its tasks.

use std::path::Path;
use std::sync::{Arc, Weak};

use shoal_manager::controlapi::ManagerSlot;
use shoal_manager::runtime::{Bootstrap, Manager, ManagerError};
use shoal_proto::credentials::NodeCredentials;
use shoal_proto::local::SwarmInfo;
use shoal_proto::net::ClientTls;
use shoal_proto::objects::Node;
use shoal_proto::shutdown::CancellationToken;
use shoal_worker::agent::SessionState;
use tokio::sync::{Mutex, MutexGuard, watch};

use crate::NodeError;
use crate::machine::Machine;
use crate::member::Membership;
use crate::swarm_file::SwarmFile;

mod backup;
mod init;
mod join;
mod leave;
mod manager;

/// The node's swarm side.
pub struct SwarmNode {
    me: Weak<SwarmNode>,
    pub(crate) machine: Machine,
    slot: ManagerSlot,
    /// The node's branch of the shutdown tree: the manager and the
    /// membership hang off it.
    shutdown: CancellationToken,
    transition: Mutex<Running>,
    pub(crate) view: watch::Sender<View>,
}

/// What runs for the node's swarm; changed only under the transition lock.
#[derive(Default)]
pub(crate) struct Running {
    pub manager: Option<Manager>,
    member: Option<Membership>,
}

/// What the node knows of its swarm, readable without the transition lock.
#[derive(Clone, Default)]
pub(crate) struct View {
    pub file: Option<SwarmFile>,
    /// The node's credentials and client TLS, shared by its agent and
    /// manager.
    pub tls: Option<NodeTls>,
    pub session: Option<watch::Receiver<SessionState>>,
}

/// A node's credentials and the client TLS built from them, kept together
/// so renewal swaps both and nothing re-reads them from disk.
#[derive(Clone)]
pub(crate) struct NodeTls {
    pub creds: NodeCredentials,
    pub client: ClientTls,
}

impl NodeTls {
    fn new(creds: NodeCredentials) -> Result<NodeTls, NodeError> {
        Ok(NodeTls {
            client: ClientTls::new(creds.client_config()?),
            creds,
        })
    }
}

impl SwarmNode {
    /// The swarm side of a node; [`SwarmNode::resume`] comes next.
    pub(crate) fn new(
        machine: Machine,
        slot: ManagerSlot,
        shutdown: CancellationToken,
    ) -> Arc<SwarmNode> {
        Arc::new_cyclic(|me| SwarmNode {
            me: me.clone(),
            machine,
            slot,
            shutdown,
            transition: Mutex::default(),
            view: watch::Sender::new(View::default()),
        })
    }

    pub(crate) fn state_dir(&self) -> &Path {
        &self.machine.state_dir
    }

    /// The swarm as this node knows it, `None` outside one.
    pub(crate) fn file(&self) -> Option<SwarmFile> {
        self.view.borrow().file.clone()
    }

    /// The node's credentials and client TLS; an error outside a swarm.
    pub(crate) fn node_tls(&self) -> Result<NodeTls, NodeError> {
        self.view.borrow().tls.clone().ok_or(NodeError::NotInSwarm)
    }

    /// Takes up the swarm this node was in before a restart, if any.
    pub(crate) async fn resume(&self) -> Result<(), NodeError> {
        let Some(file) = SwarmFile::load(self.state_dir())? else {
            return Ok(());
        };
        let creds = NodeCredentials::load(&self.machine.creds_dir())?
            .ok_or_else(|| NodeError::MissingCertificates(self.state_dir().to_path_buf()))?;
        let mut running = self.transition.lock().await;
        let tls = NodeTls::new(creds)?;
        if file.is_manager() {
            match self
                .start_manager(&file, &tls, Bootstrap::Restart, None)
                .await
            {
                Ok(manager) => running.manager = Some(manager),
                Err(NodeError::Manager(ManagerError::Locked)) => {
                    // Autolock: serve nothing of the swarm until `swarm unlock`.
                    tracing::warn!(
                        "this manager is locked: run `shoal swarm unlock` with the swarm's unlock key"
                    );
                    self.slot.set_locked(true);
                    self.view.send_modify(|v| {
                        v.tls = Some(tls);
                        v.file = Some(file);
                    });
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        self.start_member(&mut running, &file, tls);
        tracing::info!(node = %file.node_id, role = %file.role, "resumed swarm membership");
        self.view.send_modify(|v| v.file = Some(file));
        Ok(())
    }

    /// Starts the worker side and certificate renewal for `file`'s swarm.
    fn start_member(&self, running: &mut Running, file: &SwarmFile, tls: NodeTls) {
        let member = Membership::start(&self.machine, file, &tls.client, &self.shutdown);
        member.spawn(crate::renewal::run(self.me.clone(), member.token()));
        self.view.send_modify(|v| {
            v.session = Some(member.session());
            v.tls = Some(tls);
        });
        running.member = Some(member);
    }

    /// The transition lock, or `None` once `stop` fires first: loops of
    /// the membership (renewal) must not hold up a leave that waits for
    /// them to end.
    pub(crate) async fn transition_or(
        &self,
        stop: &CancellationToken,
    ) -> Option<MutexGuard<'_, Running>> {
        tokio::select! {
            _ = stop.cancelled() => None,
            running = self.transition.lock() => Some(running),
        }
    }

    /// `swarm unlock`: opens a locked manager with the swarm's unlock key.
    pub async fn unlock(&self, key: &str) -> Result<(), NodeError> {
        let mut running = self.transition.lock().await;
        if !self.slot.is_locked() {
            return Err(NodeError::NotLocked);
        }
        let key = key.trim().parse().map_err(NodeError::UnlockKey)?;
        let file = self.file().ok_or(NodeError::NotInSwarm)?;
        let tls = self.node_tls()?;
        let manager = self
            .start_manager(&file, &tls, Bootstrap::Restart, Some(key))
            .await?;
        running.manager = Some(manager);
        self.slot.set_locked(false);
        self.start_member(&mut running, &file, tls);
        tracing::info!("swarm unlocked");
        Ok(())
    }

    /// Removes what ties this node to a swarm from its state dir.
    fn forget(&self) -> std::io::Result<()> {
        SwarmFile::remove(self.state_dir())?;
        for dir in [self.machine.creds_dir(), self.machine.manager_dir()] {
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// The manager the agent has a session with, if it has one: a node in
    /// a swarm is ready once this is `Some`.
    pub fn session_manager(&self) -> Option<String> {
        let session = self.view.borrow().session.clone()?;
        session.borrow().manager.clone()
    }

    /// What `shoal info` shows under Swarm; `brief` leaves out the store
    /// digest (a hash of every object).
    pub fn info(&self, brief: bool) -> SwarmInfo {
        let Some(file) = self.file() else {
            return SwarmInfo {
                local_node_state: "inactive".into(),
                ..Default::default()
            };
        };
        let (managers, nodes, applied, digest) = match self.slot.get() {
            Some(ctx) => {
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
            cluster_id: file.cluster_id,
            managers,
            nodes,
            raft_applied_index: applied,
            store_digest: digest,
        }
    }

    /// Stops the worker side and the manager, and waits for them (daemon
    /// shutdown); the state stays on disk and the tasks keep running.
    pub(crate) async fn stop(&self) {
        self.shutdown.cancel();
        let mut running = self.transition.lock().await;
        if let Some(member) = running.member.take() {
            member.stop().await;
        }
        if let Some(manager) = running.manager.take() {
            manager.stop().await;
        }
    }
}
