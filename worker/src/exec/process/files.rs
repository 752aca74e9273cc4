//! Secrets and configs: written to a tmpfs at `<task dir>/files` (never a
//! disk-backed dir; mode 0700 so host users cannot read them), mirrored
//! under `files/root/<target>`, and bind-mounted read-only at their
//! targets inside the task's own mount namespace only.
//!
//! A bind needs a mount point on the host's filesystem (tasks share it):
//! - a target that exists is covered file by file;
//! - a target whose directory is missing, or is `/run/secrets`, gets its
//!   whole directory bound (as Docker's /run/secrets tmpfs), the empty
//!   directory being created on the host once;
//! - otherwise an empty placeholder file is created on the host.
//!
//! Created mount points stay (another task may use them right now).

use std::io;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::unistd::{Gid, Uid, chown};

use super::config::Bind;
use super::namespaces::{is_mount_of, unmount};
use crate::exec::{ExecError, TaskFile};

const TMPFS_MAGIC: i64 = 0x0102_1994;
/// Cap on the task's tmpfs (secrets and configs are small: 500 KiB each).
const TMPFS_SIZE: &str = "size=16m";
/// Docker's secrets directory, always bound as a whole.
const SECRETS_DIR: &str = "/run/secrets";

/// Mounts the task's tmpfs at `dir` (idempotent).
pub fn mount_tmpfs(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if is_mount_of(dir, TMPFS_MAGIC) {
        return Ok(());
    }
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(format!("mode=0700,{TMPFS_SIZE}").as_str()),
    )?;
    Ok(())
}

/// Unmounts (and so wipes) the task's tmpfs.
pub fn unmount_tmpfs(dir: &Path) -> io::Result<()> {
    unmount(dir)
}

/// Where `target` is mirrored on the tmpfs.
pub fn mirror(files_dir: &Path, target: &Path) -> PathBuf {
    let rel: PathBuf = target
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    files_dir.join("root").join(rel)
}

/// Checks a target path: absolute, no `..`.
fn check_target(path: &Path) -> Result<(), ExecError> {
    let ok = path.is_absolute()
        && path.parent().is_some()
        && !path.components().any(|c| matches!(c, Component::ParentDir));
    if ok {
        Ok(())
    } else {
        Err(ExecError::Rejected(format!(
            "file target {} must be an absolute path without `..`",
            path.display()
        )))
    }
}

/// Writes `files` onto the tmpfs at `files_dir` (which must be mounted).
pub fn write_files(files_dir: &Path, files: &[TaskFile]) -> Result<(), ExecError> {
    for f in files {
        check_target(&f.path)?;
        let dst = mirror(files_dir, &f.path);
        let fail = |e: io::Error| {
            ExecError::Failed(format!(
                "cannot write {} on the task's tmpfs: {e}",
                f.path.display()
            ))
        };
        if let Some(parent) = dst.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(fail)?;
        }
        std::fs::write(&dst, &f.data).map_err(fail)?;
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(f.mode & 0o7777))
            .map_err(fail)?;
        chown(&dst, Some(Uid::from_raw(f.uid)), Some(Gid::from_raw(f.gid)))
            .map_err(|e| fail(e.into()))?;
    }
    Ok(())
}

/// Plans the binds for `targets` and creates their mount points on the
/// host (`host_root` is `/` except in unit tests).
pub fn plan_binds(
    files_dir: &Path,
    targets: &[PathBuf],
    host_root: &Path,
) -> Result<Vec<Bind>, ExecError> {
    let on_host = |p: &Path| host_root.join(p.strip_prefix("/").unwrap_or(p));
    let fail = |p: &Path, e: io::Error| {
        ExecError::Failed(format!(
            "cannot create the mount point {}: {e}",
            p.display()
        ))
    };
    // Directories bound whole first; they cover every target below them.
    let mut dirs: Vec<PathBuf> = targets
        .iter()
        .filter(|t| !on_host(t).exists())
        .filter_map(|t| t.parent())
        .filter(|p| !on_host(p).is_dir() || *p == Path::new(SECRETS_DIR))
        .map(Path::to_path_buf)
        .collect();
    dirs.sort();
    dirs.dedup();
    let covered = |p: &Path, dirs: &[PathBuf]| dirs.iter().any(|d| p != d && p.starts_with(d));
    let dirs: Vec<PathBuf> = dirs
        .iter()
        .filter(|d| !covered(d, &dirs))
        .cloned()
        .collect();
    let mut binds = Vec::new();
    for d in &dirs {
        let host = on_host(d);
        std::fs::create_dir_all(&host).map_err(|e| fail(d, e))?;
        std::fs::create_dir_all(mirror(files_dir, d)).map_err(|e| fail(d, e))?;
        binds.push(Bind {
            source: mirror(files_dir, d),
            target: d.clone(),
        });
    }
    for t in targets {
        if dirs.iter().any(|d| t.starts_with(d)) {
            continue;
        }
        let host = on_host(t);
        if !host.exists() {
            std::fs::File::create(&host).map_err(|e| fail(t, e))?;
        }
        binds.push(Bind {
            source: mirror(files_dir, t),
            target: t.clone(),
        });
    }
    Ok(binds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_cover_secrets_dirs_and_existing_files() {
        let host = tempfile::tempdir().unwrap();
        let files = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(host.path().join("etc")).unwrap();
        std::fs::write(host.path().join("etc/app.conf"), "host").unwrap();
        std::fs::create_dir_all(host.path().join("run/secrets")).unwrap();
        let targets: Vec<PathBuf> = [
            "/run/secrets/db_pw",
            "/run/secrets/nested/x",
            "/etc/app.conf",
            "/etc/new.conf",
            "/opt/app/conf/a.yml",
            "/opt/app/conf/b.yml",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let binds = plan_binds(files.path(), &targets, host.path()).unwrap();
        let got: Vec<(&Path, &Path)> = binds
            .iter()
            .map(|b| {
                (
                    b.target.as_path(),
                    b.source.strip_prefix(files.path()).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (Path::new("/opt/app/conf"), Path::new("root/opt/app/conf")),
                (Path::new("/run/secrets"), Path::new("root/run/secrets")),
                (Path::new("/etc/app.conf"), Path::new("root/etc/app.conf")),
                (Path::new("/etc/new.conf"), Path::new("root/etc/new.conf")),
            ]
        );
        // Mount points exist on the "host"; the host file is untouched.
        assert!(host.path().join("opt/app/conf").is_dir());
        assert!(host.path().join("etc/new.conf").is_file());
        assert_eq!(
            std::fs::read_to_string(host.path().join("etc/app.conf")).unwrap(),
            "host"
        );
        assert!(!host.path().join("run/secrets/db_pw").exists());
    }

    #[test]
    fn files_get_their_mode_and_owner() {
        let files = tempfile::tempdir().unwrap();
        let f = TaskFile {
            path: "/run/secrets/pw".into(),
            data: b"hunter2".to_vec(),
            uid: 0,
            gid: 0,
            mode: 0o400,
            secret: true,
        };
        write_files(files.path(), &[f]).unwrap();
        let p = files.path().join("root/run/secrets/pw");
        assert_eq!(std::fs::read(&p).unwrap(), b"hunter2");
        assert_eq!(p.metadata().unwrap().permissions().mode() & 0o7777, 0o400);
        let bad = TaskFile {
            path: "relative".into(),
            ..Default::default()
        };
        assert!(
            write_files(files.path(), &[bad])
                .unwrap_err()
                .is_rejection()
        );
    }
}
