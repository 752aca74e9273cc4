//! A task's mounts as Docker makes them: the service's `--mount`s (compose
//! `volumes:` and `tmpfs:`) and the image's `VOLUME`s, as runtime-spec
//! mounts.
//!
//! - `volume`: the named volume (created on first use, [`VolumeStore`]),
//!   or a new anonymous one without a source, bound recursively; an empty
//!   volume first gets the image's content at the target (its files and
//!   the directory's owner and mode) unless `volume-nocopy`.
//! - `bind`: the host path, which must exist.
//! - `tmpfs`: a fresh tmpfs, `noexec,nosuid,nodev` with its size and mode.
//! - Each image `VOLUME` no service mount covers gets an anonymous volume.
//!
//! Mounts go parent first (by depth), so `/data` never hides `/data/logs`.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::Mount;
use shoal_proto::objects::{ContainerSpec, Mount as ServiceMount, mount};

use crate::exec::ExecError;
use crate::volume::{VolumeError, VolumeStore};

/// Symlinks followed at most while resolving a path in the image.
const MAX_SYMLINKS: usize = 40;

/// One copy into a volume at a time: two replicas starting on one node
/// with a new volume must not both fill it.
static COPY_UP: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A task's mounts and the volumes behind them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskMounts {
    /// In mount order, for [`super::spec::Confinement::mounts`].
    pub mounts: Vec<Mount>,
    /// The volumes the task uses, each once: the engine records them (a
    /// volume in use is not removed, and outlives the task).
    pub volumes: Vec<String>,
}

/// One planned mount: a service's, or an image `VOLUME` (`None`).
struct Planned<'a> {
    target: String,
    service: Option<&'a ServiceMount>,
}

/// The mounts of task `task_id` running `spec` from an image declaring
/// `image_volumes`, whose root (the task's overlay) is mounted at `root`.
/// Volumes come from `store` (without one, the image's volumes stay in the
/// task's root and a service's volume is refused). Volumes taken here are
/// held for the task until the engine releases them; on error, none is.
pub fn task_mounts(
    task_id: &str,
    spec: &ContainerSpec,
    image_volumes: &[String],
    root: &Path,
    store: Option<&VolumeStore>,
) -> Result<TaskMounts, ExecError> {
    let mut planned: Vec<Planned<'_>> = Vec::new();
    for m in &spec.mounts {
        let target = clean_target(&m.target, kind_name(m))?;
        if planned.iter().any(|p| p.target == target) {
            return Err(ExecError::Rejected(format!(
                "Duplicate mount point: {target}"
            )));
        }
        planned.push(Planned {
            target,
            service: Some(m),
        });
    }
    if store.is_some() {
        for v in image_volumes {
            let Ok(target) = clean_target(v, "volume") else {
                continue;
            };
            if !planned.iter().any(|p| p.target == target) {
                planned.push(Planned {
                    target,
                    service: None,
                });
            }
        }
    }
    planned.sort_by_key(|p| p.target.matches('/').count());

    let mut out = TaskMounts::default();
    for p in &planned {
        let made = match p.service {
            Some(m) if m.r#type() == mount::Type::Bind => bind(m, &p.target),
            Some(m) if m.r#type() == mount::Type::Tmpfs => Ok(tmpfs(m, &p.target)),
            _ => volume(task_id, p, root, store, &mut out.volumes),
        };
        match made {
            Ok(m) => out.mounts.push(m),
            Err(e) => {
                if let Some(store) = store {
                    store.forget(task_id);
                }
                return Err(e);
            }
        }
    }
    Ok(out)
}

fn kind_name(m: &ServiceMount) -> &'static str {
    match m.r#type() {
        mount::Type::Volume => "volume",
        mount::Type::Bind => "bind",
        mount::Type::Tmpfs => "tmpfs",
    }
}

/// The target, absolute and clean (`/data/` → `/data`), never `/`.
fn clean_target(target: &str, kind: &str) -> Result<String, ExecError> {
    let invalid = |why: &str| {
        ExecError::Rejected(format!(
            "invalid mount config for type {kind:?}: invalid mount path {target:?}: {why}"
        ))
    };
    if !target.starts_with('/') {
        return Err(invalid("mount path must be absolute"));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(invalid("destination can't be '/'"));
    }
    Ok(format!("/{}", parts.join("/")))
}

fn oci_mount(target: &str, typ: &str, source: &Path, options: Vec<String>) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(target));
    m.set_typ(Some(typ.into()));
    m.set_source(Some(source.to_path_buf()));
    m.set_options(Some(options));
    m
}

/// A recursive bind, `rprivate` as Docker's default propagation.
fn rbind(target: &str, source: &Path, read_only: bool) -> Mount {
    let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
    if read_only {
        options.push("ro".into());
    }
    oci_mount(target, "bind", source, options)
}

fn bind(m: &ServiceMount, target: &str) -> Result<Mount, ExecError> {
    let invalid =
        |why: String| ExecError::Rejected(format!("invalid mount config for type \"bind\": {why}"));
    let source = Path::new(&m.source);
    if !source.is_absolute() {
        return Err(invalid(format!(
            "invalid mount path: {:?} mount path must be absolute",
            m.source
        )));
    }
    if !source.exists() {
        return Err(invalid(format!(
            "bind source path does not exist: {}",
            m.source
        )));
    }
    Ok(rbind(target, source, m.read_only))
}

fn tmpfs(m: &ServiceMount, target: &str) -> Mount {
    let mut options: Vec<String> = ["noexec", "nosuid", "nodev"].map(String::from).to_vec();
    if m.read_only {
        options.push("ro".into());
    }
    if m.tmpfs_size_bytes > 0 {
        options.push(format!("size={}", size_option(m.tmpfs_size_bytes)));
    }
    if m.tmpfs_mode != 0 {
        options.push(format!("mode={:o}", m.tmpfs_mode));
    }
    oci_mount(target, "tmpfs", Path::new("tmpfs"), options)
}

/// A tmpfs size as Docker writes it: the largest unit that divides it.
fn size_option(bytes: i64) -> String {
    for (suffix, unit) in [("g", 1i64 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
        if bytes % unit == 0 {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

fn volume(
    task_id: &str,
    p: &Planned<'_>,
    root: &Path,
    store: Option<&VolumeStore>,
    used: &mut Vec<String>,
) -> Result<Mount, ExecError> {
    let store = store.ok_or_else(|| {
        ExecError::Rejected("volumes are not available on this node's engine".into())
    })?;
    let m = p.service;
    let v = match m.filter(|m| !m.source.is_empty()) {
        Some(m) => store.ensure(
            &m.source,
            &m.volume_driver,
            &m.volume_labels,
            &m.volume_options,
        ),
        None => store.anonymous(),
    }
    .map_err(volume_error)?;
    let v = store.activate(&v.name, task_id).map_err(volume_error)?;
    if !m.is_some_and(|m| m.volume_nocopy) {
        copy_up(root, &p.target, &v.mountpoint).map_err(|e| {
            ExecError::Failed(format!(
                "cannot copy the image's {} into volume {}: {e}",
                p.target, v.name
            ))
        })?;
    }
    if !used.contains(&v.name) {
        used.push(v.name.clone());
    }
    Ok(rbind(
        &p.target,
        &v.mountpoint,
        m.is_some_and(|m| m.read_only),
    ))
}

/// What the user got wrong is a rejection; the node's trouble a failure.
fn volume_error(e: VolumeError) -> ExecError {
    match e {
        VolumeError::Io(_) => ExecError::Failed(e.to_string()),
        _ => ExecError::Rejected(e.to_string()),
    }
}

/// Docker's copy into an empty volume: the image's directory at `target`
/// (resolved inside `root`), its content, owner and mode. A volume with
/// anything in it is left alone.
fn copy_up(root: &Path, target: &str, data: &Path) -> std::io::Result<()> {
    let _one = COPY_UP.lock().unwrap_or_else(|e| e.into_inner());
    if std::fs::read_dir(data)?.next().is_some() {
        return Ok(());
    }
    let Some(source) = resolve_in_root(root, target) else {
        return Ok(());
    };
    match std::fs::symlink_metadata(&source) {
        Ok(meta) if meta.is_dir() => {
            copy_tree(&source, data)?;
            copy_attrs(&meta, data)
        }
        _ => Ok(()),
    }
}

/// `path` inside `root` with its symlinks followed as the task would see
/// them (an absolute link starts again at `root`, `..` stops there); every
/// component of the answer is a real directory or file, never a link out.
/// `None` when missing or looping.
pub fn resolve_in_root(root: &Path, path: &str) -> Option<PathBuf> {
    let parts = |p: &Path| -> VecDeque<OsString> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                Component::ParentDir => Some("..".into()),
                _ => None,
            })
            .collect()
    };
    let mut todo = parts(Path::new(path));
    let mut at = PathBuf::new();
    let mut hops = 0;
    while let Some(part) = todo.pop_front() {
        if part == ".." {
            at.pop();
            continue;
        }
        let next = at.join(&part);
        let meta = std::fs::symlink_metadata(root.join(&next)).ok()?;
        if !meta.file_type().is_symlink() {
            at = next;
            continue;
        }
        hops += 1;
        if hops > MAX_SYMLINKS {
            return None;
        }
        let link = std::fs::read_link(root.join(&next)).ok()?;
        if link.is_absolute() {
            at = PathBuf::new();
        }
        let mut rest = parts(&link);
        rest.extend(todo);
        todo = rest;
    }
    Some(root.join(at))
}

/// Copies the content of directory `from` into existing `to`: files,
/// directories, symlinks (as links), fifos and devices, with owners,
/// modes and modification times. Sockets are skipped.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let meta = std::fs::symlink_metadata(&src)?;
        let ft = meta.file_type();
        if ft.is_dir() {
            std::fs::create_dir(&dst)?;
            copy_tree(&src, &dst)?;
        } else if ft.is_file() {
            std::fs::copy(&src, &dst)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
            std::os::unix::fs::lchown(&dst, Some(meta.uid()), Some(meta.gid()))?;
            continue;
        } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
            let kind = nix::sys::stat::SFlag::from_bits_truncate(meta.mode() & libc::S_IFMT);
            let perm = nix::sys::stat::Mode::from_bits_truncate(meta.mode() & 0o7777);
            nix::sys::stat::mknod(&dst, kind, perm, meta.rdev())?;
        } else {
            continue;
        }
        copy_attrs(&meta, &dst)?;
    }
    Ok(())
}

/// Owner, then mode (a chown clears set-id bits), then mtime.
fn copy_attrs(meta: &std::fs::Metadata, path: &Path) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    if meta.is_dir() || meta.is_file() {
        std::fs::File::open(path)?.set_modified(meta.modified()?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
