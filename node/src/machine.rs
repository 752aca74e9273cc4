//! What a node has on its machine whatever its swarm: its state dir, its
//! engine and the embedded engine's image and volume stores.

use std::path::PathBuf;
use std::sync::Arc;

use shoal_proto::credentials::NodeCredentials;
use shoal_proto::objects::{EngineDescription, NodeDescription, Platform, Resources};
use shoal_worker::engine_choice::{EngineInfo, EngineKind};
use shoal_worker::host::HostFacts;
use shoal_worker::image::ImageStore;
use shoal_worker::volume::VolumeStore;

/// The node's local resources, shared by its swarm side and its worker.
#[derive(Clone)]
pub(crate) struct Machine {
    pub state_dir: PathBuf,
    pub engine: EngineInfo,
    pub docker_socket: PathBuf,
    /// The node's image store (embedded engine only).
    pub images: Option<Arc<ImageStore>>,
    /// The node's volume store (embedded engine only).
    pub volumes: Option<Arc<VolumeStore>>,
}

impl Machine {
    /// `<state>/manager`: keys and Raft log (managers only).
    pub fn manager_dir(&self) -> PathBuf {
        self.state_dir.join("manager")
    }

    /// `<state>/certificates`.
    pub fn creds_dir(&self) -> PathBuf {
        NodeCredentials::dir(&self.state_dir)
    }

    /// What the node object says this machine is.
    pub fn description(&self) -> NodeDescription {
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
                // Docker reports its own version; built-ins have none.
                version: match self.engine.kind {
                    EngineKind::Docker => self.engine.version.clone(),
                    _ => String::new(),
                },
                labels: Default::default(),
            }),
        }
    }
}
