//! A running manager: what `swarm init`, `swarm join` (as a manager) and a
//! restarted manager daemon all start. In order:
//!
//! 1. the key store (the data key that seals everything on disk),
//! 2. the sealed Raft storage, with a bootstrap snapshot for a new cluster,
//! 3. the Raft node and its gRPC transport (mutual TLS to peers),
//! 4. the cluster port: Raft, membership, CA, control API, dispatcher, log
//!    broker, all behind one TLS listener whose verifier refuses removed
//!    nodes and which closes their open connections when they are removed
//!    (every handler judges its caller by `crate::authz`),
//! 5. the leader-only components under one [`Supervisor`] (orchestrator,
//!    allocator, scheduler, root CA rotation, and the dispatcher's down
//!    detector, registered here because it shares the dispatcher's
//!    heartbeat book), the deny-list follower, the key re-wrapper and the
//!    event log,
//! 6. for a new cluster, the first batch: cluster object, this node, and
//!    the `ingress` network.
//!
//! Every loop hangs off one cancellation token, a branch of the caller's
//! shutdown tree ([`Manager::start_under`]); [`Manager::stop`] ends them
//! and waits for them. What a new cluster commits first is built in
//! [`bootstrap`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use shoal_proto::ca::ca_server::CaServer;
use shoal_proto::ca::node_ca_server::NodeCaServer;
use shoal_proto::credentials::NodeCredentials;
use shoal_proto::dispatcher::dispatcher_server::DispatcherServer;
use shoal_proto::logs::log_broker_server::LogBrokerServer;
use shoal_proto::logs::logs_server::LogsServer;
use shoal_proto::net::{ClientTls, ServerTls};
use shoal_proto::objects::{Cluster, Network, Node};
use shoal_proto::raft::RaftMember;
use shoal_proto::raft::raft_membership_server::RaftMembershipServer;
use shoal_proto::raft::raft_server::RaftServer;
use shoal_proto::tls::{ClientAuth, DenyList};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ca::CaService;
use crate::context::ManagerContext;
use crate::controlapi::{ControlApi, ManagerSlot};
use crate::dispatcher::DispatcherService;
use crate::leader::Supervisor;
use crate::logbroker::{LogBrokerService, LogsApi};
use crate::membership::MembershipService;
use crate::raft::node::{self, RaftConfig};
use crate::raft::service::RaftService;
use crate::raft::transport::{Dial, GrpcTransport};
use crate::raft::{DiskStorage, StorageError};
use crate::seal::{SealError, UnlockKey};
use crate::store::Store;

pub mod bootstrap;

pub use bootstrap::ingress_network;

/// How a manager starts.
#[derive(Debug)]
pub enum Bootstrap {
    /// A brand-new cluster: commit these objects first.
    New {
        /// The cluster object.
        cluster: Box<Cluster>,
        /// This node.
        node: Box<Node>,
        /// The ingress network.
        ingress: Box<Network>,
        /// Objects a `--restore` brings back from a backup (services,
        /// networks, secrets, configs), committed after the first batch.
        restored: Box<shoal_proto::store::StoreSnapshot>,
    },
    /// A new member: start from these peers and wait for a snapshot.
    Join {
        /// The members the leader answered with.
        peers: Vec<RaftMember>,
    },
    /// A restart: everything comes from disk.
    Restart,
}

/// Where and how a manager runs.
#[derive(Debug)]
pub struct ManagerConfig {
    /// `<state>/manager`: keys and Raft log.
    pub dir: PathBuf,
    /// This node's id.
    pub node_id: String,
    /// This node's Raft id.
    pub raft_id: u64,
    /// Where the cluster port listens.
    pub listen: SocketAddr,
    /// How peers reach it (`ip:port`).
    pub advertise: String,
    /// The node's TLS credentials (a manager certificate).
    pub credentials: NodeCredentials,
    /// The node's client TLS, shared with its agent and swapped on renewal.
    pub client_tls: ClientTls,
    /// Raft timings.
    pub raft: RaftConfig,
    /// The unlock key: opens a locked manager, or seals a new one.
    pub unlock_key: Option<UnlockKey>,
}

/// Why a manager could not start.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// The keys that open the state are missing, damaged or locked (the
    /// error names the key file).
    #[error(transparent)]
    Keys(#[from] SealError),
    /// The unlock key given does not open this manager's state.
    #[error(
        "invalid unlock key: it does not open this manager's state; use the swarm's current unlock key"
    )]
    WrongUnlockKey,
    /// The state is locked (autolock): `shoal swarm unlock` opens it.
    #[error(
        "Swarm is encrypted and needs to be unlocked before it can be used. Please use \"shoal swarm unlock\" to unlock it."
    )]
    Locked,
    /// The Raft log cannot be opened.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// TLS material is unusable.
    #[error("manager TLS: {0}")]
    Tls(String),
    /// Raft refused to start or to bootstrap.
    #[error("raft: {0}")]
    Raft(String),
    /// The Raft log could not be replaced (`--force-new-cluster`).
    #[error("cannot reset the raft log at {path}: {source}")]
    Reset {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The cluster port cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

struct TlsDial(ClientTls);

impl Dial for TlsDial {
    fn channel(&self, addr: &str) -> tonic::transport::Channel {
        shoal_proto::net::channel(addr, self.0.clone())
    }
}

/// A running manager.
#[derive(Debug)]
pub struct Manager {
    ctx: ManagerContext,
    server_tls: ServerTls,
    slot: ManagerSlot,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    local_addr: SocketAddr,
}

impl Manager {
    /// Starts a manager and puts its context in `slot`.
    pub async fn start(
        config: ManagerConfig,
        bootstrap: Bootstrap,
        slot: ManagerSlot,
    ) -> Result<Manager, ManagerError> {
        Self::start_under(config, bootstrap, slot, &CancellationToken::new()).await
    }

    /// [`Manager::start`] as a branch of `parent`'s shutdown tree:
    /// cancelling `parent` cancels every loop of the manager;
    /// [`Manager::stop`] still empties `slot` and waits for them.
    pub async fn start_under(
        config: ManagerConfig,
        bootstrap: Bootstrap,
        slot: ManagerSlot,
        parent: &CancellationToken,
    ) -> Result<Manager, ManagerError> {
        // A restart opens the keys it sealed its state with; only a new
        // manager makes them (a lost key file is not a fresh start).
        let restart = matches!(bootstrap, Bootstrap::Restart);
        let keys = crate::autolock::open_keys(
            &config.dir.join("keys"),
            config.unlock_key.as_ref(),
            restart,
        )?;
        let storage = DiskStorage::open(&config.dir.join("raft"), keys.data_key.clone())?;
        let (new_cluster, peers) = match bootstrap {
            Bootstrap::New {
                cluster,
                node,
                ingress,
                restored,
            } => {
                let founder = RaftMember {
                    raft_id: config.raft_id,
                    node_id: config.node_id.clone(),
                    addr: config.advertise.clone(),
                };
                storage.persist_ready(&[], None, Some(node::bootstrap_snapshot(founder)))?;
                (Some((cluster, node, ingress, restored)), Vec::new())
            }
            Bootstrap::Join { peers } => (None, peers),
            Bootstrap::Restart => (None, Vec::new()),
        };

        let tls_err =
            |e: shoal_proto::credentials::CredentialsError| ManagerError::Tls(e.to_string());
        let deny = DenyList::default();
        let client_tls = config.client_tls.clone();
        let server_tls = ServerTls::new(
            config
                .credentials
                .server_config(&deny, ClientAuth::Optional)
                .map_err(tls_err)?,
        );

        let shutdown = parent.child_token();
        let tasks = TaskTracker::new();
        let store = Arc::new(Store::new());
        let dial: Arc<dyn Dial> = Arc::new(TlsDial(client_tls.clone()));
        let raft_id = config.raft_id;
        let (raft, raft_task) = node::start(
            config.raft.clone(),
            storage,
            store.clone(),
            peers,
            move |handle| GrpcTransport::new(raft_id, handle, dial),
            shutdown.child_token(),
        )
        .map_err(|e| ManagerError::Raft(e.to_string()))?;
        let ctx = ManagerContext::new(
            store.clone(),
            raft.clone(),
            config.node_id.clone(),
            deny.clone(),
            client_tls,
        );

        // The cluster port.
        // A removed node's open connections close with its removal.
        let (local_addr, incoming) = shoal_proto::net::tls_incoming_denying(
            config.listen,
            server_tls.clone(),
            deny.clone(),
            shutdown.child_token(),
        )
        .await
        .map_err(|source| ManagerError::Listen {
            addr: config.listen,
            source,
        })?;
        let dispatcher = DispatcherService::new(ctx.clone(), shutdown.child_token());
        let server = tonic::transport::Server::builder()
            // Peers' raft streams are long-lived: a peer that vanished
            // without closing its connection is noticed and dropped.
            .http2_keepalive_interval(Some(Duration::from_secs(5)))
            .http2_keepalive_timeout(Some(Duration::from_secs(5)))
            .add_service(
                RaftServer::new(RaftService::new(
                    raft.clone(),
                    crate::authz::Authority::of(&ctx),
                    shutdown.child_token(),
                ))
                .max_decoding_message_size(64 << 20),
            )
            .add_service(RaftMembershipServer::new(MembershipService::new(
                ctx.clone(),
            )))
            .add_service(NodeCaServer::new(CaService::new(ctx.clone())))
            .add_service(CaServer::new(CaService::new(ctx.clone())))
            .add_service(ControlApi::new(slot.clone()).server())
            .add_service(DispatcherServer::new(dispatcher.clone()))
            .add_service(LogsServer::new(LogsApi::new(slot.clone())))
            .add_service(LogBrokerServer::new(LogBrokerService::new(ctx.clone())))
            .serve_with_incoming_shutdown(incoming, shutdown.child_token().cancelled_owned());
        tasks.spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(error = %e, "cluster port server stopped");
            }
        });
        // Every leader-only component, started and stopped with leadership.
        let leader_only = Supervisor::core().with("down detector", move |_, stop| {
            dispatcher.run_down_detector(stop)
        });
        tasks.spawn(leader_only.run(ctx.clone(), shutdown.child_token()));
        tasks.spawn(follow_removed_nodes(ctx.clone(), shutdown.child_token()));
        // Every manager keeps its own event log (no leader needed).
        tasks.spawn(crate::events::follow(
            ctx.events.clone(),
            ctx.store.clone(),
            shutdown.child_token(),
        ));
        tasks.spawn(crate::autolock::follow(
            ctx.clone(),
            keys,
            shutdown.child_token(),
        ));
        let stop = shutdown.clone();
        tasks.spawn(async move {
            match raft_task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "raft node failed; the manager stops"),
                Err(e) => tracing::error!(error = %e, "raft node panicked; the manager stops"),
            }
            stop.cancel();
        });
        tasks.close();

        if let Some((cluster, node, ingress, restored)) = new_cluster {
            wait_leader(&ctx, Duration::from_secs(10)).await?;
            ctx.update(|tx| {
                tx.create(*cluster)?;
                tx.create(*node)?;
                tx.create(*ingress)?;
                Ok(())
            })
            .await
            .map_err(|e: crate::context::CommitError| ManagerError::Raft(e.to_string()))?;
            crate::backup::commit_restored(&ctx, *restored)
                .await
                .map_err(|e| ManagerError::Raft(format!("restoring the backup: {e}")))?;
        }
        slot.set(Some(ctx.clone()));
        tracing::info!(%local_addr, raft_id = format_args!("{raft_id:x}"), "manager started");
        Ok(Manager {
            ctx,
            server_tls,
            slot,
            shutdown,
            tasks,
            local_addr,
        })
    }

    /// The shared context.
    pub fn context(&self) -> &ManagerContext {
        &self.ctx
    }

    /// Where the cluster port listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves renewed credentials (new certificate, maybe new roots) on
    /// the cluster port from the next handshake on. The client side is the
    /// shared [`ClientTls`], which the caller swaps.
    pub fn reload_credentials(&self, credentials: &NodeCredentials) -> Result<(), ManagerError> {
        let config = credentials
            .server_config(&self.ctx.deny, ClientAuth::Optional)
            .map_err(|e| ManagerError::Tls(e.to_string()))?;
        self.server_tls.set(config);
        Ok(())
    }

    /// Stops every loop and waits for them.
    pub async fn stop(self) {
        self.slot.set(None);
        self.shutdown.cancel();
        self.tasks.wait().await;
    }
}

/// `swarm init --force-new-cluster`: replaces a stopped manager's Raft
/// log with a one-member cluster (`member`) that starts from `store`, the
/// state the manager had applied at `index` in `term`. Everything the
/// cluster held survives; every other manager is forgotten.
pub fn force_new_cluster(
    dir: &std::path::Path,
    member: RaftMember,
    store: shoal_proto::store::StoreSnapshot,
    index: u64,
    term: u64,
) -> Result<(), ManagerError> {
    let keys = crate::autolock::open_keys(&dir.join("keys"), None, true)?;
    let raft_dir = dir.join("raft");
    std::fs::remove_dir_all(&raft_dir).map_err(|source| ManagerError::Reset {
        path: raft_dir.clone(),
        source,
    })?;
    let storage = DiskStorage::open(&raft_dir, keys.data_key)?;
    let hard_state = raft::prelude::HardState {
        term: term.max(1),
        commit: index.max(1),
        ..Default::default()
    };
    let snapshot = node::single_member_snapshot(member, store, index.max(1), term.max(1));
    storage.persist_ready(&[], Some(hard_state), Some(snapshot))?;
    Ok(())
}

async fn wait_leader(ctx: &ManagerContext, within: Duration) -> Result<(), ManagerError> {
    let mut status = ctx.raft.watch_status();
    tokio::time::timeout(within, status.wait_for(|s| s.is_leader()))
        .await
        .map_err(|_| ManagerError::Raft(format!("no leader within {within:?}")))?
        .map_err(|_| ManagerError::Raft("raft stopped".into()))?;
    Ok(())
}

/// Keeps the TLS deny list equal to the cluster's removed nodes, on every
/// manager, as the store changes: a removed node's next handshake is
/// refused and its open connections (sessions, streams) are closed.
async fn follow_removed_nodes(ctx: ManagerContext, shutdown: CancellationToken) {
    let (mut removed, mut commits) = ctx.store.view_and_watch(|t| {
        t.cluster()
            .map(|c| c.removed_nodes.clone())
            .unwrap_or_default()
    });
    loop {
        ctx.deny.replace(removed);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            commit = commits.recv() => {
                if let Err(tokio::sync::broadcast::error::RecvError::Closed) = commit {
                    return;
                }
            }
        }
        removed = ctx.store.view(|t| {
            t.cluster()
                .map(|c| c.removed_nodes.clone())
                .unwrap_or_default()
        });
    }
}
