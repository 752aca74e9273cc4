//! The writes into a layer directory that tar-rs does not do (whiteouts,
//! device nodes, xattrs, replacing entries), and what an unpack error
//! means: `Io` when the system failed, `Corrupt` when the data did.

use std::ffi::{CString, OsStr};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::sys::stat::{Mode, SFlag, UtimensatFlags, makedev, mknod, utimensat};
use nix::sys::time::TimeSpec;
use tar::{EntryType, Header};

use super::ImageError;

/// `.wh.<name>` hides `<name>` of lower layers; `.wh..wh..opq` hides all of
/// its directory's lower content.
pub(super) fn whiteout(dest: &Path, rel: &Path, hidden: &[u8]) -> Result<(), ImageError> {
    let what = rel.display().to_string();
    let parent = dest.join(rel.parent().unwrap_or(Path::new("")));
    fs::create_dir_all(&parent).map_err(|e| fail(&what, e))?;
    if hidden == b".wh..opq" {
        return set_xattr(&parent, "trusted.overlay.opaque", b"y").map_err(|e| fail(&what, e));
    }
    if hidden.starts_with(b".wh.") {
        return Ok(()); // aufs bookkeeping (.wh..wh.plnk and the like)
    }
    if hidden.is_empty() {
        return Err(corrupt(&what, "whiteout without a name"));
    }
    let target = parent.join(OsStr::from_bytes(hidden));
    remove_any(&target)?;
    mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).map_err(|e| fail(&what, e.into()))
}

/// A device node or fifo, as the header says.
pub(super) fn special(path: &Path, header: &Header) -> Result<(), ImageError> {
    let what = || path.display().to_string();
    let (kind, dev) = match header.entry_type() {
        EntryType::Char => (SFlag::S_IFCHR, true),
        EntryType::Block => (SFlag::S_IFBLK, true),
        _ => (SFlag::S_IFIFO, false),
    };
    let number = |n: io::Result<Option<u32>>| match n {
        Ok(n) => Ok(n.unwrap_or(0)),
        Err(e) => Err(corrupt(&what(), &e.to_string())),
    };
    let (major, minor) = if dev {
        (
            number(header.device_major())?,
            number(header.device_minor())?,
        )
    } else {
        (0, 0)
    };
    mknod(
        path,
        kind,
        Mode::empty(),
        makedev(major.into(), minor.into()),
    )
    .map_err(|e| fail(&what(), e.into()))
}

/// Owner, then mode (chown clears setuid bits), then maybe mtime.
pub(super) fn set_metadata(path: &Path, header: &Header, mtime: bool) -> Result<(), ImageError> {
    use std::os::unix::fs::PermissionsExt;
    let what = || path.display().to_string();
    let (uid, gid, mode) =
        (|| Ok::<_, io::Error>((header.uid()?, header.gid()?, header.mode()?)))()
            .map_err(|e| fail(&what(), e))?;
    let id = |v: u64| u32::try_from(v).map_err(|_| corrupt(&what(), "uid/gid out of range"));
    std::os::unix::fs::lchown(path, Some(id(uid)?), Some(id(gid)?))
        .map_err(|e| fail(&what(), e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777))
        .map_err(|e| fail(&what(), e))?;
    if mtime {
        set_mtime(path, header)?;
    }
    Ok(())
}

pub(super) fn set_mtime(path: &Path, header: &Header) -> Result<(), ImageError> {
    let Ok(mtime) = header.mtime() else {
        return Ok(());
    };
    let time = TimeSpec::new(i64::try_from(mtime).unwrap_or(i64::MAX), 0);
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &time,
        &time,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| fail(&path.display().to_string(), e.into()))
}

/// The `SCHILY.xattr.*` attributes of an entry. Like Docker, attributes
/// the filesystem does not take (ENOTSUP, EPERM) are skipped, not fatal.
pub(super) fn set_xattrs(path: &Path, xattrs: &[(String, Vec<u8>)]) -> Result<(), ImageError> {
    for (name, value) in xattrs {
        match set_xattr(path, name, value) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTSUP | libc::EPERM)) => {
                tracing::warn!(path = %path.display(), xattr = %name, error = %e, "xattr skipped");
            }
            Err(e) => return Err(fail(&path.display().to_string(), e)),
        }
    }
    Ok(())
}

/// lsetxattr(2): on the entry itself, never through a symlink.
fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())?;
    let c_name = CString::new(name)?;
    // SAFETY: both strings are NUL-terminated and outlive the call; value
    // is a valid buffer of value.len() bytes.
    let rc = unsafe {
        libc::lsetxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes room for a new entry: a later entry replaces an earlier one.
pub(super) fn remove_any(path: &Path) -> Result<(), ImageError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
    .map_err(|e| fail(&path.display().to_string(), e))
}

/// Creates missing parents (checked by `check_parents`) as tar-rs does.
pub(super) fn make_parent(path: &Path) -> Result<(), ImageError> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(parent).map_err(|e| fail(&parent.display().to_string(), e))
}

pub(super) fn remove_dir(path: &Path) -> Result<(), ImageError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => remove_any(path),
        _ => Ok(()),
    }
}

pub(super) fn remove_unless_dir(path: &Path) -> Result<(), ImageError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.is_dir() => remove_any(path),
        _ => Ok(()),
    }
}

pub(super) fn corrupt(what: &str, why: &str) -> ImageError {
    ImageError::Corrupt(format!("bad layer: {what}: {why}"))
}

/// An error while unpacking: `Io` when the system failed (the error has
/// an errno somewhere: disk full, permissions), else the data is `Corrupt`
/// (bad gzip, bad tar headers, truncation).
pub(super) fn fail(what: &str, err: io::Error) -> ImageError {
    if from_os(&err) {
        ImageError::Io(format!("unpacking {what}: {}", chain(&err)))
    } else {
        corrupt(what, &chain(&err))
    }
}

pub(super) fn from_os(err: &io::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if io.raw_os_error().is_some() {
                return true;
            }
            // A wrapped error (tar-rs' TarError) is the io::Error's payload.
            if let Some(inner) = io.get_ref() {
                next = Some(inner);
                continue;
            }
        }
        next = e.source();
    }
    false
}

/// An error and its causes (tar-rs wraps the one that matters).
pub(super) fn chain(err: &io::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.get_ref().and_then(|e| e.source());
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}
