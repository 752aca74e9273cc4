//! Docker's default seccomp profile as an OCI [`LinuxSeccomp`].
//!
//! The profile is moby's `profiles/seccomp/default.json` (now the
//! `github.com/moby/profiles` module, `seccomp/default.json`), kept verbatim
//! in `seccomp-default.json` next to this file. That file is not in the OCI
//! format: its `archMap` lists architectures per host architecture, and each
//! syscall group may carry `includes`/`excludes` filters on the container's
//! capabilities, the host architecture and the host kernel. Docker resolves
//! those filters when it builds a container's spec
//! (`seccomp/seccomp_linux.go`, `setupSeccomp`); [`default_profile`] does
//! the same here.
//!
//! Loading the result is left to `libcontainer::seccomp::initialize_seccomp`
//! (at container init). Two of its behaviours matter for this profile:
//! - a name the linked libseccomp cannot resolve is skipped with a warning,
//!   so the call falls to the default action (EPERM). libseccomp 2.5.4
//!   does not know 12 of the profile's names (`getxattrat`, `listmount`,
//!   `listxattrat`, `lsm_get_self_attr`, `lsm_list_modules`,
//!   `lsm_set_self_attr`, `mseal`, `removexattrat`, `riscv_hwprobe`,
//!   `setxattrat`, `statmount`, `uretprobe`); runc would answer ENOSYS for
//!   syscalls newer than its libseccomp, libcontainer answers EPERM.
//! - it reads an `SCMP_CMP_MASKED_EQ` argument's mask from `valueTwo` and
//!   the compared datum from `value`, the reverse of runc (and of the
//!   runtime spec as Docker's profiles use it: `value` is the mask,
//!   `valueTwo` the datum, 0 when absent). [`default_profile`] therefore
//!   writes masked comparisons in libcontainer's order (see
//!   `for_libcontainer`): the result is for libcontainer, not for runc.

// Provenance and licence of `seccomp-default.json`:
//   Source: https://github.com/moby/profiles/blob/02e898b137aed1024e232d59bcb05e6179b72177/seccomp/default.json
//   (formerly https://github.com/moby/moby/blob/master/profiles/seccomp/default.json),
//   generated there from seccomp/default_linux.go.
//   Copyright The Moby Authors. Licensed under the Apache License, Version 2.0
//   (https://www.apache.org/licenses/LICENSE-2.0). Unmodified; JSON has no
//   comments, so the notice lives here.

use std::collections::HashSet;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscallBuilder,
};
use serde::Deserialize;

/// moby's `seccomp/default.json`, verbatim (Apache-2.0; see the notice above).
const DEFAULT_PROFILE_JSON: &str = include_str!("seccomp-default.json");

/// A moby seccomp profile (`seccomp.Seccomp` in moby), only the fields the
/// default profile uses.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: LinuxSeccompAction,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    syscalls: Vec<Syscall>,
}

/// One `archMap` entry: a host architecture and the ones it also runs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: Arch,
    #[serde(default)]
    sub_architectures: Option<Vec<Arch>>,
}

/// One syscall group with its conditions.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Syscall {
    names: Vec<String>,
    action: LinuxSeccompAction,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<Arg>>,
    #[serde(default)]
    includes: Option<Filter>,
    #[serde(default)]
    excludes: Option<Filter>,
}

/// A syscall argument comparison, in the runtime spec's meaning.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: usize,
    value: u64,
    #[serde(default)]
    value_two: Option<u64>,
    op: LinuxSeccompOperator,
}

/// `includes`/`excludes`: capabilities, architectures (libseccomp's Go
/// names: `amd64`, `arm64`, ...) and a minimum kernel (`"4.8"`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// A kernel version as Docker compares them: major and minor only.
type KernelVersion = (u32, u32);

/// Docker's default seccomp profile for a container whose bounding
/// capability set is `capabilities` (names like `"CAP_SYS_ADMIN"`, as
/// [`super::defaults::capabilities`] returns them), on architecture `arch`
/// (a [`std::env::consts::ARCH`] value) and this machine's running kernel.
///
/// Defaults to EPERM for anything not allowed. A group whose `minKernel`
/// cannot be checked (unreadable `uname` release) is left out, which only
/// ever denies more.
pub fn default_profile(capabilities: &[String], arch: &str) -> LinuxSeccomp {
    build(capabilities, arch, running_kernel())
}

/// [`default_profile`] for a given kernel version (`None`: unknown).
fn build(capabilities: &[String], arch: &str, kernel: Option<KernelVersion>) -> LinuxSeccomp {
    let profile: Profile =
        serde_json::from_str(DEFAULT_PROFILE_JSON).expect("the embedded seccomp profile parses");
    let (native, seccomp_arch) = native_arch(arch);

    let mut architectures = Vec::new();
    if let Some(seccomp_arch) = seccomp_arch
        && let Some(entry) = profile
            .arch_map
            .iter()
            .find(|a| a.architecture == seccomp_arch)
    {
        architectures.push(entry.architecture);
        architectures.extend(entry.sub_architectures.iter().flatten().copied());
    }

    // Docker's conditions (seccomp_linux.go): any excluded arch, cap or
    // kernel drops the group; every included one must hold.
    let has_cap = |c: &String| capabilities.contains(c);
    let kernel_at_least = |min: &str| match (kernel, parse_kernel_release(min)) {
        (Some(running), Some(min)) => Some(running >= min),
        _ => None,
    };

    // (name, action with its errno, args as (index, value, value_two, op)).
    type RuleKey = (String, u32, Vec<(usize, u64, Option<u64>, u32)>);
    let mut seen: HashSet<RuleKey> = HashSet::new();
    let mut syscalls = Vec::new();
    for group in &profile.syscalls {
        if let Some(ex) = &group.excludes {
            if ex.arches.iter().any(|a| a == native) || ex.caps.iter().any(has_cap) {
                continue;
            }
            if let Some(min) = &ex.min_kernel
                && kernel_at_least(min) != Some(false)
            {
                continue;
            }
        }
        if let Some(inc) = &group.includes {
            if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == native) {
                continue;
            }
            if !inc.caps.iter().all(has_cap) {
                continue;
            }
            if let Some(min) = &inc.min_kernel
                && kernel_at_least(min) != Some(true)
            {
                continue;
            }
        }

        let args: Vec<LinuxSeccompArg> =
            group.args.iter().flatten().map(for_libcontainer).collect();
        let action = group.action.as_u32(group.errno_ret);
        let arg_key: Vec<_> = args
            .iter()
            .map(|a| (a.index(), a.value(), a.value_two(), a.op() as u32))
            .collect();
        let names: Vec<String> = group
            .names
            .iter()
            .filter(|n| !n.is_empty())
            .filter(|n| seen.insert((n.to_string(), action, arg_key.clone())))
            .cloned()
            .collect();
        if names.is_empty() {
            continue;
        }
        let mut rule = LinuxSyscallBuilder::default()
            .names(names)
            .action(group.action);
        if let Some(errno) = group.errno_ret {
            rule = rule.errno_ret(errno);
        }
        if !args.is_empty() {
            rule = rule.args(args);
        }
        syscalls.push(rule.build().expect("a syscall rule has every field"));
    }

    let mut seccomp = LinuxSeccompBuilder::default()
        .default_action(profile.default_action)
        .syscalls(syscalls);
    if let Some(errno) = profile.default_errno_ret {
        seccomp = seccomp.default_errno_ret(errno);
    }
    if !architectures.is_empty() {
        seccomp = seccomp.architectures(architectures);
    }
    seccomp.build().expect("a seccomp profile has every field")
}

/// One argument comparison as `libcontainer` 0.7 must be given it.
///
/// For `SCMP_CMP_MASKED_EQ` the spec (and runc, and Docker's profile) puts
/// the mask in `value` and the datum in `valueTwo` (absent: 0), matching
/// `(arg & value) == valueTwo`. libcontainer's `translate_op` instead builds
/// `ScmpCompareOp::MaskedEqual(valueTwo)` (the mask) with `value` as the
/// datum, so the spec's order gives libseccomp mask 0, and libseccomp
/// masks the datum too: the rule matches every call. Docker's `clone` rule
/// (no namespace flags) would silently allow `clone(CLONE_NEWUSER|...)`;
/// the test below saw `clone(CLONE_NEWNET)` succeed that way. The two are
/// swapped here so the filter means what Docker means; other operators
/// pass through unchanged. Only for libcontainer: runc would read this
/// output the other way round.
fn for_libcontainer(arg: &Arg) -> LinuxSeccompArg {
    let mut out = LinuxSeccompArgBuilder::default()
        .index(arg.index)
        .op(arg.op);
    out = if arg.op == LinuxSeccompOperator::ScmpCmpMaskedEq {
        out.value(arg.value_two.unwrap_or(0)).value_two(arg.value)
    } else {
        let out = out.value(arg.value);
        match arg.value_two {
            Some(two) => out.value_two(two),
            None => out,
        }
    };
    out.build().expect("a seccomp argument has every field")
}

/// The libseccomp (Go) name Docker's `arches` filters use for a Rust
/// [`std::env::consts::ARCH`], and the seccomp architecture whose
/// `archMap` entry applies.
fn native_arch(arch: &str) -> (&'static str, Option<Arch>) {
    let little = cfg!(target_endian = "little");
    match arch {
        "x86_64" => ("amd64", Some(Arch::ScmpArchX86_64)),
        "x86" => ("x86", Some(Arch::ScmpArchX86)),
        "aarch64" => ("arm64", Some(Arch::ScmpArchAarch64)),
        "arm" => ("arm", Some(Arch::ScmpArchArm)),
        "riscv64" => ("riscv64", Some(Arch::ScmpArchRiscv64)),
        "s390x" => ("s390x", Some(Arch::ScmpArchS390x)),
        "loongarch64" => ("loong64", Some(Arch::ScmpArchLoongarch64)),
        "powerpc" => ("ppc", Some(Arch::ScmpArchPpc)),
        "powerpc64" if little => ("ppc64le", Some(Arch::ScmpArchPpc64le)),
        "powerpc64" => ("ppc64", Some(Arch::ScmpArchPpc64)),
        "mips64" if little => ("mipsel64", Some(Arch::ScmpArchMipsel64)),
        "mips64" => ("mips64", Some(Arch::ScmpArchMips64)),
        "mips" if little => ("mipsle", Some(Arch::ScmpArchMipsel)),
        "mips" => ("mips", Some(Arch::ScmpArchMips)),
        _ => ("", None),
    }
}

/// The running kernel's version from `uname -r`.
fn running_kernel() -> Option<KernelVersion> {
    let uts = nix::sys::utsname::uname().ok()?;
    parse_kernel_release(&uts.release().to_string_lossy())
}

/// Major and minor of a kernel release or a `minKernel` value, as Docker's
/// `fmt.Sscanf(release, "%d.%d")`: `6.1.0-13-amd64` and `6.1-rc2` are 6.1.
fn parse_kernel_release(release: &str) -> Option<KernelVersion> {
    fn number(s: &str) -> Option<(u32, &str)> {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        Some((s[..end].parse().ok()?, &s[end..]))
    }
    let (major, rest) = number(release.trim())?;
    let (minor, _) = number(rest.strip_prefix('.')?)?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use oci_spec::runtime::LinuxSyscall;

    use super::*;
    use crate::exec::oci::defaults::DEFAULT_CAPABILITIES;

    fn caps(extra: &[&str]) -> Vec<String> {
        DEFAULT_CAPABILITIES
            .iter()
            .chain(extra)
            .map(|c| c.to_string())
            .collect()
    }

    /// Rules naming `name`.
    fn rules<'a>(p: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
        p.syscalls()
            .iter()
            .flatten()
            .filter(|r| r.names().iter().any(|n| n == name))
            .collect()
    }

    /// Allowed whatever its arguments.
    fn allowed(p: &LinuxSeccomp, name: &str) -> bool {
        rules(p, name)
            .iter()
            .any(|r| r.action() == LinuxSeccompAction::ScmpActAllow && r.args().is_none())
    }

    /// Not allowed in any form: falls to the default action.
    fn denied(p: &LinuxSeccomp, name: &str) -> bool {
        rules(p, name)
            .iter()
            .all(|r| r.action() != LinuxSeccompAction::ScmpActAllow)
    }

    const NEW_KERNEL: Option<KernelVersion> = Some((6, 1));

    #[test]
    fn kernel_releases_parse_like_docker() {
        assert_eq!(parse_kernel_release("6.18.44-fc-v1300"), Some((6, 18)));
        assert_eq!(parse_kernel_release("3.12.25-gentoo"), Some((3, 12)));
        assert_eq!(parse_kernel_release("3.12-1-amd64"), Some((3, 12)));
        assert_eq!(parse_kernel_release("4.8"), Some((4, 8)));
        assert_eq!(parse_kernel_release("5.4\n"), Some((5, 4)));
        assert_eq!(parse_kernel_release("6"), None);
        assert_eq!(parse_kernel_release("x.1"), None);
        assert_eq!(parse_kernel_release(""), None);
        assert!(running_kernel().is_some(), "uname -r parses here");
    }

    #[test]
    fn defaults_deny_by_errno_eperm() {
        let p = build(&caps(&[]), "x86_64", NEW_KERNEL);
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(libc::EPERM as u32));
    }

    #[test]
    fn default_capabilities_deny_mount_and_friends() {
        let p = build(&caps(&[]), "x86_64", NEW_KERNEL);
        for name in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "reboot",
            "bpf",
            "keyctl",
            "add_key",
            "kexec_load",
            "init_module",
            "open_by_handle_at",
            "pivot_root",
            "swapon",
            "syslog",
            "kcmp",
            "perf_event_open",
            "iopl",
            "settimeofday",
        ] {
            assert!(denied(&p, name), "{name} must not be allowed");
        }
        for name in [
            "read",
            "write",
            "execve",
            "getpid",
            "futex",
            "chroot",
            "arch_prctl",
        ] {
            assert!(allowed(&p, name), "{name} must be allowed");
        }
        // clone: only without namespace flags (mask 0x7E020000 must be 0),
        // clone3: ENOSYS so libcs fall back to the filterable clone.
        let clone = rules(&p, "clone");
        assert_eq!(clone.len(), 1, "{clone:?}");
        let args = clone[0].args().as_ref().expect("clone is conditional");
        assert_eq!(args.len(), 1);
        assert_eq!(args[0].index(), 0);
        assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        // libcontainer's order: value = datum, value_two = mask.
        assert_eq!(args[0].value(), 0);
        assert_eq!(args[0].value_two(), Some(0x7E02_0000));
        let clone3 = rules(&p, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0].action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3[0].errno_ret(), Some(libc::ENOSYS as u32));
        // socket: only the allowed address families, never AF_VSOCK or AF_ALG.
        let socket: Vec<_> = rules(&p, "socket")
            .into_iter()
            .flat_map(|r| r.args().clone().unwrap_or_default())
            .collect();
        let permits = |family: u64| {
            socket.iter().any(|a| match a.op() {
                LinuxSeccompOperator::ScmpCmpEq => a.value() == family,
                LinuxSeccompOperator::ScmpCmpLt => family < a.value(),
                _ => false,
            })
        };
        for family in [
            libc::AF_UNIX,
            libc::AF_INET,
            libc::AF_INET6,
            libc::AF_NETLINK,
        ] {
            assert!(permits(family as u64), "family {family}");
        }
        for family in [libc::AF_VSOCK, libc::AF_ALG] {
            assert!(!permits(family as u64), "family {family}");
        }
    }

    #[test]
    fn sys_admin_allows_mount_and_unconditional_clone() {
        let p = build(&caps(&["CAP_SYS_ADMIN"]), "x86_64", NEW_KERNEL);
        for name in [
            "mount", "umount2", "unshare", "setns", "clone", "clone3", "bpf",
        ] {
            assert!(allowed(&p, name), "{name} must be allowed");
        }
        // The conditional clone and the clone3 ENOSYS rules are gone.
        assert_eq!(rules(&p, "clone").len(), 1);
        assert_eq!(rules(&p, "clone3").len(), 1);
        assert!(denied(&p, "reboot"));
    }

    #[test]
    fn sys_ptrace_adds_kcmp_and_friends() {
        // ptrace itself: allowed on kernels >= 4.8 whatever the caps.
        let without = build(&caps(&[]), "x86_64", NEW_KERNEL);
        assert!(allowed(&without, "ptrace"));
        assert!(allowed(&without, "process_vm_readv"));
        for name in ["kcmp", "pidfd_getfd", "process_madvise"] {
            assert!(denied(&without, name), "{name}");
        }
        let with = build(&caps(&["CAP_SYS_PTRACE"]), "x86_64", NEW_KERNEL);
        for name in [
            "ptrace",
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
        ] {
            assert!(allowed(&with, name), "{name}");
        }
        // ptrace is in both groups but comes out once.
        assert_eq!(rules(&with, "ptrace").len(), 1);

        // Before 4.8 (seccomp could be bypassed with ptrace) only the cap allows it.
        let old = build(&caps(&[]), "x86_64", Some((4, 4)));
        assert!(denied(&old, "ptrace"));
        let old_with = build(&caps(&["CAP_SYS_PTRACE"]), "x86_64", Some((4, 4)));
        assert!(allowed(&old_with, "ptrace"));
        // An unknown kernel never satisfies minKernel.
        assert!(denied(&build(&caps(&[]), "x86_64", None), "ptrace"));
    }

    #[test]
    fn other_capabilities_open_their_groups() {
        for (cap, names) in [
            ("CAP_SYS_BOOT", &["reboot"][..]),
            (
                "CAP_SYS_MODULE",
                &["init_module", "finit_module", "delete_module"],
            ),
            ("CAP_SYS_TIME", &["settimeofday", "clock_settime"]),
            ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
            ("CAP_BPF", &["bpf"]),
            ("CAP_PERFMON", &["perf_event_open"]),
            ("CAP_SYSLOG", &["syslog"]),
        ] {
            let p = build(&caps(&[cap]), "x86_64", NEW_KERNEL);
            for name in names {
                assert!(allowed(&p, name), "{cap} must allow {name}");
            }
        }
        // Without CAP_SYS_CHROOT, chroot goes.
        let no_chroot: Vec<String> = caps(&[])
            .into_iter()
            .filter(|c| c != "CAP_SYS_CHROOT")
            .collect();
        assert!(denied(&build(&no_chroot, "x86_64", NEW_KERNEL), "chroot"));
    }

    #[test]
    fn architectures_follow_the_arch_map() {
        let x86 = build(&caps(&[]), "x86_64", NEW_KERNEL);
        assert_eq!(
            x86.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
        assert!(allowed(&x86, "arch_prctl") && allowed(&x86, "modify_ldt"));
        assert!(denied(&x86, "set_tls") && denied(&x86, "s390_runtime_instr"));

        let arm = build(&caps(&[]), "aarch64", NEW_KERNEL);
        assert_eq!(
            arm.architectures().as_deref(),
            Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..])
        );
        assert!(allowed(&arm, "set_tls") && allowed(&arm, "sync_file_range2"));
        assert!(denied(&arm, "arch_prctl") && denied(&arm, "modify_ldt"));

        let s390 = build(&caps(&[]), "s390x", NEW_KERNEL);
        let clone = rules(&s390, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0].args().as_ref().unwrap()[0].index(), 1);

        let unknown = build(&caps(&[]), "sparc64", NEW_KERNEL);
        assert!(unknown.architectures().is_none());

        let here = default_profile(&caps(&[]), std::env::consts::ARCH);
        assert!(here.architectures().is_some());
    }

    #[test]
    fn names_are_non_empty_and_unique_per_action() {
        for extra in [
            &[][..],
            &["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_BPF", "CAP_SYSLOG"],
        ] {
            let p = build(&caps(extra), "x86_64", NEW_KERNEL);
            let mut unconditional: HashMap<(String, u32), usize> = HashMap::new();
            for rule in p.syscalls().iter().flatten() {
                assert!(!rule.names().is_empty());
                for name in rule.names() {
                    assert!(!name.is_empty());
                    if rule.args().is_none() {
                        *unconditional
                            .entry((name.clone(), rule.action().as_u32(rule.errno_ret())))
                            .or_default() += 1;
                    }
                }
            }
            let dups: Vec<_> = unconditional.iter().filter(|(_, n)| **n > 1).collect();
            assert!(dups.is_empty(), "{dups:?}");
        }
    }

    #[test]
    fn the_profile_round_trips_as_oci_json() {
        let p = build(&caps(&[]), "x86_64", NEW_KERNEL);
        let json = serde_json::to_string(&p).unwrap();
        assert!(
            json.contains("\"defaultAction\":\"SCMP_ACT_ERRNO\""),
            "{json}"
        );
        let back: LinuxSeccomp = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
    }

    /// Loads the profile with libcontainer's own loader in a forked child
    /// and checks what the kernel then answers. Needs root (for the mount
    /// namespace that keeps a mis-filtered `mount` harmless).
    #[test]
    fn libcontainer_loads_the_profile_and_the_kernel_enforces_it() {
        use nix::sys::wait::{WaitStatus, waitpid};
        use nix::unistd::{ForkResult, fork};

        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let profile = default_profile(&caps(&[]), std::env::consts::ARCH);
        let target = tempfile::tempdir().unwrap();
        let target_c =
            std::ffi::CString::new(target.path().as_os_str().as_encoded_bytes()).unwrap();

        // SAFETY: the child runs the checks below and leaves with _exit;
        // glibc keeps malloc usable after fork.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                let code =
                    std::panic::catch_unwind(|| child_checks(&profile, &target_c)).unwrap_or(99);
                // SAFETY: leaves the forked child without running the
                // parent's atexit handlers or destructors.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => match waitpid(child, None).unwrap() {
                WaitStatus::Exited(_, 0) => {}
                other => panic!("child failed: {other:?} (see child_checks for the codes)"),
            },
        }
    }

    /// The checks in the filtered child; 0 when all hold, else the number
    /// of the first that failed.
    fn child_checks(profile: &LinuxSeccomp, target: &std::ffi::CStr) -> i32 {
        let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        // SAFETY (all blocks below): plain syscalls on valid arguments.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return 1;
            }
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return 2;
            }
        }
        if libcontainer::seccomp::initialize_seccomp(profile).is_err() {
            return 3;
        }
        unsafe {
            // mount: EPERM although we are root with every capability.
            let r = libc::mount(
                c"none".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            );
            if r == 0 || errno() != libc::EPERM {
                return 10;
            }
            if libc::umount2(target.as_ptr(), 0) == 0 || errno() != libc::EPERM {
                return 11;
            }
            if libc::unshare(libc::CLONE_NEWUSER) == 0 || errno() != libc::EPERM {
                return 12;
            }
            // reboot with bad magic: EINVAL if it reached the kernel.
            if libc::syscall(libc::SYS_reboot, 0, 0, 0, 0) == 0 || errno() != libc::EPERM {
                return 13;
            }
            if libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0) >= 0 || errno() != libc::EPERM {
                return 14;
            }
            // clone3 answers ENOSYS so libcs fall back to clone.
            if libc::syscall(libc::SYS_clone3, 0, 0) == 0 || errno() != libc::ENOSYS {
                return 15;
            }
            // Allowed ones still work.
            if libc::getpid() <= 0 {
                return 20;
            }
            let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
            if fd < 0 {
                return 21;
            }
            libc::close(fd);
            // fork (clone without namespace flags) works...
            let pid = libc::fork();
            if pid == 0 {
                libc::_exit(0);
            }
            if pid < 0 {
                return 22;
            }
            let mut status = 0;
            if libc::waitpid(pid, &mut status, 0) != pid || status != 0 {
                return 23;
            }
        }
        // ...and so do threads (clone3 -> ENOSYS -> clone).
        match std::thread::spawn(|| 7).join() {
            Ok(7) => {}
            _ => return 24,
        }
        // clone with a namespace flag does not.
        unsafe {
            let r = libc::syscall(
                libc::SYS_clone,
                libc::CLONE_NEWNET | libc::SIGCHLD,
                0,
                0,
                0,
                0,
            );
            if r == 0 {
                libc::_exit(0);
            }
            if r > 0 || errno() != libc::EPERM {
                return 25;
            }
        }
        0
    }
}
