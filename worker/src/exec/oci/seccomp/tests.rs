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

    if !crate::testing::root(module_path!()) {
        return;
    }
    let profile = default_profile(&caps(&[]), std::env::consts::ARCH);
    let target = tempfile::tempdir().unwrap();
    let target_c = std::ffi::CString::new(target.path().as_os_str().as_encoded_bytes()).unwrap();

    // SAFETY: the child runs the checks below and leaves with _exit;
    // glibc keeps malloc usable after fork.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            let code = std::panic::catch_unwind(|| child_checks(&profile, &target_c)).unwrap_or(99);
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
