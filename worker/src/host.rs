//! Facts about the host a node runs on, for `shoal info` and the node's
//! description. Read from the kernel and /proc; nothing here is cached, so
//! a call always tells what is true now.

use std::path::Path;

/// What the host is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// The host name (the namespace's UTS name).
    pub hostname: String,
    /// Kernel release, e.g. `6.1.0-13-amd64`.
    pub kernel_version: String,
    /// Usable CPUs.
    pub ncpu: u32,
    /// Physical memory in bytes.
    pub mem_total: u64,
    /// `1` or `2`: which cgroup hierarchy is mounted at /sys/fs/cgroup.
    pub cgroup_version: u8,
    /// Load balancer backend the data plane will use: `ipvs` when the
    /// kernel has it, else `nftables`.
    pub load_balancer: &'static str,
}

impl HostFacts {
    /// Reads the facts of the host (or namespace) this process runs in.
    pub fn gather() -> HostFacts {
        let uts = nix::sys::utsname::uname().ok();
        HostFacts {
            hostname: nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_default(),
            kernel_version: uts
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            ncpu: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            mem_total: std::fs::read_to_string("/proc/meminfo")
                .ok()
                .and_then(|s| parse_mem_total(&s))
                .unwrap_or(0),
            cgroup_version: if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
                2
            } else {
                1
            },
            load_balancer: if Path::new("/proc/net/ip_vs").exists() {
                "ipvs"
            } else {
                "nftables"
            },
        }
    }
}

/// Parses the `MemTotal:` line of /proc/meminfo into bytes.
fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total_is_read_in_bytes() {
        let sample = "MemTotal:       24576000 kB\nMemFree:  1 kB\n";
        assert_eq!(parse_mem_total(sample), Some(24_576_000 * 1024));
        assert_eq!(parse_mem_total("nothing"), None);
    }

    #[test]
    fn gathers_this_host() {
        let facts = HostFacts::gather();
        assert!(facts.ncpu >= 1);
        assert!(facts.mem_total > 0);
        assert!(!facts.kernel_version.is_empty());
    }
}
