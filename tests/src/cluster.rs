//! A test cluster: N hosts, each a network namespace with its own UTS name
//! (`node-0`, `node-1`, ...), state dir, socket, log file and `shoal daemon`.
//!
//! The CLI runs from the test's own namespace against a host's socket (a
//! Unix socket is reached by path, whatever the namespace); commands that
//! must run *on* a host (ping, wget, nft) go through [`Cluster::exec`].

use std::fs::{self, OpenOptions};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::docker_cli::docker_socket;
use crate::eventually::eventually;
use crate::netns::{self, Netns, Underlay};

/// How long a daemon may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// A CLI call that takes longer than this is killed (seconds).
pub(crate) const CLI_TIMEOUT_SECS: &str = "60";

/// What a command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    /// The exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Its stdout if it succeeded, else an error with its stderr.
    pub fn ok(self) -> anyhow::Result<String> {
        if self.success() {
            Ok(self.stdout)
        } else {
            bail!(
                "exited with {}: {}{}",
                self.status,
                self.stderr.trim(),
                self.stdout.trim()
            )
        }
    }
}

/// Options for a cluster.
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    hosts: usize,
    pub(crate) engine: String,
    daemon_args: Vec<String>,
    pub(crate) docker_api: bool,
}

impl ClusterBuilder {
    /// Number of hosts (default 3).
    pub fn hosts(mut self, n: usize) -> Self {
        self.hosts = n;
        self
    }

    /// The daemons' `--engine` (default `process`).
    pub fn engine(mut self, engine: &str) -> Self {
        self.engine = engine.to_string();
        self
    }

    /// Extra flags for every `shoal daemon`.
    pub fn daemon_arg(mut self, arg: &str) -> Self {
        self.daemon_args.push(arg.to_string());
        self
    }

    /// Creates the hosts and starts a daemon on each, waiting until every
    /// one answers `shoal version`.
    pub fn start(self) -> anyhow::Result<Cluster> {
        netns::require_root()?;
        netns::sweep_stale();
        let run = netns::new_run_name();
        let dir = std::env::temp_dir().join("shoal-tests").join(&run);
        // Left by a dead process that had our pid (a failed test keeps its
        // folder for its logs): its swarm.json would make our fresh
        // daemons "already part of a swarm".
        if dir.exists() {
            fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot clear a stale {}", dir.display()))?;
        }
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let underlay = Underlay::create(&run)?;
        let mut cluster = Cluster {
            bin: shoal_binary()?,
            dir,
            hosts: Vec::new(),
            underlay,
            options: self,
            seen_ids: Default::default(),
        };
        for index in 0..cluster.options.hosts {
            let host = cluster.make_host(&run, index)?;
            cluster.hosts.push(host);
        }
        for index in 0..cluster.hosts.len() {
            cluster.start_daemon(index)?;
        }
        for index in 0..cluster.hosts.len() {
            cluster.wait_ready(index)?;
        }
        Ok(cluster)
    }
}

/// One test host.
#[derive(Debug)]
pub(crate) struct Host {
    pub(crate) hostname: String,
    pub(crate) netns: Netns,
    addr: Ipv4Addr,
    pub(crate) state_dir: PathBuf,
    pub(crate) socket: PathBuf,
    log: PathBuf,
    pub(crate) daemon: Option<Child>,
}

/// A running test cluster; everything it made goes when it is dropped.
#[derive(Debug)]
pub struct Cluster {
    pub(crate) bin: PathBuf,
    pub(crate) dir: PathBuf,
    // Hosts before the underlay: their veths go with their namespaces.
    pub(crate) hosts: Vec<Host>,
    underlay: Underlay,
    pub(crate) options: ClusterBuilder,
    /// Every node id a host has had (a node that left forgets its own),
    /// to find what its data plane left behind.
    pub(crate) seen_ids: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl Cluster {
    /// A builder with 3 hosts on the process engine.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            hosts: 3,
            engine: "process".into(),
            daemon_args: Vec::new(),
            docker_api: false,
        }
    }

    /// Starts `n` hosts with default options.
    pub fn start(n: usize) -> anyhow::Result<Cluster> {
        Cluster::builder().hosts(n).start()
    }

    /// Number of hosts.
    /// The run's scratch directory (files a test hands to the CLI).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether the cluster has no hosts.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Host `i`'s underlay address.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        self.hosts[i].addr
    }

    /// Host `i`'s host name (`node-i`).
    pub fn hostname(&self, i: usize) -> &str {
        &self.hosts[i].hostname
    }

    /// Host `i`'s network namespace name.
    pub fn netns(&self, i: usize) -> &str {
        self.hosts[i].netns.name()
    }

    /// Host `i`'s state dir.
    pub fn state_dir(&self, i: usize) -> &Path {
        &self.hosts[i].state_dir
    }

    /// Host `i`'s daemon socket.
    pub fn socket(&self, i: usize) -> &Path {
        &self.hosts[i].socket
    }

    /// The PID of host `i`'s daemon, if it runs.
    pub fn daemon_pid(&self, i: usize) -> Option<u32> {
        self.hosts[i].daemon.as_ref().map(Child::id)
    }

    /// Runs `shoal -H <host i> ARGS`.
    pub fn shoal(&self, i: usize, args: &[&str]) -> Output {
        self.shoal_env(i, &[], args)
    }

    /// Runs `shoal -H <host i> ARGS` with extra environment variables
    /// (`DOCKER_CONFIG` for `--with-registry-auth`).
    pub fn shoal_env(&self, i: usize, env: &[(&str, &str)], args: &[&str]) -> Output {
        let socket = format!("unix://{}", self.hosts[i].socket.display());
        let mut cmd = Command::new("timeout");
        cmd.envs(env.iter().copied())
            .arg(CLI_TIMEOUT_SECS)
            .arg(&self.bin)
            .arg("-H")
            .arg(socket)
            .args(args);
        let out = capture(&mut cmd);
        if let Some(id) = self.node_id(i) {
            self.seen_ids
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id);
        }
        out
    }

    /// Runs `program ARGS` inside host `i`'s namespace.
    pub fn exec(&self, i: usize, program: &str, args: &[&str]) -> Output {
        let mut cmd = self.hosts[i].netns.command("timeout");
        cmd.arg(CLI_TIMEOUT_SECS).arg(program).args(args);
        capture(&mut cmd)
    }

    /// Runs `f` on a thread inside host `i`'s network namespace, so the
    /// sockets it opens are the host's (for clients built in the test).
    pub fn in_netns<R: Send + 'static>(
        &self,
        i: usize,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> anyhow::Result<R> {
        let path = format!("/var/run/netns/{}", self.netns(i));
        let ns = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
        std::thread::spawn(move || {
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| anyhow::anyhow!("setns: {e}"))?;
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("thread in {} panicked", path))?
    }

    /// Whether host `from` can ping host `to` (one packet, 1 s).
    pub fn can_reach(&self, from: usize, to: usize) -> bool {
        let to = self.addr(to).to_string();
        self.exec(from, "ping", &["-c", "1", "-W", "1", "-q", &to])
            .success()
    }

    /// SIGKILLs every process on host `i`: the daemon first, then its
    /// tasks (each in namespaces of its own, found by the process engine's
    /// pid files) and their shims.
    pub fn kill(&mut self, i: usize) {
        let host = &mut self.hosts[i];
        if let Some(mut daemon) = host.daemon.take() {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        let pids = task_pids(&host.state_dir, true);
        let cgroups = task_cgroups(&pids);
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        host.netns.kill_all();
        // The daemon that would have removed its tasks' cgroups is dead.
        for dir in cgroups {
            for _ in 0..20 {
                if fs::remove_dir(&dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            // The node's group, once its last task's cgroup is gone.
            if let Some(group) = dir.parent() {
                let _ = fs::remove_dir(group);
            }
        }
    }

    /// The main processes of the tasks host `i` runs now (process engine).
    pub fn task_processes(&self, i: usize) -> Vec<i32> {
        task_pids(&self.hosts[i].state_dir, false)
    }

    /// Stops host `i`'s daemon with SIGTERM and waits for it; returns how
    /// it exited.
    pub fn stop(&mut self, i: usize) -> anyhow::Result<ExitStatus> {
        let mut daemon = self.hosts[i]
            .daemon
            .take()
            .context("daemon is not running")?;
        let pid = nix::unistd::Pid::from_raw(daemon.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        Ok(daemon.wait()?)
    }

    /// Starts host `i`'s daemon again on its state dir and waits until it
    /// answers.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        if self.hosts[i].daemon.is_some() {
            self.kill(i);
        }
        self.start_daemon(i)?;
        self.wait_ready(i)
    }

    /// The last `lines` lines of host `i`'s daemon log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let text = fs::read_to_string(&self.hosts[i].log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn make_host(&self, run: &str, index: usize) -> anyhow::Result<Host> {
        let hostname = format!("node-{index}");
        let netns = Netns::create(&format!("{run}-h{index}"))?;
        let addr = Underlay::address(index);
        self.underlay.attach(&netns, index, addr)?;
        let home = self.dir.join(&hostname);
        fs::create_dir_all(&home)?;
        Ok(Host {
            state_dir: home.join("state"),
            socket: home.join("shoal.sock"),
            log: home.join("daemon.log"),
            hostname,
            netns,
            addr,
            daemon: None,
        })
    }

    fn start_daemon(&mut self, i: usize) -> anyhow::Result<()> {
        let host = &self.hosts[i];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&host.log)?;
        // Own UTS namespace so each host has its own name; every step execs,
        // so the child's PID is the daemon's. The host's network namespace
        // only (not `ip netns exec`'s private mounts and fresh /sys): the
        // daemon shares the machine's mounts and cgroups as in production,
        // so dockerd sees the secrets tmpfs it mounts.
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/var/run/netns/{}", host.netns.name()))
            .arg("unshare");
        cmd.args([
            "--uts",
            "sh",
            "-c",
            r#"hostname "$0" && exec "$@""#,
            &host.hostname,
        ])
        .arg(&self.bin)
        .arg("-H")
        .arg(format!("unix://{}", host.socket.display()))
        .arg("daemon")
        .arg("--state-dir")
        .arg(&host.state_dir)
        .arg("--engine")
        .arg(&self.options.engine)
        .args(&self.options.daemon_args)
        .args(
            self.options
                .docker_api
                .then(|| format!("--docker-api=unix://{}", docker_socket(host).display())),
        )
        .env(
            "SHOAL_LOG",
            std::env::var("SHOAL_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start the daemon of {}", host.hostname))?;
        self.hosts[i].daemon = Some(child);
        Ok(())
    }

    fn wait_ready(&mut self, i: usize) -> anyhow::Result<()> {
        let result = eventually(
            &format!("daemon of {}", self.hosts[i].hostname),
            START_TIMEOUT,
            || {
                if let Some(daemon) = self.hosts[i].daemon.as_mut()
                    && let Some(status) = daemon.try_wait()?
                {
                    // Not retryable: report at once.
                    return Ok(Err(anyhow::anyhow!("daemon exited with {status}")));
                }
                self.shoal(i, &["version"]).ok().map(|_| Ok(()))
            },
        );
        match result.and_then(|r| r) {
            Ok(()) => Ok(()),
            Err(err) => Err(err.context(format!(
                "{} did not start; its log ends with:\n{}",
                self.hosts[i].hostname,
                self.log_tail(i, 30)
            ))),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        for i in 0..self.hosts.len() {
            if failed {
                eprintln!(
                    "---- {} daemon log (last 40 lines) ----\n{}",
                    self.hosts[i].hostname,
                    self.log_tail(i, 40)
                );
            }
            self.kill(i);
        }
        // Containers and mounts outlive the daemons that made them.
        if self.options.engine == "docker" {
            crate::leftovers::remove_containers(&self.node_ids());
        }
        crate::leftovers::unmount_under(&self.dir);
        // The data plane's namespaces (networks, mesh sandboxes) are named
        // after the node ids; the killed daemons never removed them.
        let mut ids = self.node_ids();
        ids.extend(
            self.seen_ids
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned(),
        );
        crate::leftovers::remove_data_plane(&ids);
        // Namespaces go as the hosts and the underlay are dropped.
        self.hosts.clear();
        if failed || std::env::var_os("SHOAL_TEST_KEEP").is_some() {
            eprintln!("harness: state and logs kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The Shoal cgroups (every controller) these processes are in.
fn task_cgroups(pids: &[i32]) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for pid in pids {
        let Ok(text) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            continue;
        };
        for line in text.lines() {
            // `id:controllers:/path`; v1 names the controllers, v2 is `0::`.
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
            let (Some(controllers), Some(path)) = (controllers, path) else {
                continue;
            };
            if !path.contains("/shoal/") {
                continue;
            }
            let base = if controllers.is_empty() {
                PathBuf::from("/sys/fs/cgroup")
            } else {
                PathBuf::from("/sys/fs/cgroup").join(controllers.trim_start_matches("name="))
            };
            let dir = base.join(path.trim_start_matches('/'));
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    dirs
}

/// Live task pids under a daemon's state dir (and their shims' pids).
fn task_pids(state_dir: &Path, with_shims: bool) -> Vec<i32> {
    let Ok(dirs) = fs::read_dir(state_dir.join("process").join("tasks")) else {
        return Vec::new();
    };
    let alive = |pid: i64| {
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
            .unwrap_or(false)
    };
    let mut pids = Vec::new();
    for dir in dirs.flatten() {
        let Ok(text) = fs::read_to_string(dir.path().join("pid.json")) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let mut keys = vec!["pid"];
        if with_shims {
            keys.push("shim_pid");
        }
        for key in keys {
            if let Some(pid) = v[key].as_i64().filter(|p| *p > 1 && alive(*p)) {
                pids.push(pid as i32);
            }
        }
    }
    pids
}

pub(crate) fn capture(cmd: &mut Command) -> Output {
    match cmd.stdin(Stdio::null()).output() {
        Ok(out) => Output {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        Err(err) => Output {
            status: std::os::unix::process::ExitStatusExt::from_raw(127 << 8),
            stdout: String::new(),
            stderr: format!("cannot run {cmd:?}: {err}"),
        },
    }
}

/// The `shoal` binary under test: `SHOAL_BIN`, else the one cargo built
/// next to this test executable (`target/<profile>/shoal`).
pub fn shoal_binary() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("SHOAL_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test executable has no target directory")?;
    let bin = profile_dir.join("shoal");
    if !bin.exists() {
        bail!(
            "{} not found: build it first (cargo build -p shoal) or set SHOAL_BIN",
            bin.display()
        );
    }
    Ok(bin)
}

/// `text` without ANSI colour sequences (daemon logs are coloured).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters final-byte
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
