//! A task's secrets and configs on the node: a tmpfs Shoal mounts at
//! `<state>/tasks/<id>/files`, so secret data never touches a disk, and
//! that the container binds file by file. Unmounted (and so wiped) when
//! the task is removed. Nothing here logs file contents.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use super::spec::{FileBind, file_source};
use crate::exec::{ExecError, TaskFile};

/// Room on the tmpfs beyond the files themselves (directories, rounding).
const TMPFS_SLACK: usize = 1 << 20;

/// Where a task's files live under the engine's state directory.
pub fn files_dir(state_dir: &Path, task_id: &str) -> PathBuf {
    state_dir.join("tasks").join(task_id).join("files")
}

/// Mounts the task's tmpfs (once) and writes every file with its owner
/// and mode. Rewriting keeps each file's inode, so a container created
/// earlier still sees the same files.
pub fn write(dir: &Path, files: &[TaskFile]) -> Result<Vec<FileBind>, ExecError> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    for f in files {
        check_target(&f.path)?;
    }
    std::fs::create_dir_all(dir).map_err(|e| failed("create", dir, e))?;
    if !is_mount_point(dir)? {
        let size = files.iter().map(|f| f.data.len()).sum::<usize>() + TMPFS_SLACK;
        let options = format!("size={size},mode=0700");
        nix::mount::mount(
            Some("shoal-task-files"),
            dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(options.as_str()),
        )
        .map_err(|e| ExecError::Failed(format!("mount tmpfs on {}: {e}", dir.display())))?;
    }
    files.iter().map(|f| write_one(dir, f)).collect()
}

fn write_one(dir: &Path, f: &TaskFile) -> Result<FileBind, ExecError> {
    let source = file_source(dir, &f.path);
    if let Some(parent) = source.parent() {
        std::fs::create_dir_all(parent).map_err(|e| failed("create", parent, e))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&source)
        .map_err(|e| failed("write", &source, e))?;
    file.write_all(&f.data)
        .map_err(|e| failed("write", &source, e))?;
    nix::unistd::fchown(
        &file,
        Some(nix::unistd::Uid::from_raw(f.uid)),
        Some(nix::unistd::Gid::from_raw(f.gid)),
    )
    .map_err(|e| ExecError::Failed(format!("chown {}: {e}", source.display())))?;
    file.set_permissions(std::fs::Permissions::from_mode(f.mode & 0o7777))
        .map_err(|e| failed("chmod", &source, e))?;
    Ok(FileBind {
        source: source.to_string_lossy().into_owned(),
        target: f.path.to_string_lossy().into_owned(),
    })
}

/// A target must be absolute and stay where it says: `..` would let a
/// spec write outside the task's tmpfs.
fn check_target(path: &Path) -> Result<(), ExecError> {
    let plain = path
        .components()
        .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if path.is_absolute() && plain && path != Path::new("/") {
        Ok(())
    } else {
        Err(ExecError::Rejected(format!(
            "file target {} must be an absolute path without '..'",
            path.display()
        )))
    }
}

/// Unmounts the task's tmpfs (dropping its contents) and removes the
/// task's directory. A task without files is a no-op.
pub fn remove(state_dir: &Path, task_id: &str) -> Result<(), ExecError> {
    let dir = files_dir(state_dir, task_id);
    // Lazily: a container being torn down may still hold a bind of a file.
    while is_mount_point(&dir)? {
        nix::mount::umount2(&dir, MntFlags::MNT_DETACH)
            .map_err(|e| ExecError::Failed(format!("unmount {}: {e}", dir.display())))?;
    }
    let task_dir = state_dir.join("tasks").join(task_id);
    match std::fs::remove_dir_all(&task_dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(failed("remove", &task_dir, e)),
    }
}

/// Whether `dir` is a mount point, from /proc/self/mountinfo (field 5).
pub fn is_mount_point(dir: &Path) -> Result<bool, ExecError> {
    let Ok(dir) = dir.canonicalize() else {
        return Ok(false);
    };
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| failed("read", Path::new("/proc/self/mountinfo"), e))?;
    let wanted = escape_mountinfo(&dir.to_string_lossy());
    Ok(info
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(wanted.as_str())))
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn escape_mountinfo(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

fn failed(what: &str, path: &Path, e: std::io::Error) -> ExecError {
    ExecError::Failed(format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_stay_inside() {
        assert!(check_target(Path::new("/run/secrets/s1")).is_ok());
        for bad in ["run/secrets/s1", "/run/../../etc/passwd", "/"] {
            let err = check_target(Path::new(bad));
            assert!(
                err.as_ref().is_err_and(|e| e.is_rejection()),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn escapes_like_the_kernel() {
        assert_eq!(escape_mountinfo("/a b\\c"), "/a\\040b\\134c");
    }
}
