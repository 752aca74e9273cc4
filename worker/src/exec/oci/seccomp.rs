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
mod tests;
