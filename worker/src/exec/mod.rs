//! Engines behind one trait. The task actor (`crate::task`) drives a task
//! through its life by calling these in order:
//!
//! ```text
//!   prepare ──> start ──> wait ─────────────> (exit)
//!      │          │         │
//!      └──────────┴─────────┴──> stop (signal, grace, kill) ──> remove
//! ```
//!
//! Every call is idempotent and keyed by task id, so a restarted daemon can
//! call them again on tasks it finds with [`Engine::list`] (adoption)
//! instead of starting duplicates. Engines keep what they need to find
//! their tasks again on their own (Docker labels, process-engine state
//! files under the state dir); the caller keeps nothing for them.
//!
//! - `docker`: the local Docker Engine through bollard.
//! - `embedded` (`process` with an image store, see [`oci`]): OCI images,
//!   each task in its own overlay root and Docker's default confinement,
//!   run by youki's libcontainer from the per-task shim.
//! - `process`: built in; the task's command from the host's filesystem in
//!   its own network, pid, mount, uts and ipc namespaces and cgroup.
//! - `sim`: no process; for control-plane benchmarks and tests.

pub mod docker;
pub mod metered;
pub mod oci;
pub mod process;
pub mod signal;
pub mod sim;

use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use shoal_proto::objects::Task;

use crate::engine_choice::EngineInfo;

/// A stream of a task's log lines.
pub type LogStream =
    Pin<Box<dyn futures_core::Stream<Item = Result<LogLine, ExecError>> + Send + 'static>>;

/// Everything an engine needs to run one task.
#[derive(Clone, Default)]
pub struct TaskRun {
    /// The task as the dispatcher assigned it (spec, ids, slot, service).
    pub task: Task,
    /// Files the task must see: its secrets and configs, data included.
    pub files: Vec<TaskFile>,
}

impl std::fmt::Debug for TaskRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskRun")
            .field("task", &self.task.id)
            .field("files", &self.files)
            .finish()
    }
}

/// A secret or config as the task sees it. Secret data must never be
/// logged and never written anywhere but tmpfs.
#[derive(Clone, Default)]
pub struct TaskFile {
    /// Absolute path inside the task: `/run/secrets/<name>` for secrets,
    /// the config's target (default `/<name>`) for configs.
    pub path: PathBuf,
    /// The content.
    pub data: Vec<u8>,
    /// Owner inside the task.
    pub uid: u32,
    /// Group inside the task.
    pub gid: u32,
    /// Permission bits (0o444 when the spec gives none).
    pub mode: u32,
    /// Whether this is a secret (stricter handling: tmpfs only, never logged).
    pub secret: bool,
}

impl std::fmt::Debug for TaskFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the data.
        f.debug_struct("TaskFile")
            .field("path", &self.path)
            .field("bytes", &self.data.len())
            .field("mode", &format_args!("{:o}", self.mode))
            .field("secret", &self.secret)
            .finish()
    }
}

/// How a task's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// The exit code (128 + signal when killed by a signal, as Docker).
    pub code: i32,
    /// A short human explanation when there is one (e.g. "killed by SIGKILL",
    /// "OOM killed").
    pub message: String,
}

/// A task an engine knows of (for adoption after a daemon restart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineTask {
    /// The task id.
    pub task_id: String,
    /// Whether its process is running now.
    pub running: bool,
    /// How it ended, when it has.
    pub exit: Option<Exit>,
    /// Engine-side handle shown to users: container id, or the pid.
    pub handle: String,
    /// The pid of its main process, where there is one.
    pub pid: Option<i32>,
}

/// What [`Engine::start`] answers: the task's handle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Started {
    /// Engine-side handle shown to users: container id, or the pid.
    pub handle: String,
    /// The pid of its main process, where there is one.
    pub pid: Option<i32>,
}

/// Output of [`Engine::exec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// The command's exit code.
    pub code: i32,
    /// Its combined output, truncated to a few KiB (health check reports).
    pub output: String,
}

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line a task wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When the engine captured it.
    pub timestamp: SystemTime,
    /// Which stream.
    pub source: LogSource,
    /// The bytes, newline included when there was one.
    pub data: Vec<u8>,
}

/// What [`Engine::logs`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming new lines until the task's logs end.
    pub follow: bool,
    /// Only the last N lines (all when `None`).
    pub tail: Option<usize>,
    /// Only lines at or after this time.
    pub since: Option<SystemTime>,
}

/// Why an engine call failed. `rejected` errors mean the task can never
/// run as specified (the worker reports the task `rejected`); others are
/// failures of this attempt (`failed`).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The task cannot run on this engine as specified (no command on the
    /// process engine, image not available, bad user, ...).
    #[error("{0}")]
    Rejected(String),
    /// The engine does not know the task.
    #[error("task {0} is not known to the engine")]
    NotFound(String),
    /// Anything else: I/O, the Docker API, a syscall.
    #[error("{0}")]
    Failed(String),
}

impl ExecError {
    /// Whether the task can never run as specified.
    pub fn is_rejection(&self) -> bool {
        matches!(self, ExecError::Rejected(_))
    }
}

/// An engine: what runs tasks on this node.
#[tonic::async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Which engine, and its version.
    fn info(&self) -> EngineInfo;

    /// Makes the task ready to start: checks that it can run (image
    /// present, command given), creates its sandbox (network namespace or
    /// container) and writes its files. Idempotent; a prepared task is
    /// left as it is.
    async fn prepare(&self, run: &TaskRun) -> Result<(), ExecError>;

    /// Starts the prepared task and says how users find it (so nothing on
    /// the start path lists every task of the node). Starting a running
    /// task is a no-op that answers the same.
    async fn start(&self, task_id: &str) -> Result<Started, ExecError>;

    /// Waits until the task's process exits. May be dropped and called
    /// again (by an adopting daemon, too); an exited task answers at once.
    async fn wait(&self, task_id: &str) -> Result<Exit, ExecError>;

    /// Stops the task: `signal` (default SIGTERM), then SIGKILL after
    /// `grace`. Returns once every process of the task is gone. Stopping
    /// a task that is not running is a no-op.
    async fn stop(
        &self,
        task_id: &str,
        signal: Option<&str>,
        grace: Duration,
    ) -> Result<(), ExecError>;

    /// Removes everything of the task: processes (killed if needed),
    /// sandbox, files, cgroup. Removing an unknown task is a no-op.
    async fn remove(&self, task_id: &str) -> Result<(), ExecError>;

    /// Frees what the task held only to run (the docker engine's network
    /// sandbox) once it has ended; its container, exit and logs stay until
    /// [`Engine::remove`], as Docker keeps a stopped task's container.
    async fn release(&self, _task_id: &str) -> Result<(), ExecError> {
        Ok(())
    }

    /// Every task this engine holds, running or exited (adoption after a
    /// daemon restart).
    async fn list(&self) -> Result<Vec<EngineTask>, ExecError>;

    /// Runs `cmd` inside the running task (health checks).
    async fn exec(
        &self,
        task_id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, ExecError>;

    /// The task's log lines.
    async fn logs(&self, task_id: &str, options: LogOptions) -> Result<LogStream, ExecError>;

    /// The health check the task's image declares (`HEALTHCHECK`), for a
    /// service that gives none; `None` where the engine runs no images of
    /// its own or the image declares none. (The docker engine's images are
    /// checked by dockerd's own rules.)
    async fn image_healthcheck(
        &self,
        _task_id: &str,
    ) -> Option<shoal_proto::objects::HealthConfig> {
        None
    }

    /// The task's network namespace, once prepared, for the data plane to
    /// wire (the process engine's own, the docker engine's sandbox); `None`
    /// where there is none (`sim`).
    async fn netns(&self, _task_id: &str) -> Option<PathBuf> {
        None
    }
}

/// What the daemon knows when it builds its engine.
#[derive(Debug, Clone)]
pub struct EngineParams {
    /// The daemon's state dir; the process engine keeps its tasks under
    /// `<state_dir>/process`.
    pub state_dir: PathBuf,
    /// Where cgroups are mounted (`/sys/fs/cgroup`).
    pub cgroup_root: PathBuf,
    /// The node's id: names this daemon's cgroups
    /// (`<root>/shoal/<node id>/<task>`) and labels its containers, so two
    /// daemons on one host never take each other's tasks.
    pub node_id: String,
    /// The Docker Engine's socket, for the docker engine.
    pub docker_socket: PathBuf,
    /// The node's image store, for the embedded engine.
    pub images: Option<std::sync::Arc<crate::image::ImageStore>>,
    /// The node's volume store, for the embedded engine's mounts.
    pub volumes: Option<std::sync::Arc<crate::volume::VolumeStore>>,
}

/// Builds the engine [`crate::engine_choice::resolve`] chose, its calls timed
/// for metrics ([`metered`]).
pub async fn build(
    info: &EngineInfo,
    params: &EngineParams,
) -> Result<std::sync::Arc<dyn Engine>, ExecError> {
    Ok(std::sync::Arc::new(metered::Metered(
        build_bare(info, params).await?,
    )))
}

async fn build_bare(
    info: &EngineInfo,
    params: &EngineParams,
) -> Result<std::sync::Arc<dyn Engine>, ExecError> {
    use crate::engine_choice::EngineKind;
    Ok(match info.kind {
        EngineKind::Process => std::sync::Arc::new(process::ProcessEngine::new(
            params.state_dir.join("process"),
            params.cgroup_root.clone(),
            &params.node_id,
        )),
        EngineKind::Embedded => {
            let images = params.images.clone().ok_or_else(|| {
                ExecError::Failed("the embedded engine needs the node's image store".into())
            })?;
            let mut engine = process::ProcessEngine::new(
                params.state_dir.join("process"),
                params.cgroup_root.clone(),
                &params.node_id,
            )
            .with_images(images);
            if let Some(volumes) = params.volumes.clone() {
                engine = engine.with_volumes(volumes);
            }
            std::sync::Arc::new(engine)
        }
        EngineKind::Sim => std::sync::Arc::new(sim::SimEngine::new()),
        EngineKind::Docker => std::sync::Arc::new(
            docker::DockerEngine::connect(
                &params.docker_socket,
                params.node_id.clone(),
                params.state_dir.clone(),
            )
            .await?,
        ),
    })
}
