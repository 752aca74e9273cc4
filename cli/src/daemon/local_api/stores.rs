//! What the node-local image and volume calls share: this node's stores
//! (present with the embedded engine only) and its engine's task dirs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use shoal_worker::engine_choice::EngineKind;
use shoal_worker::exec::process::InUse;
use shoal_worker::image::ImageStore;
use shoal_worker::volume::VolumeStore;

/// This node's stores, as the local API serves them.
#[derive(Clone)]
pub struct Stores {
    pub(super) engine: EngineKind,
    pub(super) state_dir: PathBuf,
    /// `<state>/process/tasks`: one dir per task of the embedded engine.
    pub(super) tasks_dir: PathBuf,
    pub(super) images: Option<Arc<ImageStore>>,
    /// The image store's root (`<state>/images`).
    pub(super) images_root: PathBuf,
    pub(super) volumes: Option<Arc<VolumeStore>>,
}

impl Stores {
    /// The stores of a daemon on `state_dir` running `engine`.
    pub fn new(
        engine: EngineKind,
        state_dir: PathBuf,
        images: Option<Arc<ImageStore>>,
        volumes: Option<Arc<VolumeStore>>,
    ) -> Stores {
        // Tarballs of loads cut short by a restart.
        let _ = std::fs::remove_dir_all(state_dir.join("image-load"));
        Stores {
            engine,
            tasks_dir: state_dir.join("process").join("tasks"),
            images_root: state_dir.join("images"),
            state_dir,
            images,
            volumes,
        }
    }
}

/// Which tasks use which images and volumes, from the task dirs.
pub(super) fn in_use(tasks_dir: &Path) -> InUse {
    shoal_worker::exec::process::in_use(tasks_dir)
}
