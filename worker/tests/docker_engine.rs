//! The docker engine against a real dockerd and the local test image
//! `shoal-test/busybox:1` (tests/docker-engine.sh starts the one and
//! builds the other; tests/run.sh and CI run it). Skipped, loudly, only
//! when no Docker socket answers.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::query_parameters::ListContainersOptions;
use futures_util::StreamExt;
use shoal_proto::objects::{Annotations, ContainerSpec, Task, TaskSpec};
use shoal_worker::engine_choice::DEFAULT_DOCKER_SOCKET;
use shoal_worker::exec::docker::{DockerEngine, files, spec};
use shoal_worker::exec::{Engine, ExecError, LogOptions, TaskFile, TaskRun};

const IMAGE: &str = "shoal-test/busybox:1";

/// A unique suffix, so parallel runs and leftovers never collide.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}{}x{nanos:x}", std::process::id())
}

/// An engine for a fresh node, or `None` (with a loud message) when no
/// dockerd answers.
async fn engine() -> Option<(DockerEngine, String, PathBuf)> {
    let node = unique("node");
    let state = std::env::temp_dir().join(unique("shoal-docker-test-"));
    match DockerEngine::connect(
        Path::new(DEFAULT_DOCKER_SOCKET),
        node.clone(),
        state.clone(),
    )
    .await
    {
        Ok(engine) => {
            let present = engine.client().inspect_image(IMAGE).await.is_ok();
            assert!(
                present,
                "{IMAGE} is missing: run `bash tests/docker-engine.sh`"
            );
            Some((engine, node, state))
        }
        Err(e) => {
            common::missing(
                "a docker engine test",
                &format!("no Docker engine answers ({e}); run `bash tests/docker-engine.sh`"),
            );
            None
        }
    }
}

fn task(id: &str, script: &str) -> Task {
    Task {
        id: id.into(),
        service_id: "svc-test".into(),
        slot: 1,
        service_annotations: Some(Annotations {
            name: "web".into(),
            ..Default::default()
        }),
        spec: Some(TaskSpec {
            container: Some(ContainerSpec {
                image: IMAGE.into(),
                command: vec!["sh".into(), "-c".into(), script.into()],
                labels: [("team".to_string(), "blue".to_string())].into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn run(task: Task) -> TaskRun {
    TaskRun {
        task,
        files: Vec::new(),
    }
}

/// Polls `check` for up to 10 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn logs(engine: &DockerEngine, task_id: &str) -> String {
    let mut stream = engine
        .logs(task_id, LogOptions::default())
        .await
        .expect("logs");
    let mut out = String::new();
    while let Some(line) = stream.next().await {
        out.push_str(&String::from_utf8_lossy(&line.expect("log line").data));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_a_task_as_a_swarm_container_with_its_secret_on_tmpfs() {
    let Some((engine, node, state)) = engine().await else {
        return;
    };
    let id = unique("task");
    let mut run = run(task(&id, "echo hi; sleep 30"));
    run.files.push(TaskFile {
        path: "/run/secrets/s1".into(),
        data: b"swordfish".to_vec(),
        uid: 0,
        gid: 0,
        mode: 0o400,
        secret: true,
    });
    engine.prepare(&run).await.expect("prepare");
    engine
        .prepare(&run)
        .await
        .expect("prepare again reuses the container");
    engine.start(&id).await.expect("start");
    engine.start(&id).await.expect("starting twice is a no-op");

    // `docker ps` shows it by Swarm's name, with Swarm's labels.
    let name = format!("web.1.{id}");
    let options = ListContainersOptions {
        filters: Some([("name".to_string(), vec![name.clone()])].into()),
        ..Default::default()
    };
    let ps = engine
        .client()
        .list_containers(Some(options))
        .await
        .expect("ps");
    assert_eq!(ps.len(), 1, "exactly one running container named {name}");
    let labels = ps[0].labels.clone().unwrap_or_default();
    assert_eq!(labels.get(spec::LABEL_TASK_ID), Some(&id));
    assert_eq!(labels.get(spec::LABEL_TASK_NAME), Some(&name));
    assert_eq!(
        labels.get(spec::LABEL_SERVICE_NAME).map(String::as_str),
        Some("web")
    );
    assert_eq!(
        labels.get(spec::LABEL_SERVICE_ID).map(String::as_str),
        Some("svc-test")
    );
    assert_eq!(labels.get(spec::LABEL_NODE_ID), Some(&node));
    assert_eq!(
        labels.get(spec::LABEL_MANAGED).map(String::as_str),
        Some("true")
    );
    assert_eq!(labels.get("team").map(String::as_str), Some("blue"));

    eventually("the task's output", || async {
        logs(&engine, &id).await.contains("hi\n")
    })
    .await;

    // The secret is readable inside, and on the node only on a tmpfs.
    let out = engine
        .exec(
            &id,
            &["cat".into(), "/run/secrets/s1".into()],
            Duration::from_secs(10),
        )
        .await
        .expect("exec");
    assert_eq!((out.code, out.output.as_str()), (0, "swordfish"));
    let dir = files::files_dir(&state, &id);
    assert!(
        files::is_mount_point(&dir).expect("mountinfo"),
        "{} is a tmpfs",
        dir.display()
    );
    let failing = engine
        .exec(
            &id,
            &["sh".into(), "-c".into(), "exit 4".into()],
            Duration::from_secs(10),
        )
        .await
        .expect("exec");
    assert_eq!(failing.code, 4);

    // A daemon restarted next to dockerd finds the task again.
    let adopter = DockerEngine::connect(Path::new(DEFAULT_DOCKER_SOCKET), node, state.clone())
        .await
        .expect("second engine");
    let tasks = adopter.list().await.expect("list");
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0].task_id, id);
    assert!(tasks[0].running && tasks[0].pid.is_some(), "{tasks:?}");

    // sh as pid 1 ignores SIGTERM: the grace runs out and SIGKILL follows.
    let started = Instant::now();
    adopter
        .stop(&id, None, Duration::from_secs(1))
        .await
        .expect("stop");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "grace respected"
    );
    let exit = adopter.wait(&id).await.expect("wait");
    assert_eq!(
        (exit.code, exit.message.as_str()),
        (137, "killed by SIGKILL")
    );
    let listed = adopter.list().await.expect("list");
    assert_eq!(listed[0].exit.as_ref(), Some(&exit), "{listed:?}");

    adopter.remove(&id).await.expect("remove");
    adopter
        .remove(&id)
        .await
        .expect("removing twice is a no-op");
    assert!(adopter.list().await.expect("list").is_empty());
    assert!(!dir.exists(), "the secret's tmpfs is unmounted and wiped");
    assert!(matches!(
        adopter.start(&id).await,
        Err(ExecError::NotFound(_))
    ));
    let _ = std::fs::remove_dir_all(state);
}

#[tokio::test(flavor = "multi_thread")]
async fn stops_with_the_signal_and_reports_exit_codes() {
    let Some((engine, _, state)) = engine().await else {
        return;
    };
    // Handles SIGTERM: stops well within its grace.
    let graceful = unique("task");
    let script = "trap 'echo bye; exit 3' TERM; echo ready; sleep 60 & wait";
    engine
        .prepare(&run(task(&graceful, script)))
        .await
        .expect("prepare");
    engine.start(&graceful).await.expect("start");
    eventually("the trap", || async {
        logs(&engine, &graceful).await.contains("ready")
    })
    .await;
    let started = Instant::now();
    engine
        .stop(&graceful, Some("SIGTERM"), Duration::from_secs(20))
        .await
        .expect("stop");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no need for the grace"
    );
    let exit = engine.wait(&graceful).await.expect("wait");
    assert_eq!((exit.code, exit.message.as_str()), (3, "exit code 3"));
    assert!(logs(&engine, &graceful).await.contains("bye"));

    // A failing command: its exit code, and stderr kept apart.
    let failing = unique("task");
    engine
        .prepare(&run(task(&failing, "echo oops >&2; exit 7")))
        .await
        .expect("prepare");
    engine.start(&failing).await.expect("start");
    let exit = engine.wait(&failing).await.expect("wait");
    assert_eq!(exit.code, 7);
    assert_eq!(engine.wait(&failing).await.expect("wait again"), exit);
    let mut stream = engine
        .logs(&failing, LogOptions::default())
        .await
        .expect("logs");
    let line = stream.next().await.expect("a line").expect("log line");
    assert_eq!(line.data, b"oops\n");
    assert_eq!(line.source, shoal_worker::exec::LogSource::Stderr);

    for id in [graceful, failing] {
        engine.remove(&id).await.expect("remove");
    }
    assert!(engine.list().await.expect("list").is_empty());
    let _ = std::fs::remove_dir_all(state);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_image_is_rejected_naming_it() {
    let Some((engine, _, state)) = engine().await else {
        return;
    };
    let id = unique("task");
    let mut t = task(&id, "true");
    if let Some(c) = t.spec.as_mut().and_then(|s| s.container.as_mut()) {
        c.image = "shoal-test/not-here".into();
    }
    let err = engine.prepare(&run(t)).await.expect_err("no such image");
    assert!(err.is_rejection(), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(
            "image shoal-test/not-here:latest is not on this node and could not be pulled"
        ),
        "{msg}"
    );
    assert!(engine.list().await.expect("list").is_empty());
    engine.remove(&id).await.expect("remove");
    let _ = std::fs::remove_dir_all(state);
}

#[tokio::test(flavor = "multi_thread")]
async fn applies_env_user_dir_hostname_mounts_and_the_memory_limit() {
    let Some((engine, _, state)) = engine().await else {
        return;
    };
    let id = unique("task");
    let script = r#"echo "$FOO $(pwd) $(id -u) $(hostname)"
grep -q ' /scratch tmpfs ' /proc/mounts && echo tmpfs-ok
a=$(head -c 100000000 /dev/zero | tr '\0' x); echo survived"#;
    let mut t = task(&id, script);
    if let Some(s) = t.spec.as_mut() {
        if let Some(c) = s.container.as_mut() {
            c.env = vec!["FOO=bar".into()];
            c.dir = "/tmp".into();
            c.user = "65534".into();
            c.hostname = "h1".into();
            c.mounts = vec![shoal_proto::objects::Mount {
                r#type: shoal_proto::objects::mount::Type::Tmpfs as i32,
                target: "/scratch".into(),
                ..Default::default()
            }];
        }
        s.resources = Some(shoal_proto::objects::ResourceRequirements {
            limits: Some(shoal_proto::objects::Resources {
                memory_bytes: 16 << 20,
                nano_cpus: 0,
                pids: 0,
            }),
            reservations: None,
        });
    }
    engine.prepare(&run(t)).await.expect("prepare");
    engine.start(&id).await.expect("start");
    let exit = engine.wait(&id).await.expect("wait");
    let out = logs(&engine, &id).await;
    assert_eq!(
        (exit.code, exit.message.as_str()),
        (137, "OOM killed"),
        "{out}"
    );
    assert!(out.contains("bar /tmp 65534 h1\n"), "{out}");
    assert!(out.contains("tmpfs-ok\n"), "{out}");
    assert!(!out.contains("survived"), "{out}");
    engine.remove(&id).await.expect("remove");
    let _ = std::fs::remove_dir_all(state);
}
