//! A task's root filesystem: an overlay whose lower layers are the image's
//! unpacked layers (shared by every task of the image, never written) and
//! whose upper layer is the task's own, under its directory. What a task
//! writes dies with the task, as in Docker; named volumes outlive it.

use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};

/// The page the kernel copies mount options into: the lowerdir list must
/// fit in it with the rest.
const MOUNT_DATA_MAX: usize = 4095;

/// Paths of a task's overlay, all inside its directory.
#[derive(Debug, Clone)]
pub struct Rootfs {
    dir: PathBuf,
}

impl Rootfs {
    /// The overlay of the task whose directory is `task_dir`.
    pub fn new(task_dir: &Path) -> Rootfs {
        Rootfs {
            dir: task_dir.join("fs"),
        }
    }

    /// Where the container's `/` is mounted.
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// Mounts the overlay of `layers` (lowest first); idempotent.
    pub fn mount(&self, layers: &[PathBuf]) -> io::Result<()> {
        if is_mounted(&self.root()) {
            return Ok(());
        }
        if layers.is_empty() {
            return Err(io::Error::other("the image has no layers"));
        }
        for d in [self.upper(), self.work(), self.root()] {
            std::fs::create_dir_all(&d)?;
        }
        let lower: Vec<String> = layers
            .iter()
            .rev()
            .map(|l| l.to_string_lossy().into_owned())
            .collect();
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            self.upper().display(),
            self.work().display()
        );
        if data.len() > MOUNT_DATA_MAX {
            return Err(io::Error::other(format!(
                "the image has too many layers ({}) for one overlay mount",
                layers.len()
            )));
        }
        mount(
            Some("overlay"),
            &self.root(),
            Some("overlay"),
            MsFlags::empty(),
            Some(data.as_str()),
        )
        .map_err(|e| io::Error::other(format!("cannot mount the task's overlay: {e}")))
    }

    /// Unmounts the overlay (detached: a straggler holding it open does not
    /// keep the task from being removed).
    pub fn unmount(&self) -> io::Result<()> {
        super::super::process::namespaces::unmount(&self.root())
    }

    /// A regular file of the image (`/etc/passwd`), empty when missing.
    /// Read from the host, so a symlink (which could name a host file) is
    /// not followed.
    pub fn read(&self, path: &str) -> String {
        let mut at = self.root();
        for part in Path::new(path.trim_start_matches('/')).components() {
            at.push(part);
            match std::fs::symlink_metadata(&at) {
                Ok(m) if !m.file_type().is_symlink() => {}
                _ => return String::new(),
            }
        }
        if !at.is_file() {
            return String::new();
        }
        std::fs::read_to_string(at).unwrap_or_default()
    }
}

/// Whether `path` is a mount point (its device differs from its parent's).
fn is_mounted(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let (Ok(me), Some(Ok(parent))) = (
        std::fs::metadata(path),
        path.parent().map(std::fs::metadata),
    ) else {
        return false;
    };
    me.dev() != parent.dev()
}
