//! The built-in process engine: a task's command runs from the host's
//! filesystem in its own network, pid, mount, uts and ipc namespaces and
//! its own cgroup, supervised by a per-task shim that outlives the daemon.
//!
//! - [`config`]: the task directory's files and the spec → config rules.
//! - [`shim`]: the hidden `__task-shim` / `__task-exec` subcommands.
//! - [`namespaces`], [`cgroup`], [`files`], [`logs`]: one job each.
//!
//! All state is on disk under `<state>/tasks/<id>`, so a new engine on the
//! same state dir adopts running tasks ([`Engine::list`], then `wait`,
//! `stop`, `logs` as usual).

pub mod cgroup;
pub mod config;
pub mod files;
pub mod logs;
pub mod namespaces;
pub mod shim;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use std::sync::Arc;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use shoal_proto::objects::ContainerSpec;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use self::cgroup::{Cgroups, Limits};
use self::config::{
    ExitFile, PidFile, TaskConfig, TaskDir, alive, check_task_id, env_value, environment,
    read_json, resolve_program, resolve_user, write_json,
};
pub use self::config::{InUse, in_use};
use self::shim::{EXEC_ARG, SHIM_ARG};
use super::oci;
use super::signal::parse_signal;
use super::{
    Engine, EngineTask, ExecError, ExecOutput, Exit, LogOptions, LogStream, Started, TaskRun,
};
use crate::engine_choice::{EngineInfo, EngineKind};
use crate::image::ImageStore;

pub use self::shim::hidden_main;

/// How long `start` waits for the shim to say the task runs.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stop waits for the task's end after SIGKILL.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// How often `wait` looks for the exit file.
const WAIT_POLL: Duration = Duration::from_millis(50);
/// Exec output kept for health check reports.
const MAX_EXEC_OUTPUT: usize = 4096;

/// The process engine.
pub struct ProcessEngine {
    tasks: PathBuf,
    cgroups: Cgroups,
    shim_program: PathBuf,
    /// Starts of one task are serialized (a second start answers what the
    /// first started); different tasks start in parallel.
    starting: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Set for the embedded engine: tasks run images from this store.
    images: Option<Arc<ImageStore>>,
    /// The node's volumes, for the embedded engine's mounts.
    volumes: Option<Arc<crate::volume::VolumeStore>>,
}

impl ProcessEngine {
    /// Tasks live under `<state_dir>/tasks`; their cgroups under
    /// `<cgroup_root>/shoal/<group>` (`group`: the node id).
    pub fn new(state_dir: PathBuf, cgroup_root: PathBuf, group: &str) -> ProcessEngine {
        ProcessEngine {
            tasks: state_dir.join("tasks"),
            cgroups: Cgroups::new(cgroup_root, group),
            // The running binary itself, even if replaced on disk since.
            shim_program: PathBuf::from("/proc/self/exe"),
            starting: Default::default(),
            images: None,
            volumes: None,
        }
    }

    /// The embedded engine: tasks run the images their services name,
    /// pulled into `images`, each in its own root filesystem and Docker's
    /// default confinement (see [`crate::exec::oci`]).
    pub fn with_images(mut self, images: Arc<ImageStore>) -> ProcessEngine {
        self.images = Some(images);
        self
    }

    /// The embedded engine's volumes ([`crate::exec::oci::mounts`]).
    pub fn with_volumes(mut self, volumes: Arc<crate::volume::VolumeStore>) -> ProcessEngine {
        self.volumes = Some(volumes);
        self
    }

    /// Runs shims from `program` (which must call [`hidden_main`]) instead
    /// of re-executing the current binary; for tests, whose binary is the
    /// test harness.
    pub fn with_shim_program(mut self, program: PathBuf) -> ProcessEngine {
        self.shim_program = program;
        self
    }

    fn dir(&self, task_id: &str) -> Result<TaskDir, ExecError> {
        check_task_id(task_id).map_err(|_| ExecError::NotFound(task_id.to_string()))?;
        Ok(TaskDir(self.tasks.join(task_id)))
    }

    /// The task's directory and config, or `NotFound`.
    fn known(&self, task_id: &str) -> Result<(TaskDir, TaskConfig), ExecError> {
        let dir = self.dir(task_id)?;
        match read_json::<TaskConfig>(&dir.config()) {
            Ok(Some(cfg)) => Ok((dir, cfg)),
            Ok(None) => Err(ExecError::NotFound(task_id.to_string())),
            Err(e) => Err(failed(&dir.config(), e)),
        }
    }

    /// Builds the config of a task from its spec, rejecting what cannot run.
    fn config(&self, run: &TaskRun) -> Result<TaskConfig, ExecError> {
        let task = &run.task;
        let spec: ContainerSpec = task
            .spec
            .as_ref()
            .and_then(|s| s.container.clone())
            .unwrap_or_default();
        let argv: Vec<String> = spec.command.iter().chain(&spec.args).cloned().collect();
        if argv.is_empty() {
            return Err(ExecError::Rejected(
                "the process engine runs a task's command from the host: this service has no command; give one, e.g. shoal service create --name web busybox httpd -f -p 80".into(),
            ));
        }
        let user = resolve_user(
            &spec.user,
            &std::fs::read_to_string("/etc/passwd").unwrap_or_default(),
            &std::fs::read_to_string("/etc/group").unwrap_or_default(),
            "the host's",
        )?;
        let hostname = if spec.hostname.is_empty() {
            task.id.chars().take(12).collect()
        } else {
            spec.hostname.clone()
        };
        let env = environment(&spec.env, &hostname, &user.home);
        let path = env_value(&env, "PATH").unwrap_or_default();
        let program = resolve_program(&argv[0], path).ok_or_else(|| {
            ExecError::Rejected(format!(
                "the process engine runs a task's command from the host: {:?} is not an executable in the host's PATH ({path}); install it on the node or give its full path",
                argv[0]
            ))
        })?;
        let cwd = PathBuf::from(if spec.dir.is_empty() { "/" } else { &spec.dir });
        if !cwd.is_dir() {
            return Err(ExecError::Rejected(format!(
                "working dir {} does not exist on the host (the process engine runs from the host's filesystem)",
                cwd.display()
            )));
        }
        parse_signal(Some(&spec.stop_signal))?;
        Ok(TaskConfig {
            task_id: task.id.clone(),
            program,
            argv,
            env,
            cwd,
            uid: user.uid,
            gid: user.gid,
            hostname,
            cgroup_procs: Vec::new(),
            cgroup_dirs: Vec::new(),
            oom_events: self.cgroups.oom_events(&task.id),
            binds: Vec::new(),
            stop_signal: spec.stop_signal,
            image: None,
            image_healthcheck: None,
            log: logs::LogPolicy::of(task.spec.as_ref().and_then(|s| s.log_driver.as_ref()))?,
            volumes: Vec::new(),
        })
    }

    /// Waits for the exit file; `None` on timeout.
    async fn wait_exit(&self, dir: &TaskDir, timeout: Duration) -> Result<Option<Exit>, ExecError> {
        // None: too far away to say, so never.
        let deadline = Instant::now().checked_add(timeout);
        let mut dead_since: Option<Instant> = None;
        loop {
            if let Some(exit) =
                read_json::<ExitFile>(&dir.exit()).map_err(|e| failed(&dir.exit(), e))?
            {
                return Ok(Some(Exit {
                    code: exit.code,
                    message: exit.message,
                }));
            }
            if let Some(pid) =
                read_json::<PidFile>(&dir.pid()).map_err(|e| failed(&dir.pid(), e))?
            {
                // The shim writes the exit file right after reaping; a task
                // long dead without one lost its shim.
                if alive(pid.pid, pid.start_time) || pid_exists(pid.shim_pid) {
                    dead_since = None;
                } else if dead_since.get_or_insert_with(Instant::now).elapsed()
                    > Duration::from_secs(2)
                {
                    return Ok(Some(Exit {
                        code: 255,
                        message: "the task's shim died; its exit code is unknown".into(),
                    }));
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    async fn kill_cgroup(dirs: Vec<PathBuf>) {
        if dirs.is_empty() {
            return;
        }
        let _ =
            tokio::task::spawn_blocking(move || cgroup::kill_all(&dirs, Duration::from_secs(5)))
                .await;
    }
}

fn failed(path: &Path, e: impl std::fmt::Display) -> ExecError {
    ExecError::Failed(format!("{}: {e}", path.display()))
}

fn pid_exists(pid: i32) -> bool {
    pid > 0 && matches!(config::proc_start_time(pid), Some((_, false)))
}

/// Sets up the sandbox of a host-command task (blocking: mounts, files).
fn build_sandbox(
    dir: &TaskDir,
    cgroups: &Cgroups,
    run: &TaskRun,
    mut cfg: TaskConfig,
) -> Result<TaskConfig, ExecError> {
    let limits = limits(run, 0);
    cfg.cgroup_dirs = base_sandbox(dir, cgroups, &cfg.task_id, &run.files, limits)?;
    let targets: Vec<PathBuf> = run.files.iter().map(|f| f.path.clone()).collect();
    cfg.binds = files::plan_binds(&dir.files(), &targets, Path::new("/"))?;
    cfg.cgroup_procs = cfg
        .cgroup_dirs
        .iter()
        .map(|d| d.join("cgroup.procs"))
        .collect();
    Ok(cfg)
}

/// What every task of this engine has, image or not: its directory, its
/// network namespace, its files on tmpfs and its cgroup (whose dirs it
/// returns). Blocking.
pub(crate) fn base_sandbox(
    dir: &TaskDir,
    cgroups: &Cgroups,
    task_id: &str,
    task_files: &[super::TaskFile],
    limits: Limits,
) -> Result<Vec<PathBuf>, ExecError> {
    let fail = |what: &str, e: std::io::Error| ExecError::Failed(format!("{what}: {e}"));
    std::fs::create_dir_all(dir.path()).map_err(|e| fail("cannot create the task dir", e))?;
    namespaces::create_netns(&dir.netns())
        .map_err(|e| fail("cannot create the task's network namespace", e))?;
    files::mount_tmpfs(&dir.files()).map_err(|e| fail("cannot mount the task's tmpfs", e))?;
    files::write_files(&dir.files(), task_files)?;
    cgroups
        .create(task_id, limits)
        .map_err(|e| fail("cannot create the task's cgroup", e))
}

/// The task's resource limits, with `default_pids` when the spec sets no
/// process limit.
pub(crate) fn limits(run: &TaskRun, default_pids: i64) -> Limits {
    let l = run
        .task
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.limits.as_ref());
    Limits {
        memory_bytes: l.map_or(0, |l| l.memory_bytes),
        nano_cpus: l.map_or(0, |l| l.nano_cpus),
        pids: l.map(|l| l.pids).filter(|&p| p > 0).unwrap_or(default_pids),
    }
}

impl ProcessEngine {
    /// Starts the prepared task: the shim, once (see `Engine::start`).
    async fn start_once(&self, task_id: &str) -> Result<Started, ExecError> {
        let (dir, _) = self.known(task_id)?;
        let started = || {
            let pid = read_json::<PidFile>(&dir.pid())
                .ok()
                .flatten()
                .map(|p| p.pid);
            Started {
                handle: pid.map_or_else(String::new, |p| p.to_string()),
                pid,
            }
        };
        if dir.pid().exists() {
            return Ok(started());
        }
        let shim_log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.shim_log())
            .map_err(|e| failed(&dir.shim_log(), e))?;
        let mut child = tokio::process::Command::new(&self.shim_program)
            .arg(SHIM_ARG)
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(shim_log)
            .process_group(0)
            .spawn()
            .map_err(|e| {
                ExecError::Failed(format!(
                    "cannot run the task shim {}: {e}",
                    self.shim_program.display()
                ))
            })?;
        let stdout = child.stdout.take();
        let answer = async {
            let mut line = String::new();
            if let Some(out) = stdout {
                BufReader::new(out).read_line(&mut line).await?;
            }
            Ok::<_, std::io::Error>(line)
        };
        let line = tokio::time::timeout(START_TIMEOUT, answer).await;
        // The first shim process exits at once (its fork carries on).
        let _ = child.wait().await;
        let line = match line {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                return Err(ExecError::Failed(format!(
                    "cannot hear from the task shim: {e}"
                )));
            }
            Err(_) => {
                return Err(ExecError::Failed(
                    "the task shim did not answer in 30s".into(),
                ));
            }
        };
        match line.trim_end().strip_prefix("error: ") {
            None if line.trim_end() == "ok" => Ok(started()),
            Some(why) => Err(ExecError::Failed(why.to_string())),
            None => Err(ExecError::Failed(format!(
                "the task shim exited without starting the task; see {}",
                dir.shim_log().display()
            ))),
        }
    }
}

#[tonic::async_trait]
impl Engine for ProcessEngine {
    async fn image_healthcheck(&self, task_id: &str) -> Option<shoal_proto::objects::HealthConfig> {
        let (_, cfg) = self.known(task_id).ok()?;
        let h = cfg.image_healthcheck?;
        let duration =
            |d: Option<Duration>| d.and_then(|d| prost_types::Duration::try_from(d).ok());
        Some(shoal_proto::objects::HealthConfig {
            test: h.test,
            interval: duration(h.interval),
            timeout: duration(h.timeout),
            retries: h.retries,
            start_period: duration(h.start_period),
        })
    }

    async fn netns(&self, task_id: &str) -> Option<PathBuf> {
        self.dir(task_id)
            .ok()
            .map(|d| d.netns())
            .filter(|p| p.exists())
    }

    fn info(&self) -> EngineInfo {
        EngineInfo {
            kind: if self.images.is_some() {
                EngineKind::Embedded
            } else {
                EngineKind::Process
            },
            version: shoal_proto::build_info::VERSION.to_string(),
        }
    }

    async fn prepare(&self, run: &TaskRun) -> Result<(), ExecError> {
        check_task_id(&run.task.id)?;
        let dir = self.dir(&run.task.id)?;
        if dir.config().exists() {
            return Ok(());
        }
        let cfg = if let Some(images) = &self.images {
            let (cgroups, volumes) = (self.cgroups.clone(), self.volumes.clone());
            oci::prepare::image_task(images, volumes, cgroups, &dir, run).await?
        } else {
            let cfg = self.config(run)?;
            let (run, cgroups, sandbox_dir) = (run.clone(), self.cgroups.clone(), dir.clone());
            tokio::task::spawn_blocking(move || build_sandbox(&sandbox_dir, &cgroups, &run, cfg))
                .await
                .map_err(|e| ExecError::Failed(format!("prepare panicked: {e}")))??
        };
        // Written last: its presence means "prepared".
        write_json(&dir.config(), &cfg).map_err(|e| failed(&dir.config(), e))
    }

    async fn start(&self, task_id: &str) -> Result<Started, ExecError> {
        let lock = self
            .starting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(task_id.to_string())
            .or_default()
            .clone();
        let started = {
            let _this_task = lock.lock().await;
            self.start_once(task_id).await
        };
        let mut starting = self.starting.lock().unwrap_or_else(|e| e.into_inner());
        // The map's and ours: nobody else waits to start this task.
        if Arc::strong_count(&lock) == 2 {
            starting.remove(task_id);
        }
        started
    }

    async fn wait(&self, task_id: &str) -> Result<Exit, ExecError> {
        let (dir, _) = self.known(task_id)?;
        loop {
            if let Some(exit) = self.wait_exit(&dir, Duration::from_secs(3600)).await? {
                return Ok(exit);
            }
        }
    }

    async fn stop(
        &self,
        task_id: &str,
        signal: Option<&str>,
        grace: Duration,
    ) -> Result<(), ExecError> {
        let (dir, cfg) = match self.known(task_id) {
            Ok(k) => k,
            Err(ExecError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let Some(pid) = read_json::<PidFile>(&dir.pid()).map_err(|e| failed(&dir.pid(), e))? else {
            return Ok(());
        };
        if !dir.exit().exists() {
            let sig = parse_signal(signal.or(Some(&cfg.stop_signal))).unwrap_or(Signal::SIGTERM);
            if alive(pid.pid, pid.start_time) {
                let _ = kill(Pid::from_raw(pid.pid), sig);
            }
            if self.wait_exit(&dir, grace).await?.is_none() {
                tracing::info!(
                    task = task_id,
                    ?grace,
                    "task did not stop in its grace period, killing it"
                );
                Self::kill_cgroup(cfg.cgroup_dirs.clone()).await;
                if alive(pid.pid, pid.start_time) {
                    let _ = kill(Pid::from_raw(pid.pid), Signal::SIGKILL);
                }
                if self.wait_exit(&dir, KILL_TIMEOUT).await?.is_none() {
                    return Err(ExecError::Failed(format!(
                        "task {task_id} did not exit {}s after SIGKILL",
                        KILL_TIMEOUT.as_secs()
                    )));
                }
            }
        }
        // Exec'd processes outlive nothing: the cgroup ends empty.
        Self::kill_cgroup(cfg.cgroup_dirs).await;
        Ok(())
    }

    async fn remove(&self, task_id: &str) -> Result<(), ExecError> {
        let dir = self.dir(task_id)?;
        if !dir.path().exists() {
            return Ok(());
        }
        let (cgroup_dirs, volumes) = match self.known(task_id) {
            Ok((_, cfg)) => {
                self.stop(task_id, Some("SIGKILL"), Duration::ZERO).await?;
                (cfg.cgroup_dirs, cfg.volumes)
            }
            // Half-prepared: compute where its cgroup would be.
            Err(_) => (self.cgroups.task_dirs(task_id), Vec::new()),
        };
        let store = self.volumes.clone();
        // A container runtime also joins the hierarchies the engine does
        // not limit; they all go.
        let all_dirs = self.cgroups.existing_dirs(task_id);
        tokio::task::spawn_blocking(move || -> Result<(), ExecError> {
            cgroup::kill_all(&cgroup_dirs, Duration::from_secs(5));
            let rootfs = oci::rootfs::Rootfs::new(dir.path());
            rootfs.unmount().map_err(|e| failed(&rootfs.root(), e))?;
            files::unmount_tmpfs(&dir.files()).map_err(|e| failed(&dir.files(), e))?;
            namespaces::unmount(&dir.netns()).map_err(|e| failed(&dir.netns(), e))?;
            cgroup::remove(&all_dirs)
                .map_err(|e| ExecError::Failed(format!("cannot remove the task's cgroup: {e}")))?;
            // The node's group goes with its last task (rmdir fails while
            // another task's cgroup is in it), so no empty dirs pile up.
            for group in all_dirs.iter().filter_map(|d| d.parent()) {
                let _ = std::fs::remove_dir(group);
            }
            config::release_volumes(store.as_deref(), &dir, &volumes);
            std::fs::remove_dir_all(dir.path()).map_err(|e| failed(dir.path(), e))
        })
        .await
        .map_err(|e| ExecError::Failed(format!("remove panicked: {e}")))?
    }

    async fn list(&self) -> Result<Vec<EngineTask>, ExecError> {
        let entries = match std::fs::read_dir(&self.tasks) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(failed(&self.tasks, e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            let Ok((dir, _)) = self.known(&id) else {
                continue;
            };
            let pid = read_json::<PidFile>(&dir.pid()).ok().flatten();
            let exit = read_json::<ExitFile>(&dir.exit())
                .ok()
                .flatten()
                .map(|e| Exit {
                    code: e.code,
                    message: e.message,
                });
            let running = exit.is_none() && pid.is_some_and(|p| alive(p.pid, p.start_time));
            out.push(EngineTask {
                task_id: id,
                running,
                exit,
                handle: pid.map_or_else(String::new, |p| p.pid.to_string()),
                pid: pid.map(|p| p.pid),
            });
        }
        out.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        Ok(out)
    }

    async fn exec(
        &self,
        task_id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, ExecError> {
        let (dir, _) = self.known(task_id)?;
        if cmd.is_empty() {
            return Err(ExecError::Failed("exec needs a command".into()));
        }
        let child = tokio::process::Command::new(&self.shim_program)
            .arg(EXEC_ARG)
            .arg(dir.path())
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ExecError::Failed(format!("cannot run exec in task {task_id}: {e}")))?;
        let pgid = child.id().map(|p| Pid::from_raw(p as i32));
        match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => {
                let mut output = out.stdout;
                output.extend_from_slice(&out.stderr);
                output.truncate(MAX_EXEC_OUTPUT);
                let code = out.status.code().unwrap_or(255);
                Ok(ExecOutput {
                    code,
                    output: String::from_utf8_lossy(&output).into_owned(),
                })
            }
            Ok(Err(e)) => Err(ExecError::Failed(format!("exec in task {task_id}: {e}"))),
            Err(_) => {
                // The command runs in the helper's process group, inside
                // the task's pid namespace: kill the whole group.
                if let Some(pgid) = pgid {
                    let _ = killpg(pgid, Signal::SIGKILL);
                }
                Err(ExecError::Failed(format!(
                    "command timed out after {}s",
                    timeout.as_secs_f64()
                )))
            }
        }
    }

    async fn logs(&self, task_id: &str, options: LogOptions) -> Result<LogStream, ExecError> {
        let (dir, _) = self.known(task_id)?;
        Ok(logs::stream(dir.log(), dir.exit(), options))
    }
}
