//! The process engine for real: namespaces, cgroups, tmpfs, the shim.
//! Needs root (as on the build machine). The shim is the worker's tiny
//! `shoal-task-shim` binary, since this test's own binary is the harness.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use shoal_proto::objects::{ContainerSpec, ResourceRequirements, Resources, Task, TaskSpec};
use shoal_worker::exec::process::config::{PidFile, TaskConfig, read_json};
use shoal_worker::exec::process::{ProcessEngine, cgroup, namespaces};
use shoal_worker::exec::{Engine, ExecError, LogOptions, TaskFile, TaskRun};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// A state dir and cgroup group of one test, cleaned up even when the test
/// fails: every process killed, mounts detached, cgroups removed.
struct Env {
    group: String,
    state: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        static N: AtomicUsize = AtomicUsize::new(0);
        Env {
            group: format!(
                "test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ),
            state: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn engine(&self) -> ProcessEngine {
        ProcessEngine::new(
            self.state.path().to_path_buf(),
            CGROUP_ROOT.into(),
            &self.group,
        )
        .with_shim_program(shim_program())
    }

    fn task_dir(&self, id: &str) -> PathBuf {
        self.state.path().join("tasks").join(id)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let tasks = self.state.path().join("tasks");
        for entry in std::fs::read_dir(&tasks).into_iter().flatten().flatten() {
            let dir = entry.path();
            if let Ok(Some(pid)) = read_json::<PidFile>(&dir.join("pid.json")) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            if let Ok(Some(cfg)) = read_json::<TaskConfig>(&dir.join("config.json")) {
                cgroup::kill_all(&cfg.cgroup_dirs, Duration::from_secs(5));
                let _ = cgroup::remove(&cfg.cgroup_dirs);
            }
            let _ = namespaces::unmount(&dir.join("files"));
            let _ = namespaces::unmount(&dir.join("netns"));
        }
        for hierarchy in ["", "memory", "cpu", "pids"] {
            let _ = std::fs::remove_dir(
                Path::new(CGROUP_ROOT)
                    .join(hierarchy)
                    .join("shoal")
                    .join(&self.group),
            );
        }
    }
}

/// The shim: `SHOAL_TEST_SHIM` (e.g. a built `shoal`, to check its hook),
/// else the worker's own shim binary.
fn shim_program() -> PathBuf {
    std::env::var_os("SHOAL_TEST_SHIM")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_shoal-task-shim").into())
}

fn task(id: &str, script: &str) -> TaskRun {
    TaskRun {
        task: Task {
            id: id.into(),
            spec: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: "busybox".into(),
                    command: vec!["/bin/sh".into(), "-c".into()],
                    args: vec![script.into()],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        files: vec![],
    }
}

async fn log_text(engine: &ProcessEngine, id: &str, options: LogOptions) -> String {
    let lines: Vec<_> = engine
        .logs(id, options)
        .await
        .expect("logs")
        .collect()
        .await;
    lines
        .into_iter()
        .map(|l| String::from_utf8(l.expect("line").data).expect("utf8"))
        .collect()
}

async fn wait_for_log(engine: &ProcessEngine, id: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log_text(engine, id, LogOptions::default())
        .await
        .contains(needle)
    {
        assert!(Instant::now() < deadline, "{needle:?} never logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Tasks start side by side (no engine-wide lock), and two starts of one
/// task at once start it once and answer the same process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_start_in_parallel_and_a_task_starts_once() {
    let env = Env::new();
    let e = std::sync::Arc::new(env.engine());
    let ids: Vec<String> = (0..8).map(|i| format!("par{i}")).collect();
    for id in &ids {
        e.prepare(&task(id, "sleep 30")).await.unwrap();
    }
    let mut starts = tokio::task::JoinSet::new();
    for id in ids.iter().chain(ids.iter()) {
        let (e, id) = (e.clone(), id.clone());
        starts.spawn(async move { (id.clone(), e.start(&id).await.unwrap()) });
    }
    let mut pids: std::collections::HashMap<String, Vec<i32>> = Default::default();
    while let Some(done) = starts.join_next().await {
        let (id, started) = done.unwrap();
        pids.entry(id)
            .or_default()
            .push(started.pid.expect("a pid"));
    }
    for (id, p) in &pids {
        assert_eq!(p.len(), 2, "{id}");
        assert_eq!(p[0], p[1], "{id} started twice: {p:?}");
    }
    let listed = e.list().await.unwrap();
    assert_eq!(listed.len(), ids.len());
    assert!(listed.iter().all(|t| t.running), "{listed:?}");
    for id in &ids {
        e.stop(id, None, Duration::from_secs(1)).await.unwrap();
        e.remove(id).await.unwrap();
    }
}

#[tokio::test]
async fn exit_code_and_logs_with_tail() {
    let env = Env::new();
    let e = env.engine();
    e.prepare(&task(
        "exit3",
        "echo one; echo two >&2; sleep 0.2; echo three; exit 3",
    ))
    .await
    .unwrap();
    e.start("exit3").await.unwrap();
    e.start("exit3").await.unwrap(); // a no-op
    let exit = e.wait("exit3").await.unwrap();
    assert_eq!(exit.code, 3, "{exit:?}");
    // stdout and stderr are separate pipes: order only within each.
    let all = log_text(&e, "exit3", LogOptions::default()).await;
    let mut lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.last(), Some(&"three"));
    lines.sort_unstable();
    assert_eq!(lines, vec!["one", "three", "two"]);
    let stderr: Vec<_> = e
        .logs("exit3", LogOptions::default())
        .await
        .unwrap()
        .collect()
        .await;
    let stderr: Vec<_> = stderr
        .into_iter()
        .map(|l| l.unwrap())
        .filter(|l| l.source == shoal_worker::exec::LogSource::Stderr)
        .collect();
    assert_eq!(stderr.len(), 1);
    assert_eq!(stderr[0].data, b"two\n");
    let tail = LogOptions {
        tail: Some(1),
        ..Default::default()
    };
    assert_eq!(log_text(&e, "exit3", tail).await, "three\n");
    // Following an exited task ends once it is drained.
    let follow = LogOptions {
        follow: true,
        ..Default::default()
    };
    let all = tokio::time::timeout(Duration::from_secs(5), log_text(&e, "exit3", follow));
    assert_eq!(all.await.unwrap().lines().count(), 3);
    let listed = e.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].running);
    assert_eq!(listed[0].exit.as_ref().map(|x| x.code), Some(3));
    e.remove("exit3").await.unwrap();
    assert!(!env.task_dir("exit3").exists());
    assert!(e.list().await.unwrap().is_empty());
    e.remove("exit3").await.unwrap();
}

#[tokio::test]
async fn no_command_or_missing_program_is_rejected() {
    let env = Env::new();
    let e = env.engine();
    let mut run = task("nocmd", "");
    run.task.spec.as_mut().unwrap().container = Some(ContainerSpec {
        image: "nginx".into(),
        ..Default::default()
    });
    let err = e.prepare(&run).await.unwrap_err();
    assert!(err.is_rejection());
    assert!(err.to_string().contains("has no command"), "{err}");
    let mut run = task("missing", "");
    run.task
        .spec
        .as_mut()
        .unwrap()
        .container
        .as_mut()
        .unwrap()
        .command = vec!["no-such-program-here".into()];
    assert!(e.prepare(&run).await.unwrap_err().is_rejection());
    assert!(matches!(
        e.start("never").await,
        Err(ExecError::NotFound(_))
    ));
}

#[tokio::test]
async fn stop_escalates_to_sigkill_after_grace() {
    let env = Env::new();
    let e = env.engine();
    // PID 1 of its namespace, and TERM trapped to nothing: only KILL works.
    e.prepare(&task(
        "stubborn",
        "trap '' TERM; echo ready; while :; do sleep 0.1; done",
    ))
    .await
    .unwrap();
    e.start("stubborn").await.unwrap();
    wait_for_log(&e, "stubborn", "ready").await;
    let t = Instant::now();
    e.stop("stubborn", None, Duration::from_millis(800))
        .await
        .unwrap();
    assert!(t.elapsed() >= Duration::from_millis(800));
    assert_eq!(e.wait("stubborn").await.unwrap().code, 137);
    // A task that handles TERM exits with its own code, at once.
    e.prepare(&task(
        "polite",
        "trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done",
    ))
    .await
    .unwrap();
    e.start("polite").await.unwrap();
    wait_for_log(&e, "polite", "ready").await;
    let t = Instant::now();
    e.stop("polite", Some("SIGTERM"), Duration::from_secs(10))
        .await
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(e.wait("polite").await.unwrap().code, 7);
    e.remove("stubborn").await.unwrap();
    e.remove("polite").await.unwrap();
}

#[tokio::test]
async fn limits_are_written_to_the_cgroup() {
    let env = Env::new();
    let e = env.engine();
    let mut run = task("limited", "sleep 30");
    run.task.spec.as_mut().unwrap().resources = Some(ResourceRequirements {
        limits: Some(Resources {
            nano_cpus: 500_000_000,
            memory_bytes: 64 << 20,
            pids: 0,
        }),
        reservations: None,
    });
    e.prepare(&run).await.unwrap();
    e.start("limited").await.unwrap();
    let cfg: TaskConfig = read_json(&env.task_dir("limited").join("config.json"))
        .unwrap()
        .unwrap();
    let v2 = Path::new(CGROUP_ROOT).join("cgroup.controllers").exists();
    let read = |p: PathBuf| std::fs::read_to_string(p).unwrap().trim().to_string();
    let group = Path::new("shoal").join(&env.group).join("limited");
    if v2 {
        let dir = Path::new(CGROUP_ROOT).join(&group);
        assert_eq!(read(dir.join("memory.max")), (64u64 << 20).to_string());
        assert_eq!(read(dir.join("cpu.max")), "50000 100000");
    } else {
        let mem = Path::new(CGROUP_ROOT).join("memory").join(&group);
        assert_eq!(
            read(mem.join("memory.limit_in_bytes")),
            (64u64 << 20).to_string()
        );
        let cpu = Path::new(CGROUP_ROOT).join("cpu").join(&group);
        assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "50000");
    }
    // The main process joined it.
    let pid: PidFile = read_json(&env.task_dir("limited").join("pid.json"))
        .unwrap()
        .unwrap();
    assert!(cgroup::pids(&cfg.cgroup_dirs).contains(&pid.pid));
    e.remove("limited").await.unwrap();
    assert!(cfg.cgroup_dirs.iter().all(|d| !d.exists()));
}

#[tokio::test]
async fn secrets_hostname_namespaces_and_exec() {
    let env = Env::new();
    let e = env.engine();
    let mut run = task(
        "abcdef0123456789",
        "cat /run/secrets/x; echo; echo pid=$$; cat /proc/sys/kernel/hostname; echo started; sleep 30",
    );
    run.files = vec![TaskFile {
        path: "/run/secrets/x".into(),
        data: b"s3cret-value".to_vec(),
        uid: 0,
        gid: 0,
        mode: 0o400,
        secret: true,
    }];
    e.prepare(&run).await.unwrap();
    e.prepare(&run).await.unwrap(); // idempotent
    e.start("abcdef0123456789").await.unwrap();
    wait_for_log(&e, "abcdef0123456789", "started").await;
    let log = log_text(&e, "abcdef0123456789", LogOptions::default()).await;
    assert!(log.contains("s3cret-value\n"), "{log}");
    assert!(log.contains("pid=1\n"), "PID 1 of its namespace: {log}");
    assert!(log.contains("abcdef012345\n"), "hostname: {log}");
    // Not on the host; the tmpfs is the only copy.
    assert!(!Path::new("/run/secrets/x").exists());
    let files = env.task_dir("abcdef0123456789").join("files");
    assert!(mountinfo().contains(files.to_str().unwrap()));

    let sh = |c: &str| vec!["/bin/sh".to_string(), "-c".to_string(), c.to_string()];
    let out = e
        .exec(
            "abcdef0123456789",
            &sh("cat /run/secrets/x; hostname; cat /proc/net/dev"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.output.contains("s3cret-value"), "{out:?}");
    assert!(out.output.contains("abcdef012345"), "{out:?}");
    assert!(out.output.contains("lo:"), "{out:?}");
    assert!(
        !out.output.contains("eth0"),
        "own network namespace: {out:?}"
    );
    let out = e
        .exec("abcdef0123456789", &sh("exit 4"), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(out.code, 4);
    let timed_out = e
        .exec(
            "abcdef0123456789",
            &sh("sleep 20"),
            Duration::from_millis(300),
        )
        .await;
    assert!(timed_out.is_err());

    e.stop("abcdef0123456789", None, Duration::from_millis(500))
        .await
        .unwrap();
    e.remove("abcdef0123456789").await.unwrap();
    assert!(!mountinfo().contains(files.to_str().unwrap()));
    assert!(!env.task_dir("abcdef0123456789").exists());
}

fn mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap()
}

#[tokio::test]
async fn a_new_engine_adopts_running_tasks() {
    let env = Env::new();
    let first = env.engine();
    first
        .prepare(&task("adopted", "echo hello; sleep 60"))
        .await
        .unwrap();
    first.start("adopted").await.unwrap();
    wait_for_log(&first, "adopted", "hello").await;
    drop(first);

    let pid: PidFile = read_json(&env.task_dir("adopted").join("pid.json"))
        .unwrap()
        .unwrap();
    // The shim is not our child: it survives whatever happens to us.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.shim_pid)).unwrap();
    let ppid: u32 = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(ppid, std::process::id());

    let second = env.engine();
    let listed = second.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].running, "{listed:?}");
    assert_eq!(listed[0].pid, Some(pid.pid));
    assert_eq!(
        log_text(&second, "adopted", LogOptions::default()).await,
        "hello\n"
    );
    let waiter = tokio::spawn({
        let second = env.engine();
        async move { second.wait("adopted").await }
    });
    second
        .stop("adopted", Some("SIGKILL"), Duration::ZERO)
        .await
        .unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(exit.code, 137);
    second.remove("adopted").await.unwrap();
}
