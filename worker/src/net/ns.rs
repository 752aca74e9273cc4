//! Network namespaces as files: create and pin one (like `ip netns add`),
//! remove it, list ours, and run a closure inside one.
//!
//! Entering a namespace changes only the calling thread, so every entry
//! happens on a fresh thread that then ends: the daemon's runtime threads
//! never move.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};

use crate::exec::process::namespaces::{create_netns, unmount};

use super::NetError;

/// Where `ip netns` keeps its names: ours show up in `ip netns list`.
pub const NETNS_DIR: &str = "/run/netns";

/// The calling thread's network namespace.
pub fn current() -> Result<File, NetError> {
    let path = "/proc/thread-self/ns/net";
    File::open(path).map_err(NetError::io("open", path))
}

/// Opens the namespace pinned at `path`.
pub fn open(path: &Path) -> Result<File, NetError> {
    File::open(path).map_err(NetError::io("open namespace", path))
}

/// Creates (or finds) the namespace pinned at `path`, `lo` up.
pub async fn create(path: &Path) -> Result<(), NetError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(NetError::io("create", dir))?;
    }
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || create_netns(&p))
        .await
        .map_err(|e| NetError::io("create namespace", path)(io::Error::other(e)))?
        .map_err(NetError::io("create namespace", path))
}

/// Unpins and deletes the namespace file at `path`. The kernel frees the
/// namespace once nothing else holds it (sockets opened inside do).
pub fn remove(path: &Path) -> Result<(), NetError> {
    unmount(path).map_err(NetError::io("unmount", path))?;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(NetError::io("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Whether a namespace is pinned at `path`.
pub fn exists(path: &Path) -> bool {
    // NSFS_MAGIC: a bound namespace file, not a leftover empty file.
    crate::exec::process::namespaces::is_mount_of(path, 0x6e736673)
}

/// The namespace files in `dir` whose names start with `prefix`.
pub fn list(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// Runs `f` on a fresh thread that entered namespace `ns`, and waits for
/// it without blocking the runtime.
pub async fn run_in<T, F>(ns: &File, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    let ns = ns.try_clone()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("shoal-netns".into())
        .spawn(move || {
            let result = setns(&ns, CloneFlags::CLONE_NEWNET)
                .map_err(io::Error::from)
                .and_then(|()| f());
            let _ = tx.send(result);
        })?;
    rx.await
        .map_err(|_| io::Error::other("the namespace thread panicked"))?
}

/// Writes an IPv4 sysctl (`net/ipv4/...`) inside namespace `ns`: /proc/sys/net
/// shows the namespace of the thread that opens it.
pub async fn sysctl(ns: &File, key: &'static str, value: &'static str) -> Result<(), NetError> {
    let path = PathBuf::from("/proc/sys").join(key);
    let p = path.clone();
    run_in(ns, move || std::fs::write(&p, value))
        .await
        .map_err(NetError::io("write sysctl", path))
}
