//! The node's named volumes, for the `local` driver, kept as Docker keeps
//! them: what a task writes into a volume outlives the task, on this node.
//!
//! ```text
//! <state>/volumes/            0700: other users never read a volume
//!   .lock                     flock of every change (one store or several)
//!   <name>/meta.json          driver, labels, options, created, anonymous
//!   <name>/_data/             0755: what tasks see (rbind)
//! ```
//!
//! A volume whose options say `type`, `device` and `o` (Docker's local
//! driver: NFS, tmpfs, a host path with `o=bind`) is a mount of that device
//! on `_data`, made when a task first takes it ([`VolumeStore::activate`])
//! and undone when the last task using it goes ([`VolumeStore::release`])
//! or at removal. Without options it is a plain directory.
//!
//! Volumes are created on first use and kept as first created (a later
//! mount's other labels or options do not change them, as in Docker).
//! Which tasks use a volume is the caller's knowledge (the engine's task
//! configs on disk), given as an `in_use` function; the store adds the
//! tasks that took a volume and whose config is not written yet.

mod local;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The one driver this node has.
pub const LOCAL_DRIVER: &str = "local";
/// The label Docker gives anonymous volumes (`volume prune` removes those).
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

const META: &str = "meta.json";
const DATA: &str = "_data";
const LOCK: &str = ".lock";
/// Prefixes of work dirs, never volume names (those start alphanumeric).
const NEW_PREFIX: &str = ".new-";
const GONE_PREFIX: &str = ".rm-";

/// One volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// The name (64 hex digits for an anonymous volume).
    pub name: String,
    /// Always `local`.
    pub driver: String,
    /// User labels (stacks add `com.docker.stack.namespace`).
    pub labels: BTreeMap<String, String>,
    /// The local driver's options: `type`, `device`, `o`.
    pub options: BTreeMap<String, String>,
    /// `<root>/<name>/_data`, what tasks mount.
    pub mountpoint: PathBuf,
    /// When it was created.
    pub created_at: SystemTime,
    /// Made for a task's mount without a source or an image's `VOLUME`.
    pub anonymous: bool,
}

/// Why a volume operation failed; messages as Docker's.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// No volume by that name.
    #[error("get {0}: no such volume")]
    NotFound(String),
    /// Tasks (running or not) still use it.
    #[error("remove {name}: volume is in use - [{}]", by.join(", "))]
    InUse {
        /// The volume.
        name: String,
        /// The task ids using it.
        by: Vec<String>,
    },
    /// Not `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
    #[error(
        "{0:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
    )]
    BadName(String),
    /// Any driver but `local`.
    #[error(
        "volume driver {0:?} is not supported: this node has the \"local\" driver only (its options type, device and o mount NFS, tmpfs or a host path)"
    )]
    UnsupportedDriver(String),
    /// An option the local driver does not take, or a missing one.
    #[error("{0}")]
    BadOption(String),
    /// The filesystem or a mount failed.
    #[error("{0}")]
    Io(String),
}

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> VolumeError {
    VolumeError::Io(format!("{what} {}: {e}", path.display()))
}

/// What `meta.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    driver: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    options: BTreeMap<String, String>,
    created_at: SystemTime,
    #[serde(default)]
    anonymous: bool,
}

/// The node's volumes under one root. Its calls block (filesystem,
/// mounts); async callers run them on a blocking thread.
#[derive(Debug)]
pub struct VolumeStore {
    root: PathBuf,
    /// Volume → tasks that took it with [`VolumeStore::activate`] and have
    /// not released it (their config may not be on disk yet).
    users: Mutex<HashMap<String, BTreeSet<String>>>,
}

/// Docker's rule for volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn check_name(name: &str) -> Result<(), VolumeError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest: Vec<char> = chars.collect();
    let rest_ok = !rest.is_empty()
        && rest
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && name.len() <= 255 {
        Ok(())
    } else {
        Err(VolumeError::BadName(name.to_string()))
    }
}

/// `local` or empty (= local); anything else is not on this node.
pub fn check_driver(driver: &str) -> Result<(), VolumeError> {
    if driver.is_empty() || driver == LOCAL_DRIVER {
        Ok(())
    } else {
        Err(VolumeError::UnsupportedDriver(driver.to_string()))
    }
}

/// `n` random bytes as hex, from the kernel.
fn random_hex(n: usize) -> Result<String, VolumeError> {
    let mut buf = vec![0u8; n];
    let path = Path::new("/dev/urandom");
    io::Read::read_exact(
        &mut std::fs::File::open(path).map_err(|e| io_err("open", path, e))?,
        &mut buf,
    )
    .map_err(|e| io_err("read", path, e))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

impl VolumeStore {
    /// The store at `root` (created 0700 if missing); work dirs a crash
    /// left behind are cleared.
    pub fn open(root: PathBuf) -> Result<VolumeStore, VolumeError> {
        std::fs::create_dir_all(&root).map_err(|e| io_err("create", &root, e))?;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io_err("chmod", &root, e))?;
        let store = VolumeStore {
            root,
            users: Mutex::default(),
        };
        let _lock = store.lock()?;
        if let Ok(entries) = std::fs::read_dir(&store.root) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let data = e.path().join(DATA);
                if (name.starts_with(NEW_PREFIX) || name.starts_with(GONE_PREFIX))
                    && !local::is_mounted(&data)
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(store)
    }

    /// The store's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every change holds this file lock, so stores opened twice on one
    /// root (the engine's, the local API's) do not race.
    fn lock(&self) -> Result<nix::fcntl::Flock<std::fs::File>, VolumeError> {
        let path = self.root.join(LOCK);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_err("open", &path, e))?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| io_err("lock", &path, e))
    }

    /// The volume `name`, created as given on first use; an existing one
    /// is returned as it is (Docker keeps the first creation's options).
    pub fn ensure(
        &self,
        name: &str,
        driver: &str,
        labels: &BTreeMap<String, String>,
        options: &BTreeMap<String, String>,
    ) -> Result<Volume, VolumeError> {
        check_name(name)?;
        check_driver(driver)?;
        if let Some(v) = self.get(name) {
            return Ok(v);
        }
        local::check_options(options)?;
        self.create(name, labels, options, false)
    }

    /// A new anonymous volume: a random 64-hex name, Docker's anonymous
    /// label, no options.
    pub fn anonymous(&self) -> Result<Volume, VolumeError> {
        let name = random_hex(32)?;
        let labels = BTreeMap::from([(ANONYMOUS_LABEL.to_string(), String::new())]);
        self.create(&name, &labels, &BTreeMap::new(), true)
    }

    fn create(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        options: &BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<Volume, VolumeError> {
        let _lock = self.lock()?;
        if let Some(v) = self.get(name) {
            return Ok(v);
        }
        let meta = Meta {
            driver: LOCAL_DRIVER.into(),
            labels: labels.clone(),
            options: options.clone(),
            created_at: SystemTime::now(),
            anonymous,
        };
        let dir = self.root.join(name);
        if dir.is_dir() {
            // A directory without its meta (made by hand): adopted.
            make_volume_dir(&dir, &meta)?;
        } else {
            let tmp = self.root.join(format!("{NEW_PREFIX}{}", random_hex(8)?));
            make_volume_dir(&tmp, &meta)?;
            std::fs::rename(&tmp, &dir).map_err(|e| {
                let _ = std::fs::remove_dir_all(&tmp);
                io_err("create", &dir, e)
            })?;
        }
        self.get(name)
            .ok_or_else(|| VolumeError::Io(format!("volume {name} vanished as it was created")))
    }

    /// The volume `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<Volume> {
        check_name(name).ok()?;
        let dir = self.root.join(name);
        let meta: Meta = serde_json::from_slice(&std::fs::read(dir.join(META)).ok()?).ok()?;
        Some(Volume {
            name: name.to_string(),
            driver: meta.driver,
            labels: meta.labels,
            options: meta.options,
            mountpoint: dir.join(DATA),
            created_at: meta.created_at,
            anonymous: meta.anonymous,
        })
    }

    /// Every volume, by name.
    pub fn list(&self) -> Vec<Volume> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut out: Vec<Volume> = entries
            .flatten()
            .filter_map(|e| self.get(&e.file_name().to_string_lossy()))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Task `task_id` takes volume `name`: a volume with device options is
    /// mounted on its `_data` unless it already is. Returns the volume.
    pub fn activate(&self, name: &str, task_id: &str) -> Result<Volume, VolumeError> {
        let _lock = self.lock()?;
        let v = self
            .get(name)
            .ok_or_else(|| VolumeError::NotFound(name.to_string()))?;
        if let Some(device) = local::device(&v.options)?
            && !local::is_mounted(&v.mountpoint)
        {
            local::mount(&device, &v.mountpoint)?;
        }
        self.users_mut()
            .entry(name.to_string())
            .or_default()
            .insert(task_id.to_string());
        Ok(v)
    }

    /// Task `task_id` is done with volume `name`: when no other task uses
    /// it (`in_use`, plus tasks that took it here), its device is
    /// unmounted.
    pub fn release(
        &self,
        name: &str,
        task_id: &str,
        in_use: &dyn Fn(&str) -> Vec<String>,
    ) -> Result<(), VolumeError> {
        let _lock = self.lock()?;
        self.forget_one(name, task_id);
        let Some(v) = self.get(name) else {
            return Ok(());
        };
        let others = self.users_of(name, in_use);
        if others.iter().all(|t| t == task_id)
            && local::device(&v.options).ok().flatten().is_some()
            && local::is_mounted(&v.mountpoint)
        {
            local::unmount(&v.mountpoint)?;
        }
        Ok(())
    }

    /// The volumes task `task_id` took and has not released.
    pub fn held_by(&self, task_id: &str) -> Vec<String> {
        self.users_mut()
            .iter()
            .filter(|(_, tasks)| tasks.contains(task_id))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Drops what task `task_id` holds without unmounting anything (a task
    /// whose preparation failed; the next release or removal unmounts).
    pub fn forget(&self, task_id: &str) {
        for name in self.held_by(task_id) {
            self.forget_one(&name, task_id);
        }
    }

    fn forget_one(&self, name: &str, task_id: &str) {
        let mut users = self.users_mut();
        if let Some(tasks) = users.get_mut(name) {
            tasks.remove(task_id);
            if tasks.is_empty() {
                users.remove(name);
            }
        }
    }

    fn users_mut(&self) -> std::sync::MutexGuard<'_, HashMap<String, BTreeSet<String>>> {
        self.users.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `in_use(name)` and the tasks that took it here, sorted, once each.
    fn users_of(&self, name: &str, in_use: &dyn Fn(&str) -> Vec<String>) -> Vec<String> {
        let mut by: BTreeSet<String> = in_use(name).into_iter().collect();
        if let Some(tasks) = self.users_mut().get(name) {
            by.extend(tasks.iter().cloned());
        }
        by.into_iter().collect()
    }

    /// Removes volume `name` and its data, unless a task uses it
    /// (`in_use` gives the ids of the tasks that do, running or not, as
    /// Docker refuses for a stopped container too).
    pub fn remove(
        &self,
        name: &str,
        in_use: &dyn Fn(&str) -> Vec<String>,
    ) -> Result<Volume, VolumeError> {
        check_name(name).map_err(|_| VolumeError::NotFound(name.to_string()))?;
        let _lock = self.lock()?;
        let v = self
            .get(name)
            .ok_or_else(|| VolumeError::NotFound(name.to_string()))?;
        let by = self.users_of(name, in_use);
        if !by.is_empty() {
            return Err(VolumeError::InUse {
                name: name.to_string(),
                by,
            });
        }
        if local::is_mounted(&v.mountpoint) {
            local::unmount(&v.mountpoint)?;
        }
        // Never delete through a mount: it would be the device's data
        // (a host path bound with `o=bind`).
        if local::is_mounted(&v.mountpoint) {
            return Err(io_err(
                "remove",
                &v.mountpoint,
                "still a mount point after unmounting",
            ));
        }
        let dir = self.root.join(name);
        let gone = self.root.join(format!("{GONE_PREFIX}{}", random_hex(8)?));
        std::fs::rename(&dir, &gone).map_err(|e| io_err("remove", &dir, e))?;
        std::fs::remove_dir_all(&gone).map_err(|e| io_err("remove", &gone, e))?;
        Ok(v)
    }

    /// Removes the volumes no task uses: anonymous ones only unless `all`
    /// (Docker's `volume prune` and `--all`). Returns what went; a volume
    /// that cannot go is skipped.
    pub fn prune(
        &self,
        in_use: &dyn Fn(&str) -> Vec<String>,
        all: bool,
    ) -> Result<Vec<Volume>, VolumeError> {
        if !self.root.is_dir() {
            return Err(io_err("read", &self.root, "not a directory"));
        }
        let mut removed = Vec::new();
        for v in self.list().into_iter().filter(|v| all || v.anonymous) {
            match self.remove(&v.name, in_use) {
                Ok(v) => removed.push(v),
                Err(VolumeError::InUse { .. } | VolumeError::NotFound(_)) => {}
                Err(e) => tracing::warn!(volume = %v.name, error = %e, "cannot prune volume"),
            }
        }
        Ok(removed)
    }
}

/// `dir` with `_data` (0755) and `meta.json` (written atomically).
fn make_volume_dir(dir: &Path, meta: &Meta) -> Result<(), VolumeError> {
    let data = dir.join(DATA);
    std::fs::create_dir_all(&data).map_err(|e| io_err("create", &data, e))?;
    for (d, mode) in [(dir, 0o755), (data.as_path(), 0o755)] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode))
            .map_err(|e| io_err("chmod", d, e))?;
    }
    let path = dir.join(META);
    let tmp = dir.join(format!("{META}.tmp"));
    let bytes = serde_json::to_vec_pretty(meta).map_err(|e| io_err("encode", &path, e))?;
    let write = || -> io::Result<()> {
        std::fs::write(&tmp, &bytes)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| io_err("write", &path, e))
}
