//! What the engine writes into a task's directory for the shim to read,
//! and the small state files the shim writes back. Everything here is on
//! disk so a new daemon (or a new shim) finds it again; none of it holds
//! secret data (that lives on the task's tmpfs only).
//!
//! ```text
//! <state>/tasks/<id>/
//!   config.json   what to run (written by prepare)
//!   netns         the persistent network namespace (bind mount)
//!   files/        tmpfs with the task's secrets and configs
//!   pid.json      the shim and main process (written by the shim at start)
//!   exit.json     how it ended (written by the shim, atomically)
//!   log.json[.N]  the task's output, JSON lines (rotated files .1 newest)
//!   shim.log      the shim's own errors
//! ```

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exec::ExecError;
use crate::volume::VolumeStore;

/// The default PATH when the spec sets none (Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The paths of one task's directory.
#[derive(Debug, Clone)]
pub struct TaskDir(pub PathBuf);

impl TaskDir {
    /// The task's directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }
    /// What to run.
    pub fn config(&self) -> PathBuf {
        self.0.join("config.json")
    }
    /// The network namespace bind mount.
    pub fn netns(&self) -> PathBuf {
        self.0.join("netns")
    }
    /// The tmpfs for secrets and configs.
    pub fn files(&self) -> PathBuf {
        self.0.join("files")
    }
    /// Shim and main process ids.
    pub fn pid(&self) -> PathBuf {
        self.0.join("pid.json")
    }
    /// How the task ended.
    pub fn exit(&self) -> PathBuf {
        self.0.join("exit.json")
    }
    /// The current log file.
    pub fn log(&self) -> PathBuf {
        self.0.join("log.json")
    }
    /// The shim's own stderr.
    pub fn shim_log(&self) -> PathBuf {
        self.0.join("shim.log")
    }
}

/// A read-only bind mount inside the task's mount namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    /// On the task's tmpfs.
    pub source: PathBuf,
    /// Where the task sees it.
    pub target: PathBuf,
}

/// Everything the shim needs to start the task's process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskConfig {
    /// The task id.
    pub task_id: String,
    /// The resolved program (absolute path on the host).
    pub program: PathBuf,
    /// argv, argv[0] as the user wrote it.
    pub argv: Vec<String>,
    /// `KEY=VALUE`, PATH and HOSTNAME included.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: PathBuf,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// UTS host name.
    pub hostname: String,
    /// `cgroup.procs` files the process joins before exec.
    pub cgroup_procs: Vec<PathBuf>,
    /// The task's cgroup directories (for kill and removal).
    pub cgroup_dirs: Vec<PathBuf>,
    /// Where the kernel counts OOM kills (`memory.events` or
    /// `memory.oom_control`), when there is a memory cgroup.
    pub oom_events: Option<PathBuf>,
    /// Secrets and configs to bind inside the task.
    pub binds: Vec<Bind>,
    /// Stop signal name as the spec gives it.
    pub stop_signal: String,
    /// The image the task runs (embedded engine): the shim starts it with
    /// the container runtime from `bundle/config.json`. `None`: a host
    /// command (process engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<TaskImage>,
    /// The image's `HEALTHCHECK`, for a service that gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_healthcheck: Option<crate::image::ImageHealthcheck>,
    /// How the shim keeps the task's output (`--log-driver`, `--log-opt`).
    #[serde(default)]
    pub log: super::logs::LogPolicy,
    /// The volumes the task mounts (embedded engine): in use while the
    /// task exists, so not removed; they outlive it.
    #[serde(default)]
    pub volumes: Vec<String>,
}

/// The image of an image task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskImage {
    /// As the service names it.
    pub reference: String,
    /// The image id (`sha256:` of its config), which `image prune` keeps.
    pub id: String,
}

/// Shim and main process of a started task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidFile {
    /// The shim.
    pub shim_pid: i32,
    /// The task's main process (host pid).
    pub pid: i32,
    /// Its start time in clock ticks (/proc/<pid>/stat), against pid reuse.
    pub start_time: u64,
}

/// How the task ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitFile {
    /// Exit code, 128+signal when signalled.
    pub code: i32,
    /// A short explanation.
    pub message: String,
}

/// Which tasks use which images and volumes: task ids by image id and by
/// volume name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InUse {
    /// Image id (`sha256:...`) → ids of the tasks that run it.
    pub images: HashMap<String, Vec<String>>,
    /// Volume name → ids of the tasks that mount it.
    pub volumes: HashMap<String, Vec<String>>,
}

/// What the tasks under `tasks_dir` (`<state>/process/tasks`) use, read
/// from their configs on disk, running or not (Docker keeps an image or a
/// volume a stopped container uses): `image prune`, `image rm` and
/// `volume rm` answer from it without the engine.
pub fn in_use(tasks_dir: &Path) -> InUse {
    let mut out = InUse::default();
    let Ok(entries) = std::fs::read_dir(tasks_dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let id = entry.file_name().to_string_lossy().into_owned();
        if check_task_id(&id).is_err() {
            continue;
        }
        let Ok(Some(cfg)) = read_json::<TaskConfig>(&TaskDir(entry.path()).config()) else {
            continue;
        };
        if let Some(image) = cfg.image {
            out.images.entry(image.id).or_default().push(id.clone());
        }
        for v in cfg.volumes {
            let tasks = out.volumes.entry(v).or_default();
            if !tasks.contains(&id) {
                tasks.push(id.clone());
            }
        }
    }
    for tasks in out.images.values_mut().chain(out.volumes.values_mut()) {
        tasks.sort();
    }
    out
}

/// The task in `dir`, being removed, lets go of `volumes` (its config's)
/// and of those it took in `store` without a config: they stay (anonymous
/// ones too: Docker removes those only with `--rm`), and one mounted from
/// a device is unmounted when no other task (a sibling dir) uses it.
pub fn release_volumes(store: Option<&VolumeStore>, dir: &TaskDir, volumes: &[String]) {
    let (Some(store), Some(tasks_dir)) = (store, dir.path().parent()) else {
        return;
    };
    let task_id = &*dir.path().file_name().unwrap_or_default().to_string_lossy();
    let users = in_use(tasks_dir).volumes;
    let in_use = |name: &str| users.get(name).cloned().unwrap_or_default();
    let mut names = volumes.to_vec();
    names.extend(store.held_by(task_id));
    names.sort();
    names.dedup();
    for name in &names {
        if let Err(e) = store.release(name, task_id, &in_use) {
            tracing::warn!(task = %task_id, volume = %name, error = %e, "cannot release volume");
        }
    }
}

/// Writes `value` as JSON to `path` atomically (temp file + rename), so a
/// reader never sees half a file even if the writer dies.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let data = serde_json::to_vec(value).map_err(io::Error::other)?;
    std::fs::write(&tmp, data)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Reads a JSON state file; `Ok(None)` when it does not exist.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(data) => serde_json::from_slice(&data)
            .map(Some)
            .map_err(io::Error::other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Task ids become directory names: only plain names are accepted.
pub fn check_task_id(id: &str) -> Result<(), ExecError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(ExecError::Rejected(format!("invalid task id {id:?}")))
    }
}

/// Builds the environment: the spec's `KEY=VALUE`s, PATH when missing,
/// HOSTNAME and HOME like Docker.
pub fn environment(spec_env: &[String], hostname: &str, home: &str) -> Vec<String> {
    let mut env: Vec<String> = spec_env
        .iter()
        .filter(|e| e.contains('='))
        .cloned()
        .collect();
    let has = |env: &[String], key: &str| env.iter().any(|e| e.split('=').next() == Some(key));
    if !has(&env, "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !has(&env, "HOSTNAME") {
        env.push(format!("HOSTNAME={hostname}"));
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={home}"));
    }
    env
}

/// The value of `key` in a `KEY=VALUE` list.
pub fn env_value<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .find_map(|e| e.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// Finds `name` like execvp does, but in the task's PATH, not ours.
pub fn resolve_program(name: &str, path: &str) -> Option<PathBuf> {
    let executable = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return executable(&p).then_some(p);
    }
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| executable(p))
}

/// A resolved `user` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Home directory (for HOME).
    pub home: String,
}

/// Resolves `uid[:gid]` or `name[:group]` against the passwd and group
/// files of the task's filesystem, `whose` ("the host's", "the image's")
/// naming it in errors. Empty = root.
pub fn resolve_user(spec: &str, passwd: &str, group: &str, whose: &str) -> Result<User, ExecError> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Ok(User {
            uid: 0,
            gid: 0,
            home: "/root".into(),
        });
    }
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    // passwd: name:x:uid:gid:gecos:home:shell
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && (f[0] == user || (user.parse::<u32>().is_ok() && f[2] == user)));
    let (uid, mut gid, home) = match (&entry, user.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse().unwrap_or(0),
            f[3].parse().unwrap_or(0),
            f[5].to_string(),
        ),
        (None, Ok(uid)) => (uid, uid, "/".to_string()),
        (None, Err(_)) => {
            return Err(ExecError::Rejected(format!(
                "user {user:?} is not in {whose} /etc/passwd: give a numeric uid[:gid] or an existing user"
            )));
        }
    };
    if let Some(g) = grp {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    ExecError::Rejected(format!(
                        "group {g:?} is not in {whose} /etc/group: give a numeric gid or an existing group"
                    ))
                })?,
        };
    }
    Ok(User { uid, gid, home })
}

/// The start time of `pid` in clock ticks since boot, from
/// /proc/<pid>/stat, and whether it is a zombie. `None` when it is gone.
pub fn proc_start_time(pid: i32) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parens: fields start after the
    // last ')'. Field 3 is the state, field 22 the start time.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let zombie = matches!(fields.first(), Some(&"Z") | Some(&"X"));
    Some((fields.get(19)?.parse().ok()?, zombie))
}

/// Whether the process recorded as (`pid`, `start_time`) still runs.
pub fn alive(pid: i32, start_time: u64) -> bool {
    pid > 0 && matches!(proc_start_time(pid), Some((t, false)) if t == start_time)
}

/// `OsStr` helper for nix paths.
pub fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www:/var/www:/usr/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:\n";

    #[test]
    fn users_resolve_like_docker() {
        let u = resolve_user("", PASSWD, GROUP, "the host's").unwrap();
        assert_eq!((u.uid, u.gid), (0, 0));
        let u = resolve_user("www-data", PASSWD, GROUP, "the host's").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (33, 33, "/var/www"));
        let u = resolve_user("www-data:staff", PASSWD, GROUP, "the host's").unwrap();
        assert_eq!((u.uid, u.gid), (33, 50));
        let u = resolve_user("1000:2000", PASSWD, GROUP, "the host's").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 2000));
        let u = resolve_user("33", PASSWD, GROUP, "the host's").unwrap();
        assert_eq!((u.uid, u.gid), (33, 33));
        assert!(
            resolve_user("nobody-here", PASSWD, GROUP, "the host's")
                .unwrap_err()
                .is_rejection()
        );
        assert!(
            resolve_user("0:nogroup", PASSWD, GROUP, "the host's")
                .unwrap_err()
                .is_rejection()
        );
    }

    #[test]
    fn environment_gets_defaults_once() {
        let env = environment(
            &["A=1".into(), "PATH=/x".into(), "junk".into()],
            "h1",
            "/root",
        );
        assert_eq!(env, vec!["A=1", "PATH=/x", "HOSTNAME=h1", "HOME=/root"]);
        assert_eq!(env_value(&env, "PATH"), Some("/x"));
        let env = environment(&[], "h", "/");
        assert_eq!(env_value(&env, "PATH"), Some(DEFAULT_PATH));
    }

    #[test]
    fn programs_resolve_in_the_task_path() {
        assert_eq!(
            resolve_program("sh", "/nonexistent:/bin"),
            Some("/bin/sh".into())
        );
        assert_eq!(resolve_program("/bin/sh", ""), Some("/bin/sh".into()));
        assert_eq!(resolve_program("sh", "/nonexistent"), None);
        assert_eq!(resolve_program("/etc/passwd", ""), None);
    }

    #[test]
    fn task_ids_are_plain_names() {
        assert!(check_task_id("abc123XYZ").is_ok());
        for bad in ["", "../x", "a/b", ".hidden"] {
            assert!(check_task_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn in_use_reads_the_task_configs() {
        let dir = tempfile::tempdir().unwrap();
        let task = |id: &str, image: &str, volumes: &[&str]| {
            let d = TaskDir(dir.path().join(id));
            std::fs::create_dir_all(d.path()).unwrap();
            let cfg = TaskConfig {
                task_id: id.into(),
                image: Some(TaskImage {
                    reference: "busybox".into(),
                    id: image.into(),
                }),
                volumes: volumes.iter().map(|v| v.to_string()).collect(),
                ..Default::default()
            };
            write_json(&d.config(), &cfg).unwrap();
        };
        task("t2", "sha256:a", &["db", "cache"]);
        task("t1", "sha256:a", &["db"]);
        task("t3", "sha256:b", &[]);
        std::fs::create_dir_all(dir.path().join("half-prepared")).unwrap();
        let used = in_use(dir.path());
        assert_eq!(used.images["sha256:a"], ["t1", "t2"]);
        assert_eq!(used.images["sha256:b"], ["t3"]);
        assert_eq!(used.volumes["db"], ["t1", "t2"]);
        assert_eq!(used.volumes["cache"], ["t2"]);
        assert_eq!(used.volumes.len(), 2);
        assert_eq!(in_use(&dir.path().join("none")), InUse::default());
        // Old configs (before volumes) still read.
        let old = serde_json::json!({"task_id": "t4", "program": "/bin/sh", "argv": [],
            "env": [], "cwd": "/", "uid": 0, "gid": 0, "hostname": "h",
            "cgroup_procs": [], "cgroup_dirs": [], "oom_events": null, "binds": [],
            "stop_signal": ""});
        let cfg: TaskConfig = serde_json::from_value(old).unwrap();
        assert!(cfg.volumes.is_empty());
    }

    #[test]
    fn own_start_time_is_readable() {
        let me = std::process::id() as i32;
        let (t, zombie) = proc_start_time(me).unwrap();
        assert!(!zombie);
        assert!(alive(me, t));
        assert!(!alive(me, t + 1));
    }
}
