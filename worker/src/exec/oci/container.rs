//! Creating, starting and entering an image task's container with youki's
//! `libcontainer`, from inside the task shim.
//!
//! The shim stays: libcontainer is a runtime (create, start, exec), not a
//! supervisor. Something must outlive the daemon, reap the container's
//! init, copy its output into the log and write the exit file; that is
//! the shim's job on both the process and the image path. libcontainer
//! clones the container's init as a sibling of its intermediate process,
//! so the init is the shim's own child and `waitpid` works on it.
//!
//! Runs single-threaded (the shim's rule): libcontainer forks.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::unistd::Pid;

/// The file libcontainer reads in the bundle directory.
pub const SPEC_FILE: &str = "config.json";

/// A task's container: its OCI bundle (the runtime spec) and libcontainer's
/// state, both in the task's directory.
#[derive(Debug, Clone)]
pub struct ContainerDirs {
    /// Holds `config.json`.
    pub bundle: PathBuf,
    /// libcontainer's root (`<root>/<container id>/state.json`).
    pub runtime: PathBuf,
}

impl ContainerDirs {
    /// The dirs of the task whose directory is `task_dir`.
    pub fn new(task_dir: &Path) -> ContainerDirs {
        ContainerDirs {
            bundle: task_dir.join("bundle"),
            runtime: task_dir.join("runtime"),
        }
    }
}

/// Creates and starts the container `id`, its stdout and stderr on the
/// given pipes and stdin on /dev/null; returns its init's host pid.
pub fn create_and_start(
    dirs: &ContainerDirs,
    id: &str,
    stdout: OwnedFd,
    stderr: OwnedFd,
) -> Result<Pid, String> {
    std::fs::create_dir_all(&dirs.runtime)
        .map_err(|e| format!("cannot create {}: {e}", dirs.runtime.display()))?;
    let null = std::fs::File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
    let mut container = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
        .with_root_path(&dirs.runtime)
        .map_err(|e| format!("the container runtime: {e}"))?
        .with_stdin(null)
        .with_stdout(stdout)
        .with_stderr(stderr)
        .as_init(&dirs.bundle)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(|e| format!("cannot create the container: {e}"))?;
    container
        .start()
        .map_err(|e| format!("cannot start the container: {e}"))?;
    // libcontainer speaks an older nix; the pid crosses as a number.
    container
        .pid()
        .map(|p| Pid::from_raw(p.as_raw()))
        .ok_or_else(|| "the container started without a process".to_string())
}

/// Runs `cmd` in the running container `id` (same namespaces, cgroup,
/// user, capabilities and seccomp filter as its init), with the caller's
/// stdio; returns the new process, a child of the caller.
pub fn enter(dirs: &ContainerDirs, id: &str, cmd: &[String]) -> Result<Pid, String> {
    ContainerBuilder::new(id.to_string(), SyscallType::Linux)
        .with_root_path(&dirs.runtime)
        .map_err(|e| format!("the container runtime: {e}"))?
        .as_tenant()
        .with_container_args(cmd.to_vec())
        .with_detach(true)
        .build()
        .map(|p| Pid::from_raw(p.as_raw()))
        .map_err(|e| format!("{e}"))
}
