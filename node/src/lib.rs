//! A Shoal node: what `shoal daemon` runs, as a library. A node is always
//! a worker and, by role, a manager; this crate is the one place that
//! composes the two (`shoal_manager` and `shoal_worker` never import each
//! other). [`Node::start`] starts a node with one call, as
//! `shoal_manager::runtime::Manager::start` starts a manager, and
//! [`Node::stop`] stops it and waits for everything it started.
//!
//! # Layout
//! - [`Node`] (here): the state dir's lock, the engine, the image and
//!   volume stores, the manager slot, and the node's [`SwarmNode`].
//! - [`swarm`]: [`SwarmNode`], the node's place in a swarm: `init`
//!   (and `--force-new-cluster`), `join`, `leave`, `unlock`, `backup` and
//!   `restore`, `info`; starting its manager (`swarm/manager.rs`).
//! - `member`: the worker side of a node in a swarm: agent, worker,
//!   engine, log publisher, data plane, the manager-list keeper.
//! - `renewal`: certificate renewal (`schedule`, `request`) and its
//!   effects, role changes included (`apply`).
//! - [`swarm_file`]: `swarm.json`; [`state_dir`]: the state dir's lock;
//!   `addr`: listen and advertise addresses.
//! - [`NodeError`]: every failure, typed; the local API maps them to gRPC
//!   statuses.
//!
//! # Shutdown
//! One tree: [`Node::start`] takes the caller's token and hangs a child
//! off it; the manager and the membership hang off that one, and each
//! membership's loops off the membership's. Cancelling any branch stops
//! what hangs below it; [`Node::stop`] waits for all of it.
#![deny(missing_docs)]

mod addr;
mod error;
mod machine;
mod member;
mod renewal;
pub mod state_dir;
pub mod swarm;
pub mod swarm_file;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use shoal_manager::controlapi::ManagerSlot;
use shoal_proto::shutdown::CancellationToken;
use shoal_worker::engine_choice::{self, EngineChoice, EngineInfo, EngineKind};
use shoal_worker::image::{ImageStore, RegistryConfig};
use shoal_worker::volume::VolumeStore;

pub use error::NodeError;
pub use swarm::SwarmNode;

use machine::Machine;
use state_dir::StateDir;

/// How a node runs on its machine.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where it keeps its state (certificates, Raft log, tasks).
    pub state_dir: PathBuf,
    /// The engine that runs its tasks.
    pub engine: EngineChoice,
    /// The Docker Engine's socket, for the docker engine.
    pub docker_socket: PathBuf,
    /// Registries the embedded engine reaches over plain HTTP.
    pub insecure_registries: Vec<String>,
}

/// A running node.
pub struct Node {
    /// Held for the node's life: one daemon per state dir.
    state: StateDir,
    machine: Machine,
    slot: ManagerSlot,
    swarm: Arc<SwarmNode>,
}

impl Node {
    /// Starts a node: locks the state dir, resolves the engine, opens the
    /// embedded engine's stores, and takes up the swarm the node was in
    /// (its manager by role, and its worker). `shutdown` stops it; so does
    /// [`Node::stop`], which also waits.
    pub async fn start(
        config: NodeConfig,
        shutdown: &CancellationToken,
    ) -> Result<Node, NodeError> {
        // First: two daemons must never share state.
        let state = StateDir::open(&config.state_dir)?;
        let engine = engine_choice::resolve(config.engine, &config.docker_socket).await?;
        tracing::info!(
            version = shoal_proto::build_info::VERSION,
            commit = shoal_proto::build_info::GIT_COMMIT,
            state_dir = %state.path().display(),
            engine = %engine.display(),
            "shoal daemon starting"
        );
        shoal_proto::tls::install_default_provider();
        let embedded = engine.kind == EngineKind::Embedded;
        let images = match embedded {
            true => Some(Arc::new(ImageStore::open(
                state.path().join("images"),
                RegistryConfig {
                    insecure: config.insecure_registries,
                },
            )?)),
            false => None,
        };
        // One volume store for the engine's mounts and `shoal volume`.
        let volumes = match embedded {
            true => Some(Arc::new(VolumeStore::open(state.path().join("volumes"))?)),
            false => None,
        };
        let machine = Machine {
            state_dir: state.path().to_path_buf(),
            engine,
            docker_socket: config.docker_socket,
            images,
            volumes,
        };
        let slot = ManagerSlot::default();
        let swarm = SwarmNode::new(machine.clone(), slot.clone(), shutdown.child_token());
        swarm.resume().await?;
        Ok(Node {
            state,
            machine,
            slot,
            swarm,
        })
    }

    /// The node's swarm side: init, join, leave, info.
    pub fn swarm(&self) -> &Arc<SwarmNode> {
        &self.swarm
    }

    /// Where the running manager's context is (empty on a worker): the
    /// control API, log API and metrics serve from it.
    pub fn slot(&self) -> &ManagerSlot {
        &self.slot
    }

    /// The engine that runs the node's tasks.
    pub fn engine(&self) -> &EngineInfo {
        &self.machine.engine
    }

    /// The node's state dir.
    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    /// The node's image store (embedded engine only).
    pub fn images(&self) -> Option<&Arc<ImageStore>> {
        self.machine.images.as_ref()
    }

    /// The node's volume store (embedded engine only).
    pub fn volumes(&self) -> Option<&Arc<VolumeStore>> {
        self.machine.volumes.as_ref()
    }

    /// Stops the node's manager and worker side and waits for them; then
    /// releases the state dir. State stays on disk and tasks keep running,
    /// for the next start to take up.
    pub async fn stop(self) {
        self.swarm.stop().await;
        drop(self.state);
    }
}
