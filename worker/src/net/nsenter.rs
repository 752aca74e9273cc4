//! Running code inside a pinned network namespace.
//!
//! `setns` changes only the calling thread's namespace, so the work runs
//! on a throwaway thread: the daemon's other threads (the tokio runtime
//! among them) stay where they are. Sockets created there keep belonging
//! to that namespace after the thread ends, and processes spawned from it
//! (`nft`) start inside it.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};

/// Runs `f` on a fresh thread that has joined the network namespace
/// pinned at `netns` (an nsfs file, or `/proc/<pid>/ns/net`).
pub fn in_netns<T, F>(netns: &Path, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    let path: PathBuf = netns.to_path_buf();
    std::thread::Builder::new()
        .name("shoal-netns".into())
        .spawn(move || -> io::Result<T> {
            let ns = File::open(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            setns(&ns, CloneFlags::CLONE_NEWNET)?;
            f()
        })?
        .join()
        .map_err(|_| io::Error::other("the network namespace thread panicked"))?
}

/// Writes a sysctl under /proc/sys/net inside `netns` (those files are
/// per namespace, resolved by the writing thread's namespace).
pub fn sysctl(netns: &Path, key: &str, value: &str) -> io::Result<()> {
    let file = format!("/proc/sys/{}", key.replace('.', "/"));
    let value = value.to_string();
    in_netns(netns, move || std::fs::write(&file, value))
}
