//! The real `docker` CLI against daemons that serve the Docker Engine API
//! (`shoal daemon --docker-api`): each host's socket sits next to its
//! Shoal socket, and `docker` runs with its own empty config, so nothing
//! of the machine's Docker setup leaks in.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cluster::{CLI_TIMEOUT_SECS, ClusterBuilder, capture};
use crate::{Cluster, Output};

/// Where host `host`'s Docker API socket is.
pub(crate) fn docker_socket(host: &crate::cluster::Host) -> PathBuf {
    host.socket.with_file_name("docker.sock")
}

impl ClusterBuilder {
    /// Every daemon also serves the Docker Engine API.
    pub fn docker_api(mut self) -> Self {
        self.docker_api = true;
        self
    }
}

impl Cluster {
    /// Host `i`'s Docker API socket.
    pub fn docker_socket(&self, i: usize) -> PathBuf {
        self.socket(i).with_file_name("docker.sock")
    }

    /// Runs the `docker` CLI with `DOCKER_HOST` at host `i`'s Docker API.
    pub fn docker(&self, i: usize, args: &[&str]) -> Output {
        self.docker_in(i, self.dir(), args)
    }

    /// Runs `docker` in directory `cwd` (for `stack deploy -c` paths).
    pub fn docker_in(&self, i: usize, cwd: &Path, args: &[&str]) -> Output {
        let config = self.dir().join("docker-config");
        let _ = std::fs::create_dir_all(&config);
        let mut cmd = Command::new("timeout");
        cmd.current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir())
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.docker_socket(i).display()),
            )
            .env("DOCKER_CONFIG", &config)
            .env("DOCKER_CLI_HINTS", "false")
            .arg(CLI_TIMEOUT_SECS)
            .arg("docker")
            .args(args);
        capture(&mut cmd)
    }
}
