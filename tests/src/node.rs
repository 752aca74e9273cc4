//! More of a host: SIGKILL its daemon alone (its tasks keep running, as
//! after a daemon crash), feed the CLI data on stdin, run a streaming CLI
//! command in the background, read the node's id.

use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::cluster::{Cluster, Output};

/// A CLI call that takes longer than this is killed (seconds).
const CLI_TIMEOUT_SECS: &str = "60";

impl Cluster {
    /// SIGKILLs host `i`'s daemon and nothing else: tasks, shims and
    /// containers stay, for a [`Cluster::restart`] to adopt.
    pub fn kill_daemon(&mut self, i: usize) {
        if let Some(mut daemon) = self.hosts[i].daemon.take() {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
    }

    /// Runs `shoal -H <host i> ARGS` with `input` on its stdin (`secret
    /// create NAME -`).
    pub fn shoal_stdin(&self, i: usize, args: &[&str], input: &[u8]) -> Output {
        let socket = format!("unix://{}", self.hosts[i].socket.display());
        let mut cmd = Command::new("timeout");
        cmd.arg(CLI_TIMEOUT_SECS)
            .arg(&self.bin)
            .arg("-H")
            .arg(socket)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut run = || -> std::io::Result<std::process::Output> {
            let mut child = cmd.spawn()?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(input)?;
            }
            child.wait_with_output()
        };
        match run() {
            Ok(out) => Output {
                status: out.status,
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            },
            Err(err) => Output {
                status: std::os::unix::process::ExitStatusExt::from_raw(127 << 8),
                stdout: String::new(),
                stderr: format!("cannot run shoal: {err}"),
            },
        }
    }

    /// Starts `shoal -H <host i> ARGS` and returns at once, its stdout
    /// piped: a command that streams (`shoal events`), for the test to
    /// read and then kill.
    pub fn shoal_spawn(&self, i: usize, args: &[&str]) -> std::io::Result<std::process::Child> {
        let socket = format!("unix://{}", self.hosts[i].socket.display());
        Command::new(&self.bin)
            .arg("-H")
            .arg(socket)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
    }

    /// Host `i`'s node id, from its `swarm.json`; `None` before it joined.
    pub fn node_id(&self, i: usize) -> Option<String> {
        let text = std::fs::read_to_string(self.hosts[i].state_dir.join("swarm.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["node_id"].as_str().map(str::to_string)
    }

    /// The node ids of every host that is in a swarm.
    pub fn node_ids(&self) -> Vec<String> {
        (0..self.hosts.len())
            .filter_map(|i| self.node_id(i))
            .collect()
    }

    /// The daemons' engine (`process`, `docker`, `sim`).
    pub fn engine(&self) -> &str {
        &self.options.engine
    }
}
