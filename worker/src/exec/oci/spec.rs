//! The OCI runtime spec (`config.json`) of one task: its [`Plan`] inside
//! Docker's default confinement. The runtime (youki's libcontainer) does
//! what it says; everything Shoal decides about a container is here, in
//! one pure function that tests read back.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use oci_spec::runtime::{
    Capability, LinuxCpu, LinuxMemory, LinuxNamespace, LinuxNamespaceType, LinuxPids,
    LinuxResources, Mount, PosixRlimitBuilder, PosixRlimitType, Spec, User,
};

use super::defaults;
use super::plan::Plan;
use super::seccomp;
use crate::exec::process::cgroup::CPU_PERIOD_US;
use crate::exec::process::config::Bind;

/// Everything about one container besides its process.
#[derive(Debug, Clone)]
pub struct Confinement<'a> {
    /// UTS host name.
    pub hostname: &'a str,
    /// The mounted root filesystem (overlay over the image's layers).
    pub rootfs: &'a Path,
    /// `--read-only`: the root is mounted read-only.
    pub read_only: bool,
    /// The network namespace the data plane wires (joined, not created).
    pub netns: &'a Path,
    /// cgroup path below each hierarchy's root, e.g. `/shoal/<node>/<task>`.
    pub cgroups_path: &'a str,
    /// The capability set, already `--cap-add`/`--cap-drop` applied.
    pub capabilities: &'a [String],
    /// The service's volumes, binds and tmpfs mounts and the image's
    /// volumes ([`super::mounts`]), after the default mounts.
    pub mounts: &'a [Mount],
    /// Secrets, configs and the resolver's files, bound read-only.
    pub binds: &'a [Bind],
    /// Limits: bytes, CPUs × 1e9, processes (0 = none).
    pub memory_bytes: i64,
    /// CPU limit in units of 1e-9 CPUs.
    pub nano_cpus: i64,
    /// Process limit.
    pub pids: i64,
    /// `--ulimit`s: (name as Docker spells it, soft, hard).
    pub ulimits: &'a [(String, u64, u64)],
    /// `--sysctl`s, over Docker's defaults for a task's own network.
    pub sysctls: &'a [(String, String)],
}

/// The rlimit a Docker `--ulimit` name sets (`nofile` → RLIMIT_NOFILE).
pub fn rlimit_type(name: &str) -> Option<PosixRlimitType> {
    use PosixRlimitType::*;
    Some(match name {
        "core" => RlimitCore,
        "cpu" => RlimitCpu,
        "data" => RlimitData,
        "fsize" => RlimitFsize,
        "locks" => RlimitLocks,
        "memlock" => RlimitMemlock,
        "msgqueue" => RlimitMsgqueue,
        "nice" => RlimitNice,
        "nofile" => RlimitNofile,
        "nproc" => RlimitNproc,
        "rss" => RlimitRss,
        "rtprio" => RlimitRtprio,
        "rttime" => RlimitRttime,
        "sigpending" => RlimitSigpending,
        "stack" => RlimitStack,
        "as" => RlimitAs,
        _ => return None,
    })
}

/// The runtime spec of `plan` confined by `c`.
pub fn runtime_spec(plan: &Plan, c: &Confinement<'_>) -> Spec {
    let mut spec = Spec::default();
    spec.set_hostname(Some(c.hostname.to_string()));

    let mut root = oci_spec::runtime::Root::default();
    root.set_path(c.rootfs.to_path_buf());
    root.set_readonly(Some(c.read_only));
    spec.set_root(Some(root));

    // oci-spec parses names without the `CAP_` prefix; the set is already
    // checked by `defaults::capabilities`, so an unknown name cannot occur.
    let caps: HashSet<Capability> = c
        .capabilities
        .iter()
        .filter_map(|n| Capability::from_str(n.trim_start_matches("CAP_")).ok())
        .collect();
    let mut capabilities = oci_spec::runtime::LinuxCapabilities::default();
    capabilities.set_bounding(Some(caps.clone()));
    capabilities.set_effective(Some(caps.clone()));
    capabilities.set_permitted(Some(caps));
    // Docker keeps inheritable and ambient empty: a non-root user's
    // programs get no capabilities across exec.
    capabilities.set_inheritable(None);
    capabilities.set_ambient(None);

    let mut user = User::default();
    user.set_uid(plan.uid);
    user.set_gid(plan.gid);
    user.set_additional_gids(Some(vec![plan.gid]));

    let mut process = oci_spec::runtime::Process::default();
    process.set_terminal(Some(false));
    process.set_args(Some(plan.argv.clone()));
    process.set_env(Some(plan.env.clone()));
    process.set_cwd(PathBuf::from(&plan.cwd));
    process.set_user(user);
    process.set_capabilities(Some(capabilities));
    process.set_no_new_privileges(Some(true));
    // None by default, as Docker: the task inherits the daemon's.
    let mut rlimits = defaults::default_rlimits();
    for (name, soft, hard) in c.ulimits {
        let limit = rlimit_type(name).and_then(|typ| {
            PosixRlimitBuilder::default()
                .typ(typ)
                .soft(*soft)
                .hard(*hard)
                .build()
                .ok()
        });
        rlimits.extend(limit);
    }
    process.set_rlimits(Some(rlimits));
    spec.set_process(Some(process));

    let mut mounts: Vec<Mount> = defaults::default_mounts();
    mounts.extend(c.mounts.iter().cloned());
    for b in c.binds {
        let mut m = Mount::default();
        m.set_destination(b.target.clone());
        m.set_typ(Some("bind".into()));
        m.set_source(Some(b.source.clone()));
        m.set_options(Some(
            ["rbind", "ro", "nosuid", "nodev", "noexec"]
                .map(String::from)
                .to_vec(),
        ));
        mounts.push(m);
    }
    spec.set_mounts(Some(mounts));

    let mut linux = spec.linux().clone().unwrap_or_default();
    let namespaces: Vec<LinuxNamespace> = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ]
    .into_iter()
    .map(|typ| {
        let mut ns = LinuxNamespace::default();
        ns.set_typ(typ);
        if typ == LinuxNamespaceType::Network {
            ns.set_path(Some(c.netns.to_path_buf()));
        }
        ns
    })
    .collect();
    linux.set_namespaces(Some(namespaces));
    linux.set_cgroups_path(Some(PathBuf::from(c.cgroups_path)));
    linux.set_masked_paths(Some(defaults::masked_paths()));
    linux.set_readonly_paths(Some(
        defaults::READONLY_PATHS
            .iter()
            .map(|p| p.to_string())
            .collect(),
    ));
    linux.set_resources(Some(resources(c)));
    linux.set_sysctl(Some(
        defaults::DEFAULT_NET_SYSCTLS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain(c.sysctls.iter().cloned())
            .collect(),
    ));
    linux.set_seccomp(Some(seccomp::default_profile(
        c.capabilities,
        std::env::consts::ARCH,
    )));
    spec.set_linux(Some(linux));
    spec
}

fn resources(c: &Confinement<'_>) -> LinuxResources {
    let mut r = LinuxResources::default();
    r.set_devices(Some(defaults::default_devices()));
    let mut pids = LinuxPids::default();
    pids.set_limit(if c.pids > 0 {
        c.pids
    } else {
        defaults::DEFAULT_PIDS_LIMIT
    });
    r.set_pids(Some(pids));
    if c.memory_bytes > 0 {
        let mut m = LinuxMemory::default();
        m.set_limit(Some(c.memory_bytes));
        r.set_memory(Some(m));
    }
    if c.nano_cpus > 0 {
        let mut cpu = LinuxCpu::default();
        let quota = (c.nano_cpus * CPU_PERIOD_US / 1_000_000_000).max(1000);
        cpu.set_quota(Some(quota));
        cpu.set_period(Some(CPU_PERIOD_US as u64));
        r.set_cpu(Some(cpu));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            argv: vec!["httpd".into(), "-f".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/www".into(),
            uid: 1000,
            gid: 1000,
            stop_signal: String::new(),
        }
    }

    fn spec(caps: &[String], read_only: bool, memory: i64) -> Spec {
        let binds = [Bind {
            source: "/state/tasks/t1/files/run/secrets/db".into(),
            target: "/run/secrets/db".into(),
        }];
        runtime_spec(
            &plan(),
            &Confinement {
                hostname: "web-1",
                rootfs: Path::new("/state/tasks/t1/rootfs"),
                read_only,
                netns: Path::new("/state/tasks/t1/netns"),
                cgroups_path: "/shoal/n1/t1",
                capabilities: caps,
                mounts: &[],
                binds: &binds,
                memory_bytes: memory,
                nano_cpus: 500_000_000,
                pids: 0,
                ulimits: &[("nofile".into(), 1024, 2048)],
                sysctls: &[("net.ipv4.ip_forward".into(), "1".into())],
            },
        )
    }

    fn default_caps() -> Vec<String> {
        defaults::DEFAULT_CAPABILITIES
            .iter()
            .map(|c| c.to_string())
            .collect()
    }

    #[test]
    fn confined_like_docker_by_default() {
        let s = spec(&default_caps(), false, 0);
        let p = s.process().as_ref().unwrap();
        assert_eq!(p.no_new_privileges(), Some(true));
        let bounding = p
            .capabilities()
            .as_ref()
            .unwrap()
            .bounding()
            .clone()
            .unwrap();
        assert_eq!(bounding.len(), 14);
        assert!(bounding.contains(&Capability::NetBindService));
        assert!(!bounding.contains(&Capability::SysAdmin));
        assert_eq!(p.user().uid(), 1000);
        let linux = s.linux().as_ref().unwrap();
        assert!(linux.seccomp().is_some());
        assert!(
            linux
                .masked_paths()
                .as_ref()
                .unwrap()
                .contains(&"/proc/kcore".to_string())
        );
        let ns = linux.namespaces().as_ref().unwrap();
        let net = ns
            .iter()
            .find(|n| n.typ() == LinuxNamespaceType::Network)
            .unwrap();
        assert_eq!(
            net.path().as_deref(),
            Some(Path::new("/state/tasks/t1/netns")),
            "the data plane's namespace is joined"
        );
        assert_eq!(ns.len(), 6);
        let r = linux.resources().as_ref().unwrap();
        assert_eq!(
            r.pids().as_ref().unwrap().limit(),
            defaults::DEFAULT_PIDS_LIMIT
        );
        assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(50_000));
        assert!(r.memory().is_none());
        assert_eq!(s.root().as_ref().unwrap().readonly(), Some(false));
        let nofile = p.rlimits().as_ref().unwrap()[0];
        assert_eq!(
            (nofile.typ(), nofile.soft(), nofile.hard()),
            (PosixRlimitType::RlimitNofile, 1024, 2048)
        );
        assert_eq!(linux.sysctl().as_ref().unwrap()["net.ipv4.ip_forward"], "1");
    }

    #[test]
    fn secrets_are_read_only_binds_and_limits_apply() {
        let s = spec(&default_caps(), true, 64 << 20);
        let m = s
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.destination() == Path::new("/run/secrets/db"))
            .unwrap();
        assert!(m.options().as_ref().unwrap().contains(&"ro".to_string()));
        assert_eq!(s.root().as_ref().unwrap().readonly(), Some(true));
        let r = s.linux().as_ref().unwrap().resources().clone().unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(64 << 20));
    }
}
