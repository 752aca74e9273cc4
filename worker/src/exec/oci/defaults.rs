//! Docker's default confinement besides seccomp, as OCI runtime-spec data:
//! capabilities and `--cap-add`/`--cap-drop`, masked and read-only paths,
//! default mounts, the device cgroup allow-list, rlimits and sysctls, plus
//! Shoal's own pids limit.
//!
//! Sources are moby's `daemon/pkg/oci` (formerly `oci/`) and
//! `daemon/oci_linux.go`; each item names where Docker defines it.

use std::path::PathBuf;

use oci_spec::runtime::{
    LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType, Mount, MountBuilder, PosixRlimit,
};

/// Docker's default capability set (moby `daemon/pkg/oci/caps/defaults.go`,
/// `DefaultCapabilities`), in Docker's order.
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every Linux capability, 0 (`CAP_CHOWN`) to 40 (`CAP_CHECKPOINT_RESTORE`),
/// in number order: what `--cap-add ALL` grants. (Docker takes the list
/// from containerd's `cap.Known()` and grants those in dockerd's own
/// bounding set, `caps/utils_linux.go`; this list does not look at the host.)
pub const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The magic name of `--cap-add ALL` / `--cap-drop ALL`.
const ALL: &str = "ALL";

/// A container's capabilities from Docker's defaults and the service's
/// `--cap-add`/`--cap-drop` (moby `daemon/pkg/oci/caps/utils.go`,
/// `TweakCapabilities` with `NormalizeLegacyCapabilities`).
///
/// Names are case-insensitive, with or without the `CAP_` prefix; the
/// result uses canonical names (`CAP_NET_ADMIN`), without duplicates.
/// - `ALL` in `add`: every capability except those in `drop` (this wins
///   over `ALL` in `drop`, as in Docker);
/// - else `ALL` in `drop`: only what `add` names;
/// - else the defaults minus `drop`, then `add`.
///
/// An unknown name is an error naming it, e.g. `unknown capability: "CAP_FOO"`.
pub fn capabilities(add: &[String], drop: &[String]) -> Result<Vec<String>, String> {
    let add = normalize(add)?;
    let drop = normalize(drop)?;
    let has = |list: &[String], c: &str| list.iter().any(|x| x == c);

    let mut caps: Vec<String> = if has(&add, ALL) {
        ALL_CAPABILITIES
            .iter()
            .filter(|c| !has(&drop, c))
            .map(|c| c.to_string())
            .collect()
    } else if has(&drop, ALL) {
        add
    } else {
        DEFAULT_CAPABILITIES
            .iter()
            .filter(|c| !has(&drop, c))
            .map(|c| c.to_string())
            .chain(add)
            .collect()
    };
    let mut seen = std::collections::HashSet::new();
    caps.retain(|c| seen.insert(c.clone()));
    Ok(caps)
}

/// Upper-cases, adds `CAP_` and checks each name; `ALL` passes as is.
fn normalize(names: &[String]) -> Result<Vec<String>, String> {
    names
        .iter()
        .map(|name| {
            let upper = name.trim().to_ascii_uppercase();
            if upper == ALL {
                return Ok(upper);
            }
            let full = if upper.starts_with("CAP_") {
                upper
            } else {
                format!("CAP_{upper}")
            };
            if ALL_CAPABILITIES.contains(&full.as_str()) {
                Ok(full)
            } else {
                Err(format!("unknown capability: {full:?}"))
            }
        })
        .collect()
}

/// Paths masked in every non-privileged container (moby
/// `daemon/pkg/oci/defaults.go`, `defaultLinuxMaskedPaths`): a file is
/// bind-mounted over by `/dev/null`, a directory by an empty read-only tmpfs.
/// Docker also masks `/sys/devices/system/cpu/cpu<N>/thermal_throttle` where
/// it exists; [`masked_paths`] adds those.
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// Paths remounted read-only in every non-privileged container (moby
/// `daemon/pkg/oci/defaults.go`, `DefaultLinuxSpec`, `ReadonlyPaths`).
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// [`MASKED_PATHS`] plus this host's per-CPU `thermal_throttle` directories
/// (moby `daemon/pkg/oci/defaults.go`, `defaultLinuxMaskedPaths`, for
/// GHSA-6fw5-f8r9-fgfm).
pub fn masked_paths() -> Vec<String> {
    let mut paths: Vec<String> = MASKED_PATHS.iter().map(|p| p.to_string()).collect();
    let mut cpus: Vec<u32> = std::fs::read_dir("/sys/devices/system/cpu")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("cpu")?.parse().ok())
        .collect();
    cpus.sort_unstable();
    for cpu in cpus {
        let path = format!("/sys/devices/system/cpu/cpu{cpu}/thermal_throttle");
        if std::path::Path::new(&path).exists() {
            paths.push(path);
        }
    }
    paths
}

/// Docker's default `/dev/shm` size: 64 MiB (moby `daemon/config`,
/// `DefaultShmSize`; `--shm-size`).
pub const DEFAULT_SHM_SIZE: u64 = 64 * 1024 * 1024;

/// Docker's default mounts, in Docker's order (moby
/// `daemon/pkg/oci/defaults.go`, `DefaultLinuxSpec`, `Mounts`; the `/dev/shm`
/// size is added by `daemon/oci_linux.go`, `WithMounts`, from `ShmSize`).
/// Docker drops `/sys/fs/cgroup`'s `ro` for privileged containers and
/// user-namespaced daemons, and `/sys`'s for privileged ones.
pub fn default_mounts() -> Vec<Mount> {
    let mount = |destination: &str, typ: &str, source: &str, options: &[&str]| {
        MountBuilder::default()
            .destination(PathBuf::from(destination))
            .typ(typ)
            .source(PathBuf::from(source))
            .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
            .build()
            .expect("a mount has every field")
    };
    let shm_size = format!("size={DEFAULT_SHM_SIZE}");
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &shm_size],
        ),
    ]
}

/// Docker's device cgroup rules, in Docker's order (moby
/// `daemon/pkg/oci/defaults.go`, `DefaultLinuxSpec`, `Resources.Devices`):
/// deny everything, allow `rwm` on /dev/zero (1:5), /dev/null (1:3),
/// /dev/urandom (1:9), /dev/random (1:8), /dev/tty (5:0), /dev/console (5:1),
/// and deny /dev/fuse (10:229).
///
/// Like runc, libcontainer appends its own allow-list after these (libcgroups
/// `common.rs`, `default_allow_devices`/`default_devices`): `mknod` of any
/// char or block device, /dev/full (1:7), /dev/ptmx (5:2), /dev/pts/* (136:*)
/// and /dev/net/tun (10:200), plus the default device nodes. On cgroup v2
/// libcontainer enforces device rules only with its `cgroupsv2_devices`
/// feature (eBPF).
pub fn default_devices() -> Vec<LinuxDeviceCgroup> {
    let rule = |allow: bool, major: Option<i64>, minor: Option<i64>| {
        let mut rule = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .access("rwm");
        if let (Some(major), Some(minor)) = (major, minor) {
            rule = rule.typ(LinuxDeviceType::C).major(major).minor(minor);
        }
        rule.build().expect("a device rule has every field")
    };
    vec![
        rule(false, None, None),
        rule(true, Some(1), Some(5)),
        rule(true, Some(1), Some(3)),
        rule(true, Some(1), Some(9)),
        rule(true, Some(1), Some(8)),
        rule(true, Some(5), Some(0)),
        rule(true, Some(5), Some(1)),
        rule(false, Some(10), Some(229)),
    ]
}

/// Docker's default rlimits: none (moby `daemon/oci_linux.go`,
/// `WithRlimits`, sets exactly the service's `--ulimit`s merged with
/// dockerd's `default-ulimits`, empty unless configured). A container
/// without any therefore inherits the daemon's own limits (for dockerd, its
/// systemd unit's; for Shoal, the worker's).
pub fn default_rlimits() -> Vec<PosixRlimit> {
    Vec::new()
}

/// Sysctls Docker sets in a container with its own network namespace
/// (moby `daemon/oci_linux.go`, `WithCommonOptions`), each only if the host
/// kernel has it (`/proc/sys/...` exists), and the first only outside user
/// namespaces: unprivileged ICMP echo sockets, and binding ports below
/// 1024 without `CAP_NET_BIND_SERVICE`.
pub const DEFAULT_NET_SYSCTLS: [(&str, &str); 2] = [
    ("net.ipv4.ping_group_range", "0 2147483647"),
    ("net.ipv4.ip_unprivileged_port_start", "0"),
];

/// The pids cgroup limit for a task that sets none.
///
/// Docker sets none by default (`--pids-limit` unset means unlimited, moby
/// `daemon/oci_linux.go`, `getPidsLimit`). Shoal's built-in engine sets one
/// so a fork bomb in one task cannot exhaust the node's pid space (default
/// `kernel.pid_max` 32768 on small machines) and starve the worker and the
/// other tasks: 4096 is far above what ordinary services run (a JVM or a
/// pre-forking server uses a few hundred threads) and well below `pid_max`.
pub const DEFAULT_PIDS_LIMIT: i64 = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    fn s(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn defaults() -> Vec<String> {
        s(&DEFAULT_CAPABILITIES)
    }

    #[test]
    fn no_changes_keep_the_defaults_in_order() {
        assert_eq!(capabilities(&[], &[]).unwrap(), defaults());
    }

    #[test]
    fn names_are_case_insensitive_with_or_without_prefix() {
        let caps = capabilities(&s(&["net_admin", "Cap_Sys_Ptrace", "CAP_SYS_TIME"]), &[]).unwrap();
        let mut want = defaults();
        want.extend(s(&["CAP_NET_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_TIME"]));
        assert_eq!(caps, want);

        let caps = capabilities(&[], &s(&["chown", "cap_kill", "CAP_NET_RAW"])).unwrap();
        assert!(
            !caps
                .iter()
                .any(|c| c == "CAP_CHOWN" || c == "CAP_KILL" || c == "CAP_NET_RAW")
        );
        assert_eq!(caps.len(), DEFAULT_CAPABILITIES.len() - 3);
    }

    #[test]
    fn adding_a_default_does_not_duplicate_it() {
        assert_eq!(capabilities(&s(&["chown"]), &[]).unwrap(), defaults());
    }

    #[test]
    fn add_all_grants_everything_but_the_drops() {
        let caps = capabilities(&s(&["all"]), &[]).unwrap();
        assert_eq!(caps, s(&ALL_CAPABILITIES));
        assert_eq!(caps.len(), 41);
        assert_eq!(caps.last().unwrap(), "CAP_CHECKPOINT_RESTORE");

        let caps = capabilities(&s(&["ALL"]), &s(&["sys_admin", "NET_ADMIN"])).unwrap();
        assert_eq!(caps.len(), 39);
        assert!(
            !caps
                .iter()
                .any(|c| c == "CAP_SYS_ADMIN" || c == "CAP_NET_ADMIN")
        );

        // ALL in add wins over ALL in drop, as in Docker.
        assert_eq!(capabilities(&s(&["ALL"]), &s(&["ALL"])).unwrap().len(), 41);
    }

    #[test]
    fn drop_all_keeps_only_the_adds() {
        assert!(capabilities(&[], &s(&["ALL"])).unwrap().is_empty());
        assert_eq!(
            capabilities(&s(&["net_bind_service", "chown"]), &s(&["all"])).unwrap(),
            s(&["CAP_NET_BIND_SERVICE", "CAP_CHOWN"])
        );
    }

    #[test]
    fn dropping_and_adding_the_same_capability_keeps_it() {
        // Docker drops from the defaults first, then adds.
        let caps = capabilities(&s(&["SYS_ADMIN"]), &s(&["SYS_ADMIN", "CHOWN"])).unwrap();
        assert!(caps.iter().any(|c| c == "CAP_SYS_ADMIN"));
        assert!(!caps.iter().any(|c| c == "CAP_CHOWN"));
    }

    #[test]
    fn unknown_names_are_errors_naming_them() {
        let err = capabilities(&s(&["NET_ADMIN", "FLY"]), &[]).unwrap_err();
        assert!(err.contains("CAP_FLY"), "{err}");
        let err = capabilities(&[], &s(&["cap_nope"])).unwrap_err();
        assert!(err.contains("CAP_NOPE"), "{err}");
        // "CAP_ALL" is not the magic ALL.
        assert!(capabilities(&s(&["CAP_ALL"]), &[]).is_err());
        assert!(capabilities(&s(&[""]), &[]).is_err());
    }

    #[test]
    fn defaults_are_known_and_unique() {
        for c in DEFAULT_CAPABILITIES {
            assert!(ALL_CAPABILITIES.contains(&c), "{c}");
        }
        let mut all = ALL_CAPABILITIES.to_vec();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), ALL_CAPABILITIES.len());
    }

    #[test]
    fn mounts_devices_and_paths_look_like_docker() {
        let mounts = default_mounts();
        let dests: Vec<_> = mounts
            .iter()
            .map(|m| m.destination().to_str().unwrap())
            .collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/sys",
                "/sys/fs/cgroup",
                "/dev/mqueue",
                "/dev/shm"
            ]
        );
        let shm = mounts.last().unwrap();
        assert!(
            shm.options()
                .as_ref()
                .unwrap()
                .contains(&"size=67108864".to_string())
        );
        let sys = &mounts[3];
        assert!(sys.options().as_ref().unwrap().contains(&"ro".to_string()));

        let devices = default_devices();
        assert_eq!(devices.len(), 8);
        assert!(!devices[0].allow() && devices[0].major().is_none());
        assert_eq!(devices[0].access().as_deref(), Some("rwm"));
        assert!(devices[1..7].iter().all(|d| d.allow()));
        assert!(!devices[7].allow() && devices[7].major() == Some(10));

        let masked = masked_paths();
        assert!(masked.starts_with(&s(&MASKED_PATHS)));
        assert!(default_rlimits().is_empty());
    }
}
