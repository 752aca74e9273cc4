//! The machine's Docker engine as the Docker tests use it: the local test
//! image and the `docker` CLI.

use std::process::{Command, Stdio};

/// The image the Docker tests run, built by tests/docker-engine.sh.
pub const IMAGE: &str = "shoal-test/busybox:1";

/// `docker ARGS`, its stdout; an error with its stderr otherwise.
pub fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
