//! `volume create|ls|inspect|rm|prune` on this node: the embedded engine's
//! volume store, with the engine's task dirs saying which volumes tasks
//! mount (those are never removed). The store blocks (filesystem, mounts),
//! so every call runs on a blocking thread.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use shoal_proto::local::{Volume as VolumeMsg, VolumePruneResponse};
use shoal_worker::volume::{Volume, VolumeError, VolumeStore};
use tonic::Status;

use super::images::du;
use super::stores::{Stores, in_use};

impl Stores {
    /// The volume store, or why this node has none.
    fn volumes(&self, command: &str) -> Result<Arc<VolumeStore>, Status> {
        self.volumes
            .clone()
            .ok_or_else(|| self.not_embedded("volume", command))
    }

    /// `volume create`: a new volume, or the one of that name already here
    /// (as Docker's). No name: 64 random hex digits.
    pub async fn volume_create(
        &self,
        name: String,
        driver: String,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
    ) -> Result<VolumeMsg, Status> {
        let store = self.volumes("create")?;
        let tasks_dir = self.tasks_dir.clone();
        blocking(move || {
            let name = if name.is_empty() {
                random_name()?
            } else {
                name
            };
            let v = store
                .ensure(&name, &driver, &labels, &options)
                .map_err(status)?;
            Ok(volume_msg(&v, &in_use(&tasks_dir).volumes))
        })
        .await
    }

    /// Every volume.
    pub async fn volume_list(&self) -> Result<Vec<VolumeMsg>, Status> {
        let store = self.volumes("ls")?;
        let tasks_dir = self.tasks_dir.clone();
        blocking(move || {
            let users = in_use(&tasks_dir).volumes;
            Ok(store.list().iter().map(|v| volume_msg(v, &users)).collect())
        })
        .await
    }

    /// One volume.
    pub async fn volume_inspect(&self, name: String) -> Result<VolumeMsg, Status> {
        let store = self.volumes("inspect")?;
        let tasks_dir = self.tasks_dir.clone();
        blocking(move || {
            let v = store
                .get(&name)
                .ok_or_else(|| Status::not_found(format!("No such volume: {name}")))?;
            Ok(volume_msg(&v, &in_use(&tasks_dir).volumes))
        })
        .await
    }

    /// `volume rm`: refused while a task mounts it; with `force` a volume
    /// that does not exist is not an error.
    pub async fn volume_remove(&self, name: String, force: bool) -> Result<(), Status> {
        let store = self.volumes("rm")?;
        let tasks_dir = self.tasks_dir.clone();
        blocking(move || {
            let users = in_use(&tasks_dir).volumes;
            let in_use = |n: &str| users.get(n).cloned().unwrap_or_default();
            match store.remove(&name, &in_use) {
                Ok(_) => Ok(()),
                Err(VolumeError::NotFound(_)) if force => Ok(()),
                Err(e) => Err(status(e)),
            }
        })
        .await
    }

    /// `volume prune`: the anonymous volumes no task uses, or with `all`
    /// every volume no task uses; the space is what their data took.
    pub async fn volume_prune(&self, all: bool) -> Result<VolumePruneResponse, Status> {
        let store = self.volumes("prune")?;
        let tasks_dir = self.tasks_dir.clone();
        blocking(move || {
            let users = in_use(&tasks_dir).volumes;
            // Measured before they go; a volume mounted from a device (NFS,
            // a host path) is not this node's disk, and not walked.
            let sizes: HashMap<String, u64> = store
                .list()
                .into_iter()
                .filter(|v| (all || v.anonymous) && !users.contains_key(&v.name))
                .map(|v| {
                    let size = if v.options.is_empty() {
                        du(&v.mountpoint)
                    } else {
                        0
                    };
                    (v.name, size)
                })
                .collect();
            let in_use = |n: &str| users.get(n).cloned().unwrap_or_default();
            let removed = store.prune(&in_use, all).map_err(status)?;
            Ok(VolumePruneResponse {
                reclaimed: removed
                    .iter()
                    .map(|v| sizes.get(&v.name).copied().unwrap_or(0))
                    .sum(),
                deleted: removed.into_iter().map(|v| v.name).collect(),
            })
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("volume operation failed: {e}")))?
}

fn volume_msg(v: &Volume, users: &HashMap<String, Vec<String>>) -> VolumeMsg {
    VolumeMsg {
        name: v.name.clone(),
        driver: v.driver.clone(),
        labels: v.labels.clone(),
        options: v.options.clone(),
        mountpoint: v.mountpoint.display().to_string(),
        created_at: Some(v.created_at.into()),
        anonymous: v.anonymous,
        tasks: users.get(&v.name).cloned().unwrap_or_default(),
    }
}

/// 64 random hex digits, as Docker names a volume created without a name.
fn random_name() -> Result<String, Status> {
    use std::io::Read as _;
    let mut buf = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| Status::internal(format!("/dev/urandom: {e}")))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// A store error as a gRPC status.
fn status(e: VolumeError) -> Status {
    let message = e.to_string();
    match e {
        VolumeError::NotFound(_) => Status::not_found(message),
        VolumeError::InUse { .. } => Status::failed_precondition(message),
        VolumeError::BadName(_) | VolumeError::UnsupportedDriver(_) | VolumeError::BadOption(_) => {
            Status::invalid_argument(message)
        }
        VolumeError::Io(_) => Status::internal(message),
    }
}
