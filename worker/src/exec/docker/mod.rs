//! The `docker` engine: tasks are containers on the node's local Docker
//! Engine, reached through bollard.
//!
//! The engine keeps no state of its own: a task's container is found again
//! by its labels (`com.shoal.managed`, the task and node ids), so a daemon
//! restarted next to a running dockerd adopts its containers with
//! [`Engine::list`]. Secrets and configs live on a per-task tmpfs under
//! the state dir ([`files`]) and are bound read-only into the container.
//!
//! - [`sandbox`]: the per-task network sandbox the container joins, so
//!   Shoal wires its overlays before the task's process starts (the
//!   module says why this design).
//! - [`spec`]: task → container name, labels, create body (pure).
//! - [`image`]: image present or pulled, else the task is rejected.
//! - [`files`]: the task's tmpfs of secrets and configs.
//! - [`lifecycle`]: wait, stop (signal, grace, kill), exit codes.
//! - [`command`]: exec inside a running task (health checks).
//! - [`logs`]: container logs as log lines.

pub mod command;
pub mod files;
pub mod image;
pub mod lifecycle;
pub mod logs;
pub mod sandbox;
pub mod spec;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, RemoveContainerOptions,
};
use shoal_proto::objects::Task;

use crate::engine_choice::{EngineInfo, EngineKind};
use crate::exec::{
    Engine, EngineTask, ExecError, ExecOutput, Exit, LogOptions, LogStream, Started, TaskRun,
};

pub use image::RegistryAuth;

/// How long one Docker API call may take before its answer starts. Long
/// calls (wait, logs, pulls) stream, and Docker answers their headers at
/// once; stops never block in one call (see [`lifecycle::stop`]).
const API_TIMEOUT_SECS: u64 = 120;

/// Tasks as containers on the local Docker Engine.
pub struct DockerEngine {
    docker: Docker,
    node_id: String,
    state_dir: PathBuf,
    info: EngineInfo,
    registry_auth: Option<RegistryAuth>,
    /// Set once the sandbox image is on the node (imported at most once
    /// however many tasks prepare together).
    sandbox_image: tokio::sync::OnceCell<()>,
    /// Task id → its container's id, so the start path never scans every
    /// container of the node.
    ids: std::sync::Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for DockerEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerEngine")
            .field("node_id", &self.node_id)
            .field("state_dir", &self.state_dir)
            .field("version", &self.info.version)
            .finish()
    }
}

impl DockerEngine {
    /// Connects to the Docker Engine at `socket` for node `node_id`.
    /// Task files go to tmpfs mounts under `state_dir/tasks/<id>/files`.
    pub async fn connect(
        socket: &Path,
        node_id: impl Into<String>,
        state_dir: impl Into<PathBuf>,
    ) -> Result<Self, ExecError> {
        let failed = |e: &dyn std::fmt::Display| {
            ExecError::Failed(format!(
                "cannot reach the Docker engine at unix://{}: {e}",
                socket.display()
            ))
        };
        let path = socket
            .to_str()
            .ok_or_else(|| failed(&"socket path is not UTF-8"))?;
        let docker =
            Docker::connect_with_unix(path, API_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
                .map_err(|e| failed(&e))?
                .negotiate_version()
                .await
                .map_err(|e| failed(&e))?;
        let version = docker.version().await.map_err(|e| failed(&e))?;
        Ok(DockerEngine {
            docker,
            node_id: node_id.into(),
            state_dir: state_dir.into(),
            info: EngineInfo {
                kind: EngineKind::Docker,
                version: version.version.unwrap_or_else(|| "unknown".into()),
            },
            registry_auth: None,
            sandbox_image: tokio::sync::OnceCell::new(),
            ids: Default::default(),
        })
    }

    /// Sets where registry credentials for pulls come from.
    pub fn with_registry_auth(mut self, auth: RegistryAuth) -> Self {
        self.registry_auth = Some(auth);
        self
    }

    /// The Docker client, for callers that need more than the trait.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Filters matching every container of this node (tasks and
    /// sandboxes), or of one task.
    fn filters(&self, task_id: Option<&str>) -> HashMap<String, Vec<String>> {
        let mut labels = vec![
            format!("{}=true", spec::LABEL_MANAGED),
            format!("{}={}", spec::LABEL_NODE_ID, self.node_id),
        ];
        if let Some(id) = task_id {
            labels.push(format!("{}={id}", spec::LABEL_TASK_ID));
        }
        HashMap::from([("label".to_string(), labels)])
    }

    async fn containers(&self, task_id: Option<&str>) -> Result<Vec<ContainerSummary>, ExecError> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(self.filters(task_id)),
            ..Default::default()
        };
        self.docker
            .list_containers(Some(options))
            .await
            .map_err(|e| api("list containers", &e))
    }

    /// The task's container id, if it has one: remembered from its
    /// creation, else looked up (after a restart).
    async fn find(&self, task_id: &str) -> Result<Option<String>, ExecError> {
        if let Some(id) = self.known().get(task_id) {
            return Ok(Some(id.clone()));
        }
        let found = self
            .containers(Some(task_id))
            .await?
            .into_iter()
            .find_map(|c| c.id);
        if let Some(id) = &found {
            self.known().insert(task_id.to_string(), id.clone());
        }
        Ok(found)
    }

    /// Task id → container id of the containers this engine made or found.
    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.ids.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The task's container id; `NotFound` when it has none.
    async fn container_id(&self, task_id: &str) -> Result<String, ExecError> {
        self.find(task_id)
            .await?
            .ok_or_else(|| ExecError::NotFound(task_id.to_string()))
    }

    /// The task's container, when it was created already: found by its
    /// name (one lookup, where a label filter scans every container).
    async fn find_created(&self, task: &Task) -> Result<Option<Created>, ExecError> {
        let name = spec::container_name(task, &self.node_id);
        let c = match self.docker.inspect_container(&name, None).await {
            Ok(c) => c,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(api(&format!("inspect container {name}"), &e)),
        };
        if !spec::labelled_for(&c, spec::LABEL_TASK_ID, &task.id, &self.node_id) {
            return Ok(None);
        }
        let Some(id) = c.id else { return Ok(None) };
        self.known().insert(task.id.clone(), id.clone());
        Ok(Some(Created {
            id,
            running: c.state.and_then(|s| s.running).unwrap_or(false),
            network_mode: c.host_config.and_then(|h| h.network_mode),
        }))
    }

    /// The task's sandbox, when it has one of ours: found by its name (one
    /// lookup, where a label filter scans every container).
    async fn find_sandbox(&self, task_id: &str) -> Result<Option<sandbox::Found>, ExecError> {
        match self
            .docker
            .inspect_container(&sandbox::name(task_id), None)
            .await
        {
            Ok(c) => Ok(sandbox::Found::of(c, &self.node_id, task_id)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api("inspect sandbox", &e)),
        }
    }

    /// The id of the task's running sandbox, created (and started) when
    /// it has none; a sandbox that stopped is replaced, since its
    /// namespace went with its process.
    async fn sandbox(&self, task: &Task) -> Result<String, ExecError> {
        if let Some(found) = self.find_sandbox(&task.id).await? {
            if found.running {
                return Ok(found.id);
            }
            remove_container(&self.docker, &found.id).await?;
        }
        self.sandbox_image
            .get_or_try_init(|| sandbox::ensure_image(&self.docker))
            .await?;
        let name = sandbox::name(&task.id);
        let options = CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        let body = sandbox::create_body(task, &self.node_id);
        let id = match self.docker.create_container(Some(options), body).await {
            Ok(created) => created.id,
            // Another prepare won the race: use its sandbox.
            Err(e) if status(&e) == Some(409) => self
                .find_sandbox(&task.id)
                .await?
                .map(|found| found.id)
                .ok_or_else(|| api(&format!("create container {name}"), &e))?,
            Err(e) => return Err(api(&format!("create container {name}"), &e)),
        };
        match self.docker.start_container(&id, None).await {
            Ok(()) => {}
            Err(e) if status(&e) == Some(304) => {}
            Err(e) => return Err(api(&format!("start sandbox {name}"), &e)),
        }
        Ok(id)
    }

    /// The task's image on the node, pulled with the task's credentials
    /// when missing.
    async fn ensure_image(&self, run: &TaskRun) -> Result<(), ExecError> {
        let image = spec::image(&run.task);
        // The service's own (`--with-registry-auth`), else the hook's.
        let credentials = run
            .task
            .spec
            .as_ref()
            .and_then(|s| s.container.as_ref())
            .and_then(|c| c.registry_auth.as_ref())
            .map(|a| bollard::auth::DockerCredentials {
                username: Some(a.username.clone()),
                password: Some(a.password.clone()),
                serveraddress: Some(a.server.clone()),
                ..Default::default()
            })
            .or_else(|| {
                self.registry_auth
                    .as_ref()
                    .and_then(|auth| auth(run, image))
            });
        image::ensure(&self.docker, image, credentials).await
    }

    async fn create(&self, run: &TaskRun, sandbox: &str) -> Result<(), ExecError> {
        let task = &run.task;
        let dir = files::files_dir(&self.state_dir, &task.id);
        let binds = files::write(&dir, &run.files)?;
        let name = spec::container_name(task, &self.node_id);
        let network = sandbox::network_mode(sandbox);
        let body = spec::create_body(run, &self.node_id, &binds, &network);
        let options = CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        match self.docker.create_container(Some(options), body).await {
            Ok(created) => {
                tracing::info!(task = %task.id, container = %created.id, %name, "container created");
                self.known().insert(task.id.clone(), created.id);
                Ok(())
            }
            // Another prepare won the race: reuse its container.
            Err(e) if status(&e) == Some(409) && self.find(&task.id).await?.is_some() => Ok(()),
            // Docker refuses the spec itself (a bind source that does not
            // exist, a bad mount): it will never run as specified.
            Err(e) if status(&e) == Some(400) => Err(ExecError::Rejected(format!(
                "cannot create container {name}: {}",
                docker_message(&e)
            ))),
            Err(e) => Err(api(&format!("create container {name}"), &e)),
        }
    }
}

#[tonic::async_trait]
impl Engine for DockerEngine {
    fn info(&self) -> EngineInfo {
        self.info.clone()
    }

    async fn prepare(&self, run: &TaskRun) -> Result<(), ExecError> {
        let existing = self.find_created(&run.task).await?;
        if existing.is_none() {
            // Before the sandbox: a task that cannot run leaves nothing.
            self.ensure_image(run).await?;
        }
        let sandbox = self.sandbox(&run.task).await?;
        if let Some(found) = existing {
            let joined = found.network_mode.as_deref() == Some(&sandbox::network_mode(&sandbox));
            if joined || found.running {
                // Already created (by us before a restart, too). Its files
                // are rewritten in place in case the node's tmpfs went away.
                let dir = files::files_dir(&self.state_dir, &run.task.id);
                files::write(&dir, &run.files)?;
                return Ok(());
            }
            // Created to join a sandbox that is gone: make it again.
            self.known().remove(&run.task.id);
            remove_container(&self.docker, &found.id).await?;
        }
        self.create(run, &sandbox).await
    }

    async fn start(&self, task_id: &str) -> Result<Started, ExecError> {
        let id = self.container_id(task_id).await?;
        match self.docker.start_container(&id, None).await {
            Ok(()) => {}
            // 304: already started.
            Err(e) if status(&e) == Some(304) => {}
            Err(e) => return Err(api("start container", &e)),
        }
        let pid = lifecycle::inspect_state(&self.docker, &id).await?.pid();
        Ok(Started { handle: id, pid })
    }

    async fn wait(&self, task_id: &str) -> Result<Exit, ExecError> {
        let id = self.container_id(task_id).await?;
        lifecycle::wait(&self.docker, &id)
            .await
            .map_err(|e| not_found_as(e, task_id))
    }

    async fn stop(
        &self,
        task_id: &str,
        signal: Option<&str>,
        grace: Duration,
    ) -> Result<(), ExecError> {
        let Some(id) = self.find(task_id).await? else {
            return Ok(());
        };
        lifecycle::stop(&self.docker, &id, signal, grace)
            .await
            .or_else(|e| match e {
                // Removed meanwhile: stopped indeed.
                ExecError::NotFound(_) => Ok(()),
                e => Err(e),
            })
    }

    async fn remove(&self, task_id: &str) -> Result<(), ExecError> {
        if let Some(id) = self.find(task_id).await? {
            remove_container(&self.docker, &id).await?;
            tracing::info!(task = task_id, container = %id, "container removed");
        }
        self.known().remove(task_id);
        self.release(task_id).await?;
        files::remove(&self.state_dir, task_id)
    }

    async fn list(&self) -> Result<Vec<EngineTask>, ExecError> {
        let mut tasks = Vec::new();
        let all = self.containers(None).await?;
        let label =
            |c: &ContainerSummary, key: &str| c.labels.as_ref().and_then(|l| l.get(key)).cloned();
        for c in &all {
            let (Some(id), Some(task_id)) = (c.id.clone(), label(c, spec::LABEL_TASK_ID)) else {
                continue;
            };
            let running = c.state == Some(ContainerSummaryStateEnum::RUNNING);
            let (exit, pid) = match lifecycle::inspect_state(&self.docker, &id).await {
                Ok(state) => (
                    (!running && state.finished()).then(|| state.exit()),
                    state.pid(),
                ),
                // Removed between list and inspect: not ours any more.
                Err(ExecError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            tasks.push(EngineTask {
                task_id,
                running,
                exit,
                handle: id,
                pid,
            });
        }
        // A sandbox whose task container was never made (a daemon killed
        // in between): a task that never started, to finish or remove.
        for c in &all {
            if let (Some(id), Some(task_id)) = (c.id.clone(), label(c, sandbox::LABEL_SANDBOX))
                && !tasks.iter().any(|t| t.task_id == task_id)
            {
                tasks.push(EngineTask {
                    task_id,
                    running: false,
                    exit: None,
                    handle: id,
                    pid: None,
                });
            }
        }
        Ok(tasks)
    }

    async fn release(&self, task_id: &str) -> Result<(), ExecError> {
        if let Some(found) = self.find_sandbox(task_id).await? {
            remove_container(&self.docker, &found.id).await?;
        }
        Ok(())
    }

    async fn netns(&self, task_id: &str) -> Option<PathBuf> {
        // The sandbox's namespace; a task that outlived its sandbox (killed
        // by hand) still holds the namespace through its own process.
        let sandbox = self.find_sandbox(task_id).await.ok().flatten();
        if let Some(netns) = sandbox.filter(|s| s.running).and_then(|s| s.netns) {
            return Some(netns);
        }
        let id = self.find(task_id).await.ok().flatten()?;
        let pid = lifecycle::inspect_state(&self.docker, &id)
            .await
            .ok()?
            .pid()?;
        Some(PathBuf::from(format!("/proc/{pid}/ns/net")))
    }

    async fn exec(
        &self,
        task_id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, ExecError> {
        let id = self.container_id(task_id).await?;
        command::exec(&self.docker, &id, cmd, timeout)
            .await
            .map_err(|e| not_found_as(e, task_id))
    }

    async fn logs(&self, task_id: &str, options: LogOptions) -> Result<LogStream, ExecError> {
        let id = self.container_id(task_id).await?;
        Ok(logs::stream(&self.docker, &id, options))
    }
}

/// A task's container as `inspect` shows it.
struct Created {
    id: String,
    running: bool,
    network_mode: Option<String>,
}

/// Removes container `id` with its anonymous volumes, killing it if need
/// be; gone already is fine.
pub async fn remove_container(docker: &Docker, id: &str) -> Result<(), ExecError> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match docker.remove_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(api("remove container", &e)),
    }
}

/// The HTTP status of a Docker API error, when the daemon answered.
pub fn status(e: &DockerError) -> Option<u16> {
    match e {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Whether the daemon said 404 (no such container, image, exec).
pub fn is_not_found(e: &DockerError) -> bool {
    status(e) == Some(404)
}

/// The daemon's own message when there is one (without bollard's
/// wrapping), else the error as bollard shows it.
pub fn docker_message(e: &DockerError) -> String {
    match e {
        DockerError::DockerResponseServerError { message, .. } => message.trim().to_string(),
        other => other.to_string(),
    }
}

/// A failed API call; a 404 is reported as `NotFound` of `what`.
pub fn api(what: &str, e: &DockerError) -> ExecError {
    if is_not_found(e) {
        ExecError::NotFound(what.to_string())
    } else {
        ExecError::Failed(format!("{what}: {}", docker_message(e)))
    }
}

/// Names the task, not the container, in a `NotFound`.
fn not_found_as(e: ExecError, task_id: &str) -> ExecError {
    match e {
        ExecError::NotFound(_) => ExecError::NotFound(task_id.to_string()),
        e => e,
    }
}
