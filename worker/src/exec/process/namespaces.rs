//! Namespaces: the task's persistent network namespace (created in
//! `prepare`, like `ip netns add`, so the data plane can wire it before
//! the process starts), and the calls the shim makes to enter them.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

/// `NSFS_MAGIC`: what statfs says of a bound namespace file.
const NSFS_MAGIC: i64 = 0x6e736673;

/// Whether `path` is a mount of filesystem type `magic`.
pub fn is_mount_of(path: &Path, magic: i64) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type().0 == magic)
        .unwrap_or(false)
}

/// Creates a network namespace with `lo` up and pins it at `path` with a
/// bind mount. Idempotent. Runs on a throwaway thread: unshare changes
/// only the calling thread's namespace, so the daemon's other threads
/// stay where they are.
pub fn create_netns(path: &Path) -> io::Result<()> {
    if is_mount_of(path, NSFS_MAGIC) {
        return Ok(());
    }
    let path: PathBuf = path.to_path_buf();
    std::thread::spawn(move || -> io::Result<()> {
        File::create(&path)?;
        unshare(CloneFlags::CLONE_NEWNET)?;
        loopback_up()?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )?;
        Ok(())
    })
    .join()
    .map_err(|_| io::Error::other("the network namespace thread panicked"))?
}

/// Brings `lo` up in the calling thread's network namespace.
fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket/ioctl calls on a zeroed ifreq we own; the fd
    // is closed when `sock` drops.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let sock = <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd);
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Detaches the mount at `path` if there is one (netns, tmpfs).
pub fn unmount(path: &Path) -> io::Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) => Ok(()),
        // Not a mount point, or already gone.
        Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Joins the network namespace pinned at `path` (shim child, before exec).
pub fn enter_netns(path: &Path) -> io::Result<()> {
    let f = File::open(path)?;
    setns(&f, CloneFlags::CLONE_NEWNET)?;
    Ok(())
}

/// The namespaces `exec` enters, in the order it enters them (mount last:
/// after it, the host's /proc paths are no longer visible).
pub const EXEC_NAMESPACES: [(&str, CloneFlags); 5] = [
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// Enters every namespace of process `pid` (exec helper).
pub fn enter_all(pid: i32) -> io::Result<()> {
    let files = EXEC_NAMESPACES
        .iter()
        .map(|(name, flag)| Ok((File::open(format!("/proc/{pid}/ns/{name}"))?, *flag)))
        .collect::<io::Result<Vec<_>>>()?;
    for (f, flag) in files {
        setns(&f, flag)?;
    }
    Ok(())
}

/// In a fresh mount namespace: stop propagation to the host, then mount a
/// /proc that shows the task's own pid namespace.
pub fn private_mounts_and_proc() -> io::Result<()> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )?;
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )?;
    Ok(())
}

/// Bind-mounts `source` read-only at `target` (in the task's namespace).
pub fn bind_read_only(source: &Path, target: &Path) -> io::Result<()> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )?;
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV,
        None::<&str>,
    )?;
    Ok(())
}
