//! Choosing the local engine. `auto` picks Docker when its socket answers
//! a ping and the embedded engine (OCI images, confined) otherwise. The
//! process engine (host commands, no image) and `sim` are only ever chosen
//! explicitly: an image name never silently means a host binary, and a
//! real cluster never silently runs nothing.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The default place of the Docker Engine's socket.
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// How long `auto` waits for Docker to answer before falling back.
const DOCKER_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// An engine that runs tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// The local Docker Engine, through its API.
    Docker,
    /// The embedded engine: OCI images from registries, each task in its
    /// own root with Docker's default confinement.
    Embedded,
    /// Host commands in namespaces and a cgroup, no image (explicit only).
    Process,
    /// No process at all: tasks run instantly. For benchmarks and tests.
    Sim,
}

impl EngineKind {
    /// The name users see and type.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Docker => "docker",
            EngineKind::Embedded => "embedded",
            EngineKind::Process => "process",
            EngineKind::Sim => "sim",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the user asked for with `--engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineChoice {
    /// Docker if it answers, else embedded.
    #[default]
    Auto,
    /// Exactly this engine.
    Exactly(EngineKind),
}

impl FromStr for EngineChoice {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "auto" => EngineChoice::Auto,
            "docker" => EngineChoice::Exactly(EngineKind::Docker),
            "embedded" => EngineChoice::Exactly(EngineKind::Embedded),
            "process" => EngineChoice::Exactly(EngineKind::Process),
            "sim" => EngineChoice::Exactly(EngineKind::Sim),
            other => return Err(EngineError::Unknown(other.to_string())),
        })
    }
}

/// The engine a daemon runs, as `node ls` and `shoal info` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    /// Which engine.
    pub kind: EngineKind,
    /// Its version: Docker's server version, or Shoal's own for built-ins.
    pub version: String,
}

impl EngineInfo {
    /// The ENGINE VERSION column of `node ls`: `docker 20.10.24`, `process`.
    pub fn display(&self) -> String {
        match self.kind {
            EngineKind::Docker => format!("docker {}", self.version),
            other => other.name().to_string(),
        }
    }
}

/// Why an engine cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// `--engine` named something we do not have.
    #[error("unknown engine {0:?}: choose one of auto, docker, embedded, process, sim")]
    Unknown(String),
    /// Docker was asked for explicitly and does not answer.
    #[error(
        "cannot reach the Docker engine at unix://{socket}: {reason}; start dockerd, or run with --engine embedded"
    )]
    DockerUnreachable {
        /// The socket tried.
        socket: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Resolves the user's choice to a concrete engine, probing Docker at
/// `docker_socket` when needed.
pub async fn resolve(
    choice: EngineChoice,
    docker_socket: &Path,
) -> Result<EngineInfo, EngineError> {
    let builtin = |kind| EngineInfo {
        kind,
        version: shoal_proto::build_info::VERSION.to_string(),
    };
    match choice {
        EngineChoice::Exactly(EngineKind::Docker) => probe_docker(docker_socket).await,
        EngineChoice::Exactly(kind) => Ok(builtin(kind)),
        EngineChoice::Auto => match probe_docker(docker_socket).await {
            Ok(info) => Ok(info),
            Err(err) => {
                tracing::info!(%err, "docker engine not available, using the embedded engine");
                Ok(builtin(EngineKind::Embedded))
            }
        },
    }
}

async fn probe_docker(socket: &Path) -> Result<EngineInfo, EngineError> {
    let unreachable = |reason: String| EngineError::DockerUnreachable {
        socket: socket.to_path_buf(),
        reason,
    };
    if !socket.exists() {
        return Err(unreachable("no such socket".into()));
    }
    let path = socket
        .to_str()
        .ok_or_else(|| unreachable("socket path is not UTF-8".into()))?;
    let probe = async {
        let docker = bollard::Docker::connect_with_unix(path, 5, bollard::API_DEFAULT_VERSION)
            .map_err(|e| unreachable(e.to_string()))?
            .negotiate_version()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let version = docker
            .version()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(EngineInfo {
            kind: EngineKind::Docker,
            version: version.version.unwrap_or_else(|| "unknown".into()),
        })
    };
    tokio::time::timeout(DOCKER_PROBE_TIMEOUT, probe)
        .await
        .map_err(|_| unreachable(format!("no answer within {DOCKER_PROBE_TIMEOUT:?}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_choice_and_refuses_others() {
        assert_eq!("auto".parse::<EngineChoice>().unwrap(), EngineChoice::Auto);
        assert_eq!(
            "sim".parse::<EngineChoice>().unwrap(),
            EngineChoice::Exactly(EngineKind::Sim)
        );
        let err = "podman".parse::<EngineChoice>().unwrap_err().to_string();
        assert!(
            err.contains("podman") && err.contains("auto, docker, embedded, process, sim"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn auto_falls_back_to_embedded_without_docker() {
        let dir = std::env::temp_dir().join("shoal-no-docker-here");
        let info = resolve(EngineChoice::Auto, &dir.join("docker.sock"))
            .await
            .unwrap();
        assert_eq!(info.kind, EngineKind::Embedded);
        assert_eq!(info.display(), "embedded");
    }

    #[tokio::test]
    async fn explicit_docker_without_socket_is_a_clear_error() {
        let err = resolve(
            EngineChoice::Exactly(EngineKind::Docker),
            Path::new("/nonexistent/docker.sock"),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("/nonexistent/docker.sock") && err.contains("--engine embedded"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn auto_never_picks_sim() {
        let info = resolve(EngineChoice::Auto, Path::new("/nonexistent"))
            .await
            .unwrap();
        assert_ne!(info.kind, EngineKind::Sim);
    }
}
