//! Network namespaces for test hosts, and the underlay that joins them.
//!
//! Every name starts with `shoaltest-<pid>-<seq>`: the pid tells the sweep
//! whether the run that made a namespace is still alive, so leftovers of a
//! killed run are removed by the next one and never those of a live one.
//! The underlay bridge lives in a namespace of its own (the hub), so the
//! machine's root namespace is never touched and deleting the hub removes
//! the whole underlay.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, bail};

/// The prefix of everything the harness names.
pub const PREFIX: &str = "shoaltest";

/// The underlay's prefix length: hosts live in 198.18.0.0/15.
pub const UNDERLAY_PREFIX_LEN: u8 = 15;

/// A fresh, process-unique run name: `shoaltest-<pid>-<seq>`.
pub fn new_run_name() -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    format!(
        "{PREFIX}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `cmd` and returns its stdout; a failure carries the command line
/// and its stderr.
pub fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `ip ARGS`.
pub fn ip(args: &[&str]) -> anyhow::Result<String> {
    run(Command::new("ip").args(args))
}

/// Fails clearly when the harness cannot work here.
pub fn require_root() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "the cluster harness needs root (network namespaces, nftables); run the tests as root"
        );
    }
    Ok(())
}

/// A network namespace the harness created; destroyed when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace `name` with its loopback up.
    pub fn create(name: &str) -> anyhow::Result<Netns> {
        ip(&["netns", "add", name])?;
        let ns = Netns {
            name: name.to_string(),
        };
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside this namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `ip ARGS` inside this namespace.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// SIGKILLs every process in the namespace (only ours live there).
    pub fn kill_all(&self) {
        kill_pids_in(&self.name);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        destroy(&self.name);
    }
}

fn kill_pids_in(name: &str) {
    if let Ok(pids) = ip(&["netns", "pids", name]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn destroy(name: &str) {
    kill_pids_in(name);
    // A process may take a moment to die and release the namespace.
    for _ in 0..20 {
        if ip(&["netns", "del", name]).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    eprintln!("harness: could not delete network namespace {name}");
}

/// The shared L2 segment: a bridge in the hub namespace, one veth per host.
#[derive(Debug)]
pub struct Underlay {
    hub: Netns,
}

impl Underlay {
    /// Creates the hub namespace `<run>-hub` with bridge `br0`.
    pub fn create(run: &str) -> anyhow::Result<Underlay> {
        let hub = Netns::create(&format!("{run}-hub"))?;
        hub.ip(&["link", "add", "br0", "type", "bridge"])?;
        hub.ip(&["link", "set", "br0", "up"])?;
        Ok(Underlay { hub })
    }

    /// The address of host `index` (0-based): 198.18.0.10, .11, ...
    pub fn address(index: usize) -> Ipv4Addr {
        let n = 10 + index as u32;
        Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + n)
    }

    /// Plugs `host` into the bridge as `eth0` with `addr`.
    pub fn attach(&self, host: &Netns, index: usize, addr: Ipv4Addr) -> anyhow::Result<()> {
        let port = format!("vh{index}");
        ip(&[
            "link",
            "add",
            "eth0",
            "netns",
            host.name(),
            "type",
            "veth",
            "peer",
            "name",
            &port,
            "netns",
            self.hub.name(),
        ])?;
        self.hub
            .ip(&["link", "set", &port, "master", "br0", "up"])?;
        host.ip(&[
            "addr",
            "add",
            &format!("{addr}/{UNDERLAY_PREFIX_LEN}"),
            "dev",
            "eth0",
        ])?;
        host.ip(&["link", "set", "eth0", "up"])?;
        Ok(())
    }
}

/// Removes namespaces left by harness runs whose process is gone.
pub fn sweep_stale() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix(&format!("{PREFIX}-")) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        if !alive {
            eprintln!("harness: removing {name}, left by a run that is gone");
            destroy(name);
        }
    }
    // Its daemons' mounts (task tmpfs, netns binds) stay in the machine's
    // mount namespace; its logs stay for reading.
    let runs = std::env::temp_dir().join("shoal-tests");
    for dir in std::fs::read_dir(&runs).into_iter().flatten().flatten() {
        let name = dir.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(&format!("{PREFIX}-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<i32>().ok());
        if let Some(pid) = pid
            && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err()
        {
            crate::leftovers::unmount_under(&dir.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_in_the_test_range() {
        assert_eq!(Underlay::address(0), Ipv4Addr::new(198, 18, 0, 10));
        assert_eq!(Underlay::address(300), Ipv4Addr::new(198, 18, 1, 54));
    }

    #[test]
    fn run_names_are_unique_and_carry_our_pid() {
        let a = new_run_name();
        let b = new_run_name();
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("{PREFIX}-{}-", std::process::id())));
    }
}
