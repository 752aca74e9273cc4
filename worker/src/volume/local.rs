//! Docker's `local` driver options: `type`, `device` and `o` make a volume
//! a mount of that device (`type=nfs,o=addr=10.0.0.1,device=:/export`,
//! `type=tmpfs,device=tmpfs,o=size=100m,uid=1000`,
//! `type=none,o=bind,device=/srv/data`), with `o`'s words split into mount
//! flags and data as moby's `mount.Mount` does.

use std::collections::BTreeMap;
use std::path::Path;

use nix::mount::MsFlags;

use super::VolumeError;

/// Options the local driver takes, and which others each one needs.
const MANDATORY: &[(&str, &[&str])] = &[
    ("type", &["device"]),
    ("device", &["type"]),
    ("o", &["device", "type"]),
];

/// A volume's device mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Device {
    /// Filesystem type (`nfs`, `tmpfs`, `none` for a bind).
    pub typ: String,
    /// What is mounted.
    pub device: String,
    /// Flags from `o` (`ro`, `bind`, `nosuid`, ...), propagation apart.
    pub flags: MsFlags,
    /// Propagation flags from `o` (`rshared`, ...), set by a second call.
    pub propagation: MsFlags,
    /// The rest of `o`, for the filesystem.
    pub data: String,
}

/// Docker's checks at creation: known keys, and each one's companions.
pub(crate) fn check_options(options: &BTreeMap<String, String>) -> Result<(), VolumeError> {
    for key in options.keys() {
        match key.as_str() {
            "type" | "device" | "o" => {}
            "size" => {
                return Err(VolumeError::BadOption(
                    "quota size requested but no quota support on this node".into(),
                ));
            }
            _ => return Err(VolumeError::BadOption(format!("invalid option: {key:?}"))),
        }
    }
    for (key, needs) in MANDATORY {
        if options.contains_key(*key) {
            for need in *needs {
                if !options.contains_key(*need) {
                    return Err(VolumeError::BadOption(format!(
                        "missing required option: {need:?}"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The device mount the options describe; `None`: a plain directory.
pub(crate) fn device(options: &BTreeMap<String, String>) -> Result<Option<Device>, VolumeError> {
    if options.is_empty() {
        return Ok(None);
    }
    check_options(options)?;
    let (flags, propagation, data) = parse_o(options.get("o").map_or("", |s| s.as_str()));
    Ok(Some(Device {
        typ: options["type"].clone(),
        device: options["device"].clone(),
        flags,
        propagation,
        data,
    }))
}

/// `o` as moby splits it: mount flags, propagation flags, filesystem data.
fn parse_o(o: &str) -> (MsFlags, MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut propagation = MsFlags::empty();
    let mut data = Vec::new();
    for word in o.split(',').filter(|w| !w.is_empty()) {
        let (clear, flag) = match word {
            "defaults" => (false, MsFlags::empty()),
            "ro" => (false, MsFlags::MS_RDONLY),
            "rw" => (true, MsFlags::MS_RDONLY),
            "suid" => (true, MsFlags::MS_NOSUID),
            "nosuid" => (false, MsFlags::MS_NOSUID),
            "dev" => (true, MsFlags::MS_NODEV),
            "nodev" => (false, MsFlags::MS_NODEV),
            "exec" => (true, MsFlags::MS_NOEXEC),
            "noexec" => (false, MsFlags::MS_NOEXEC),
            "sync" => (false, MsFlags::MS_SYNCHRONOUS),
            "async" => (true, MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (false, MsFlags::MS_DIRSYNC),
            "mand" => (false, MsFlags::MS_MANDLOCK),
            "nomand" => (true, MsFlags::MS_MANDLOCK),
            "atime" => (true, MsFlags::MS_NOATIME),
            "noatime" => (false, MsFlags::MS_NOATIME),
            "diratime" => (true, MsFlags::MS_NODIRATIME),
            "nodiratime" => (false, MsFlags::MS_NODIRATIME),
            "relatime" => (false, MsFlags::MS_RELATIME),
            "norelatime" => (true, MsFlags::MS_RELATIME),
            "strictatime" => (false, MsFlags::MS_STRICTATIME),
            "nostrictatime" => (true, MsFlags::MS_STRICTATIME),
            "bind" => (false, MsFlags::MS_BIND),
            "rbind" => (false, MsFlags::MS_BIND | MsFlags::MS_REC),
            _ => {
                let p = match word {
                    "private" => MsFlags::MS_PRIVATE,
                    "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
                    "shared" => MsFlags::MS_SHARED,
                    "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
                    "slave" => MsFlags::MS_SLAVE,
                    "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
                    "unbindable" => MsFlags::MS_UNBINDABLE,
                    "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
                    _ => {
                        data.push(word);
                        continue;
                    }
                };
                propagation |= p;
                continue;
            }
        };
        if clear {
            flags.remove(flag);
        } else {
            flags.insert(flag);
        }
    }
    (flags, propagation, data.join(","))
}

/// Mounts `d` on `target`: a read-only bind is remounted read-only, and
/// propagation is set apart, as the kernel wants.
pub(crate) fn mount(d: &Device, target: &Path) -> Result<(), VolumeError> {
    let fail = |e: nix::errno::Errno| {
        VolumeError::Io(format!(
            "error while mounting volume '{}': failed to mount local volume: mount {}:{}, flags: {:#x}, data: {}: {e}",
            target.display(),
            d.device,
            target.display(),
            d.flags.bits(),
            d.data
        ))
    };
    let data = (!d.data.is_empty()).then_some(d.data.as_str());
    nix::mount::mount(
        Some(d.device.as_str()),
        target,
        Some(d.typ.as_str()),
        d.flags,
        data,
    )
    .map_err(fail)?;
    let bind = d.flags.contains(MsFlags::MS_BIND);
    if bind && d.flags.contains(MsFlags::MS_RDONLY) {
        let flags = d.flags | MsFlags::MS_REMOUNT;
        if let Err(e) = nix::mount::mount(None::<&str>, target, None::<&str>, flags, data) {
            let _ = unmount(target);
            return Err(fail(e));
        }
    }
    if !d.propagation.is_empty()
        && let Err(e) = nix::mount::mount(
            None::<&str>,
            target,
            None::<&str>,
            d.propagation,
            None::<&str>,
        )
    {
        let _ = unmount(target);
        return Err(fail(e));
    }
    Ok(())
}

/// Unmounts `target` (detached: a straggler holding it open does not keep
/// the volume mounted in the node's namespace).
pub(crate) fn unmount(target: &Path) -> Result<(), VolumeError> {
    crate::exec::process::namespaces::unmount(target)
        .map_err(|e| super::io_err("unmount", target, e))
}

/// Whether `path` is a mount point (mountinfo: a bind of a directory on
/// the same filesystem has the same device).
pub(crate) fn is_mounted(path: &Path) -> bool {
    crate::exec::docker::files::is_mount_point(path).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_are_checked_like_dockers_local_driver() {
        assert!(check_options(&opts(&[])).is_ok());
        let err = check_options(&opts(&[("foo", "bar")])).unwrap_err();
        assert_eq!(err.to_string(), "invalid option: \"foo\"");
        let err = check_options(&opts(&[("type", "tmpfs")])).unwrap_err();
        assert_eq!(err.to_string(), "missing required option: \"device\"");
        let err = check_options(&opts(&[("o", "size=1m"), ("device", "tmpfs")])).unwrap_err();
        assert_eq!(err.to_string(), "missing required option: \"type\"");
        assert!(check_options(&opts(&[("size", "1g")])).is_err());
    }

    #[test]
    fn o_splits_into_flags_and_data() {
        let d = device(&opts(&[
            ("type", "tmpfs"),
            ("device", "tmpfs"),
            ("o", "size=100m,uid=1000,nosuid,ro,rw,rshared"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(d.data, "size=100m,uid=1000");
        assert_eq!(d.flags, MsFlags::MS_NOSUID);
        assert_eq!(d.propagation, MsFlags::MS_SHARED | MsFlags::MS_REC);
        let bind = device(&opts(&[
            ("type", "none"),
            ("device", "/srv"),
            ("o", "bind,ro"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(bind.flags, MsFlags::MS_BIND | MsFlags::MS_RDONLY);
        assert!(bind.data.is_empty());
        assert_eq!(device(&opts(&[])).unwrap(), None);
    }
}
