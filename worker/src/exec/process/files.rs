//! Secrets and configs: written to a tmpfs at `<task dir>/files` (never a
//! disk-backed dir; mode 0700 so host users cannot read them), mirrored
//! under `files/root/<target>`, and bind-mounted read-only at their
//! targets inside the task's own mount namespace only.
//!
//! A host-command task sees the host's own filesystem, so a bind needs a
//! mount point there, and the engine makes none but Docker's secrets
//! directory: a target must never become a file on the host.
//! - targets under `/run/secrets` get the whole directory bound (as
//!   Docker's /run/secrets tmpfs); the empty directory is created on the
//!   host once, and refused if it is there as anything but a directory;
//! - any other target must already be a file on the host, which the task
//!   sees covered;
//! - anything else rejects the task, naming the target. (The embedded
//!   engine's tasks have a root of their own, where any target is made.)

use std::io;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::unistd::{Gid, Uid, chown};

use super::config::Bind;
use super::namespaces::{is_mount_of, unmount};
use crate::exec::{ExecError, TaskFile};

const TMPFS_MAGIC: i64 = 0x0102_1994;
/// Cap on the task's tmpfs (secrets are under 500 KiB, configs under 1000 KiB).
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

/// Plans the binds for `targets` (see the module's rules); creates
/// nothing on the host but the secrets directory. `host_root` is `/`
/// except in unit tests.
pub fn plan_binds(
    files_dir: &Path,
    targets: &[PathBuf],
    host_root: &Path,
) -> Result<Vec<Bind>, ExecError> {
    let on_host = |p: &Path| host_root.join(p.strip_prefix("/").unwrap_or(p));
    let secrets = Path::new(SECRETS_DIR);
    let in_secrets = |t: &Path| t.starts_with(secrets) && t != secrets;
    for t in targets {
        check_target(t)?;
    }
    let mut binds = Vec::new();
    if targets.iter().any(|t| in_secrets(t)) {
        secrets_dir(&on_host(secrets))?;
        let source = mirror(files_dir, secrets);
        std::fs::create_dir_all(&source)
            .map_err(|e| ExecError::Failed(format!("cannot create {}: {e}", source.display())))?;
        binds.push(Bind {
            source,
            target: secrets.to_path_buf(),
        });
    }
    for t in targets.iter().filter(|t| !in_secrets(t)) {
        // Followed if a link: the bind covers what the task would see,
        // in its own namespace; nothing is written through it.
        match std::fs::metadata(on_host(t)) {
            Ok(m) if m.is_file() => binds.push(Bind {
                source: mirror(files_dir, t),
                target: t.clone(),
            }),
            found => {
                let what = if found.is_ok() {
                    "is not a file"
                } else {
                    "does not exist"
                };
                return Err(ExecError::Rejected(format!(
                    "file target {} {what} on this node: the process engine runs tasks on the \
                     host's own filesystem and creates nothing there; target a path under \
                     {SECRETS_DIR} or a file that exists on every node",
                    t.display()
                )));
            }
        }
    }
    Ok(binds)
}

/// Makes sure the host's secrets directory is a real directory: created
/// (empty, 0755) when missing, refused when it is a link or a file, so the
/// bind can never land anywhere else.
fn secrets_dir(host: &Path) -> Result<(), ExecError> {
    let refuse = || {
        Err(ExecError::Rejected(format!(
            "{} on this node is not a directory (a link or a file?): secrets cannot be bound there",
            host.display()
        )))
    };
    match std::fs::symlink_metadata(host) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => return refuse(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(ExecError::Failed(format!(
                "cannot read {}: {e}",
                host.display()
            )));
        }
    }
    let parent = host.parent().unwrap_or(host);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(parent)
        .and_then(|()| std::fs::DirBuilder::new().mode(0o755).create(host))
        .or_else(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => Ok(()),
            _ => Err(e),
        })
        .map_err(|e| ExecError::Failed(format!("cannot create {}: {e}", host.display())))?;
    match std::fs::symlink_metadata(host) {
        Ok(m) if m.is_dir() => Ok(()),
        _ => refuse(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(list: &[&str]) -> Vec<PathBuf> {
        list.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn binds_cover_the_secrets_dir_and_existing_files() {
        let host = tempfile::tempdir().unwrap();
        let files = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(host.path().join("etc")).unwrap();
        std::fs::write(host.path().join("etc/app.conf"), "host").unwrap();
        let targets = paths(&[
            "/run/secrets/db_pw",
            "/run/secrets/nested/x",
            "/etc/app.conf",
        ]);
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
                (Path::new("/run/secrets"), Path::new("root/run/secrets")),
                (Path::new("/etc/app.conf"), Path::new("root/etc/app.conf")),
            ]
        );
        // The secrets dir is the one mount point made; the host file is
        // untouched; no secret is on the "host".
        assert!(host.path().join("run/secrets").is_dir());
        assert_eq!(
            std::fs::read_to_string(host.path().join("etc/app.conf")).unwrap(),
            "host"
        );
        assert!(!host.path().join("run/secrets/db_pw").exists());
    }

    #[test]
    fn targets_never_become_files_on_the_host() {
        let host = tempfile::tempdir().unwrap();
        let files = tempfile::tempdir().unwrap();
        let h = host.path();
        std::fs::create_dir_all(h.join("etc")).unwrap();
        std::fs::create_dir_all(h.join("tmp")).unwrap();
        // A dangling link: following it to create a mount point would make
        // the file it names.
        std::os::unix::fs::symlink(h.join("etc/planted"), h.join("tmp/link")).unwrap();
        for (target, why) in [
            ("/etc/evil", "does not exist on this node"),
            ("/opt/app/conf/a.yml", "does not exist"),
            ("/tmp/link", "does not exist"),
            ("/etc", "is not a file"),
            ("/run/secrets/../../x", "without `..`"),
        ] {
            let err = plan_binds(files.path(), &paths(&[target]), h).unwrap_err();
            assert!(err.is_rejection(), "{target}: {err}");
            assert!(err.to_string().contains(why), "{target}: {err}");
        }
        assert!(!h.join("etc/evil").exists());
        assert!(!h.join("opt").exists());
        assert!(!h.join("etc/planted").exists());
        assert!(!h.join("x").exists());
        // A secrets "directory" that is a link is not followed.
        std::fs::create_dir_all(h.join("run")).unwrap();
        std::os::unix::fs::symlink(h.join("etc"), h.join("run/secrets")).unwrap();
        let err = plan_binds(files.path(), &paths(&["/run/secrets/pw"]), h).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
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
