//! The engines end to end, on real daemons: a secret reaches the task at
//! /run/secrets on the docker and the process engine and never a disk;
//! `service rm` leaves nothing behind; a daemon killed with -9 and started
//! again adopts the tasks it ran (same tasks, same processes/containers).

#[path = "engines/support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use shoal_tests::{Cluster, eventually};
use support::*;

/// The secrets scenario's checks that do not depend on the engine: the
/// plaintext is in no regular file of either node's state dir.
fn assert_no_plaintext(cluster: &Cluster, secret: &[u8]) {
    for i in 0..2 {
        let found = files_holding(cluster.state_dir(i), secret);
        assert!(found.is_empty(), "node-{i}: secret on disk in {found:?}");
    }
}

#[test]
fn docker_secrets_reach_containers_and_never_a_disk() -> anyhow::Result<()> {
    if !docker_answers("docker_secrets_reach_containers_and_never_a_disk") {
        return Ok(());
    }
    docker(&["image", "inspect", IMAGE])
        .map_err(|e| e.context(format!("{IMAGE} is missing: run tests/docker-engine.sh")))?;
    let started = Instant::now();
    let cluster = swarm(Cluster::builder().hosts(2).engine("docker").start()?, false)?;
    let nodes = cluster.node_ids();
    assert_eq!(nodes.len(), 2, "node ids: {nodes:?}");
    let secret = unique_secret();
    create_secret(&cluster, "s1", &secret)?;
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "web",
                "--replicas",
                "2",
                "--secret",
                "s1",
                IMAGE,
                "sh",
                "-c",
                "sleep 1000",
            ],
        )
        .ok()?;
    let tasks = eventually("2 web tasks running", Duration::from_secs(60), || {
        running(&cluster, "web", 2)
    })?;
    println!("docker: 2 tasks running after {:.1?}", started.elapsed());

    // As Swarm names and labels them, each on the node that runs its task.
    let mut seen = BTreeSet::new();
    for (i, node) in nodes.iter().enumerate() {
        for c in containers(node)? {
            assert_eq!(c.service, "web", "{c:?}");
            assert_eq!(c.state, "running", "{c:?}");
            let slot = c
                .name
                .strip_prefix("web.")
                .and_then(|rest| rest.strip_suffix(&format!(".{}", c.task)))
                .unwrap_or_default();
            assert!(
                slot.parse::<u64>().is_ok(),
                "name {} is not web.<slot>.<task id>",
                c.name
            );
            assert_eq!(
                tasks.get(&c.task).map(String::as_str),
                Some(cluster.hostname(i)),
                "{c:?} is no task of web on node-{i}: {tasks:?}"
            );
            let read = docker(&["exec", &c.id, "cat", "/run/secrets/s1"])?;
            assert_eq!(read.as_bytes(), secret.as_slice(), "{}", c.name);
            seen.insert(c.task.clone());
            // Its files sit on a tmpfs under the node's state dir.
            let files = cluster
                .state_dir(i)
                .join("tasks")
                .join(&c.task)
                .join("files");
            let tmpfs = mounts_of_type(cluster.state_dir(i), "tmpfs");
            assert!(
                tmpfs.iter().any(|m| Path::new(m) == files),
                "{} is not a tmpfs mount: {tmpfs:?}",
                files.display()
            );
        }
    }
    assert_eq!(
        seen,
        tasks.keys().cloned().collect(),
        "one container per task"
    );
    assert_no_plaintext(&cluster, &secret);

    cluster.shoal(0, &["service", "rm", "web"]).ok()?;
    eventually(
        "no containers or tmpfs left",
        Duration::from_secs(30),
        || {
            for (i, node) in nodes.iter().enumerate() {
                let left = containers(node)?;
                anyhow::ensure!(left.is_empty(), "node-{i} still has {left:?}");
                let mounts = mounts_of_type(cluster.state_dir(i), "tmpfs");
                anyhow::ensure!(mounts.is_empty(), "node-{i} still mounts {mounts:?}");
            }
            Ok(())
        },
    )?;
    assert_no_plaintext(&cluster, &secret);
    println!("docker secrets scenario: {:.1?}", started.elapsed());
    Ok(())
}

/// The task ids and main pids the process engine runs on host `i`, from
/// its pid files.
fn process_tasks(cluster: &Cluster, i: usize) -> BTreeMap<String, i32> {
    let dir = cluster.state_dir(i).join("process").join("tasks");
    let live: BTreeSet<i32> = cluster.task_processes(i).into_iter().collect();
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let pid = std::fs::read_to_string(entry.path().join("pid.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["pid"].as_i64())
            .and_then(|p| i32::try_from(p).ok());
        if let Some(pid) = pid.filter(|p| live.contains(p)) {
            out.insert(entry.file_name().to_string_lossy().into_owned(), pid);
        }
    }
    out
}

#[test]
fn process_secrets_stay_inside_the_task() -> anyhow::Result<()> {
    let started = Instant::now();
    let cluster = swarm(Cluster::builder().hosts(2).start()?, false)?;
    assert_eq!(cluster.engine(), "process", "the harness's default engine");
    let secret = unique_secret();
    create_secret(&cluster, "s1", &secret)?;
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "web",
                "--replicas",
                "2",
                "--secret",
                "s1",
                "busybox",
                "sh",
                "-c",
                "sleep 1000",
            ],
        )
        .ok()?;
    let tasks = eventually("2 web tasks running", Duration::from_secs(30), || {
        running(&cluster, "web", 2)
    })?;
    println!("process: 2 tasks running after {:.1?}", started.elapsed());

    let mut seen = BTreeSet::new();
    for i in 0..2 {
        for (task, pid) in process_tasks(&cluster, i) {
            assert_eq!(
                tasks.get(&task).map(String::as_str),
                Some(cluster.hostname(i))
            );
            let pid = pid.to_string();
            let read = cluster
                .exec(i, "nsenter", &["-t", &pid, "-m", "cat", "/run/secrets/s1"])
                .ok()?;
            assert_eq!(read.as_bytes(), secret.as_slice(), "task {task}");
            let files = cluster
                .state_dir(i)
                .join("process/tasks")
                .join(&task)
                .join("files");
            let tmpfs = mounts_of_type(cluster.state_dir(i), "tmpfs");
            assert!(
                tmpfs.iter().any(|m| Path::new(m) == files),
                "{} is not a tmpfs mount: {tmpfs:?}",
                files.display()
            );
            seen.insert(task);
        }
    }
    assert_eq!(
        seen,
        tasks.keys().cloned().collect(),
        "one process per task"
    );
    // Bound in the tasks' mount namespaces only, not the host's.
    assert!(
        !Path::new("/run/secrets/s1").exists(),
        "/run/secrets/s1 on the host"
    );
    assert_no_plaintext(&cluster, &secret);

    cluster.shoal(0, &["service", "rm", "web"]).ok()?;
    eventually(
        "no task processes or mounts left",
        Duration::from_secs(30),
        || {
            for i in 0..2 {
                let left = cluster.task_processes(i);
                anyhow::ensure!(left.is_empty(), "node-{i} still runs {left:?}");
                let mounts = shoal_tests::leftovers::mounts_under(cluster.state_dir(i));
                anyhow::ensure!(mounts.is_empty(), "node-{i} still mounts {mounts:?}");
            }
            Ok(())
        },
    )?;
    assert_no_plaintext(&cluster, &secret);
    println!("process secrets scenario: {:.1?}", started.elapsed());
    Ok(())
}

/// Secret and config targets on the process engine, whose tasks see the
/// host's own filesystem: `..` is refused at create; a target that would
/// need a new file on the host rejects the task instead of making one; a
/// nested name under /run/secrets reaches the task only.
#[test]
fn process_file_targets_never_become_host_files() -> anyhow::Result<()> {
    const EVIL: &str = "/etc/shoal-test-evil";
    assert!(!Path::new(EVIL).exists(), "{EVIL} is left on this machine");
    let cluster = Cluster::manager_and_workers(0)?;
    let secret = unique_secret();
    create_secret(&cluster, "s", &secret)?;
    cluster
        .shoal_stdin(0, &["config", "create", "c", "-"], b"level=debug")
        .ok()?;
    let create = |name: &str, flag: &str, reference: &str| {
        cluster.shoal(
            0,
            &[
                "service", "create", "-d", "--name", name, flag, reference, "busybox", "sleep",
                "1000",
            ],
        )
    };

    let out = create("up", "--config", "source=c,target=../../x");
    assert!(
        !out.success()
            && out
                .stderr
                .contains("invalid config target \"../../x\": '..' is not allowed"),
        "{out:?}"
    );

    create("evil", "--secret", &format!("source=s,target={EVIL}")).ok()?;
    eventually("the task is rejected", Duration::from_secs(30), || {
        let errors = cluster.task_errors("evil")?;
        anyhow::ensure!(
            errors.contains(&format!("file target {EVIL} does not exist on this node")),
            "{errors}"
        );
        Ok(())
    })?;
    assert!(!Path::new(EVIL).exists(), "{EVIL} was made on the host");

    create("nested", "--secret", "source=s,target=deep/pw").ok()?;
    let tasks = eventually("nested runs", Duration::from_secs(30), || {
        running(&cluster, "nested", 1)
    })?;
    let pid = process_tasks(&cluster, 0)
        .into_iter()
        .find_map(|(task, pid)| tasks.contains_key(&task).then(|| pid.to_string()))
        .ok_or_else(|| anyhow::anyhow!("no process for {tasks:?}"))?;
    let read = cluster
        .exec(
            0,
            "nsenter",
            &["-t", &pid, "-m", "cat", "/run/secrets/deep/pw"],
        )
        .ok()?;
    assert_eq!(read.as_bytes(), secret.as_slice());
    assert!(!Path::new("/run/secrets/deep").exists(), "on the host");
    Ok(())
}

/// What must survive a daemon's kill -9 and restart: task id → what runs
/// it (a pid, a container id).
type Running = BTreeMap<String, String>;

/// kill -9 the worker's daemon alone, start it again, and check that the
/// same 3 tasks run on the same processes/containers (`observe`) and that
/// no task was created meanwhile.
fn survives_daemon_restart(
    mut cluster: Cluster,
    image: &str,
    observe: impl Fn(&Cluster) -> anyhow::Result<Running>,
) -> anyhow::Result<()> {
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "web",
                "--replicas",
                "3",
                image,
                "sleep",
                "1000",
            ],
        )
        .ok()?;
    let tasks = eventually("3 tasks running on node-1", Duration::from_secs(60), || {
        let tasks = running(&cluster, "web", 3)?;
        anyhow::ensure!(tasks.values().all(|n| n == "node-1"), "{tasks:?}");
        Ok(tasks)
    })?;
    let before = eventually("3 tasks on the engine", Duration::from_secs(10), || {
        let now = observe(&cluster)?;
        anyhow::ensure!(now.len() == 3, "{now:?}");
        Ok(now)
    })?;
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        tasks.keys().collect::<Vec<_>>()
    );

    let killed = Instant::now();
    cluster.kill_daemon(1);
    assert_eq!(observe(&cluster)?, before, "tasks died with their daemon");
    cluster.restart(1)?;
    println!(
        "{}: daemon back after {:.1?}",
        cluster.engine(),
        killed.elapsed()
    );
    cluster.wait_nodes_ready(0, 2, Duration::from_secs(30))?;
    eventually("the same 3 tasks running", Duration::from_secs(30), || {
        let rows = support::tasks(&cluster, "web")?;
        let ids: BTreeSet<&String> = rows.iter().map(|r| &r.id).collect();
        anyhow::ensure!(ids == tasks.keys().collect(), "tasks now: {rows:?}");
        running(&cluster, "web", 3)?;
        Ok(())
    })?;
    // The new daemon found them on its engine (not merely a manager that
    // has not noticed yet).
    eventually("node-1 adopts its tasks", Duration::from_secs(15), || {
        let log = cluster.log_tail(1, 400);
        anyhow::ensure!(log.contains("found tasks from before the restart"), "{log}");
        Ok(())
    })?;
    println!(
        "{}: 3 tasks adopted after {:.1?}",
        cluster.engine(),
        killed.elapsed()
    );
    // Still so past the time a dead node is declared down: nothing
    // replaces or restarts them late.
    std::thread::sleep(Duration::from_secs(5));
    let nodes = cluster.node_ls(0)?;
    assert!(
        nodes
            .iter()
            .all(|n| n.get("Status").map(String::as_str) == Some("Ready")),
        "{nodes:?}"
    );
    assert_eq!(
        observe(&cluster)?,
        before,
        "tasks changed after the restart"
    );
    let rows = support::tasks(&cluster, "web")?;
    assert_eq!(rows.len(), 3, "new tasks were created: {rows:?}");
    running(&cluster, "web", 3)?;
    cluster.shoal(0, &["service", "rm", "web"]).ok()?;
    eventually("tasks removed", Duration::from_secs(30), || {
        let left = observe(&cluster)?;
        anyhow::ensure!(left.is_empty(), "{left:?}");
        Ok(())
    })?;
    Ok(())
}

#[test]
fn process_tasks_survive_a_daemon_kill() -> anyhow::Result<()> {
    let started = Instant::now();
    let cluster = swarm(Cluster::builder().hosts(2).start()?, true)?;
    assert_eq!(cluster.engine(), "process", "the harness's default engine");
    survives_daemon_restart(cluster, "busybox", |c| {
        Ok(process_tasks(c, 1)
            .into_iter()
            .map(|(task, pid)| (task, pid.to_string()))
            .collect())
    })?;
    println!("process restart scenario: {:.1?}", started.elapsed());
    Ok(())
}

#[test]
fn embedded_tasks_survive_a_daemon_kill() -> anyhow::Result<()> {
    let started = Instant::now();
    let cluster = Cluster::builder()
        .hosts(2)
        .engine("embedded")
        .daemon_arg(shoal_tests::registry::INSECURE_UNDERLAY)
        .start()?;
    let registry = cluster.registry(0)?;
    let cluster = swarm(cluster, true)?;
    // Same layout on disk as the process engine: the shims' pid files.
    survives_daemon_restart(cluster, &registry.image("busybox:1"), |c| {
        Ok(process_tasks(c, 1)
            .into_iter()
            .map(|(task, pid)| (task, pid.to_string()))
            .collect())
    })?;
    println!("embedded restart scenario: {:.1?}", started.elapsed());
    Ok(())
}

#[test]
fn docker_tasks_survive_a_daemon_kill() -> anyhow::Result<()> {
    if !docker_answers("docker_tasks_survive_a_daemon_kill") {
        return Ok(());
    }
    let started = Instant::now();
    let cluster = swarm(Cluster::builder().hosts(2).engine("docker").start()?, true)?;
    let node = cluster
        .node_id(1)
        .ok_or_else(|| anyhow::anyhow!("node-1 has no id"))?;
    survives_daemon_restart(cluster, IMAGE, move |_| {
        Ok(containers(&node)?
            .into_iter()
            .filter(|c| c.state == "running")
            .map(|c| (c.task, c.id))
            .collect())
    })?;
    println!("docker restart scenario: {:.1?}", started.elapsed());
    Ok(())
}

#[test]
fn a_failing_docker_test_leaves_no_containers_or_mounts() -> anyhow::Result<()> {
    if !docker_answers("a_failing_docker_test_leaves_no_containers_or_mounts") {
        return Ok(());
    }
    let started = Instant::now();
    let cluster = swarm(Cluster::builder().hosts(2).engine("docker").start()?, false)?;
    let nodes = cluster.node_ids();
    let states: Vec<std::path::PathBuf> =
        (0..2).map(|i| cluster.state_dir(i).to_path_buf()).collect();
    create_secret(&cluster, "s1", &unique_secret())?;
    cluster
        .shoal(
            0,
            &[
                "service",
                "create",
                "-d",
                "--name",
                "web",
                "--replicas",
                "2",
                "--secret",
                "s1",
                IMAGE,
                "sleep",
                "1000",
            ],
        )
        .ok()?;
    eventually("2 web tasks running", Duration::from_secs(60), || {
        running(&cluster, "web", 2)
    })?;
    // The test "fails" with its containers running: the cluster is dropped
    // while unwinding, as in a failed assertion.
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _cluster = cluster;
        panic!("a failing test");
    }));
    assert!(failed.is_err());
    for node in &nodes {
        let left = containers(node)?;
        assert!(left.is_empty(), "containers left: {left:?}");
    }
    for state in &states {
        let mounts = shoal_tests::leftovers::mounts_under(state);
        assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    }
    // Kept for a failed test's post-mortem; this failure was on purpose.
    if let Some(run) = states[0].parent().and_then(Path::parent) {
        let _ = std::fs::remove_dir_all(run);
    }
    println!("docker cleanup scenario: {:.1?}", started.elapsed());
    Ok(())
}
