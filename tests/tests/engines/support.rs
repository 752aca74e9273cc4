//! What the engine tests share: a two-node swarm on one engine, the
//! service's tasks as `service ps` shows them, Docker on the machine, and
//! the search for a secret's bytes in a state dir's regular files.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shoal_tests::{Cluster, leftovers};

pub use shoal_tests::docker::{IMAGE, docker};

/// Manager node-0 and worker node-1, both Ready, on `cluster`'s engine.
/// With `drain`, node-0 runs no tasks.
pub fn swarm(cluster: Cluster, drain: bool) -> anyhow::Result<Cluster> {
    cluster.init_swarm(0)?;
    cluster.join(1, 0, "worker")?;
    cluster.wait_nodes_ready(0, 2, Duration::from_secs(30))?;
    if drain {
        cluster
            .shoal(0, &["node", "update", "--availability", "drain", "node-0"])
            .ok()?;
    }
    Ok(cluster)
}

/// Secret bytes no other file on the machine would hold by chance.
pub fn unique_secret() -> Vec<u8> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("shoal-e2e-{}-{nanos}-do-not-persist", std::process::id()).into_bytes()
}

/// `secret create <name> -` with `data` on stdin.
pub fn create_secret(cluster: &Cluster, name: &str, data: &[u8]) -> anyhow::Result<()> {
    cluster
        .shoal_stdin(0, &["secret", "create", name, "-"], data)
        .ok()?;
    Ok(())
}

/// One row of `service ps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    pub id: String,
    pub node: String,
    pub desired: String,
    pub current: String,
}

/// Every task of `service` (all desired states), full ids.
pub fn tasks(cluster: &Cluster, service: &str) -> anyhow::Result<Vec<TaskRow>> {
    let format = "{{.ID}}|{{.Node}}|{{.DesiredState}}|{{.CurrentState}}";
    let out = cluster
        .shoal(
            0,
            &["service", "ps", service, "--no-trunc", "--format", format],
        )
        .ok()?;
    Ok(out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split('|').map(str::to_string);
            let mut next = || f.next().unwrap_or_default();
            TaskRow {
                id: next(),
                node: next(),
                desired: next(),
                current: next(),
            }
        })
        .collect())
}

/// Task id → node of the tasks of `service` that run now; an error
/// unless exactly `n` do.
pub fn running(
    cluster: &Cluster,
    service: &str,
    n: usize,
) -> anyhow::Result<BTreeMap<String, String>> {
    let rows = tasks(cluster, service)?;
    let running: BTreeMap<String, String> = rows
        .iter()
        .filter(|r| r.desired == "Running" && r.current.starts_with("Running"))
        .map(|r| (r.id.clone(), r.node.clone()))
        .collect();
    anyhow::ensure!(
        running.len() == n,
        "{} of {n} running: {rows:?}",
        running.len()
    );
    Ok(running)
}

/// Whether a Docker engine answers here. When none does the test fails,
/// unless `SHOAL_TEST_ALLOW_SKIP=1` allows skipping (CI never sets it).
pub fn docker_answers(test: &str) -> bool {
    let ok = Command::new("docker")
        .arg("info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let why = "no Docker engine answers `docker info`; run tests/docker-engine.sh (tests/run.sh does)";
        if std::env::var("SHOAL_TEST_ALLOW_SKIP").is_ok_and(|v| v == "1") {
            eprintln!("\n!!!!!!!! SKIPPED {test}: {why} !!!!!!!!\n");
        } else {
            panic!("{test} cannot run: {why}; set SHOAL_TEST_ALLOW_SKIP=1 to skip it instead");
        }
    }
    ok
}

/// A Shoal container as `docker ps -a` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub state: String,
    pub service: String,
    pub task: String,
    pub node: String,
}

/// The task containers of node `node_id`, running or not (not their
/// network sandboxes).
pub fn containers(node_id: &str) -> anyhow::Result<Vec<Container>> {
    let format = r#"{{.ID}}|{{.Names}}|{{.State}}|{{.Label "com.docker.swarm.service.name"}}|{{.Label "com.docker.swarm.task.id"}}|{{.Label "com.docker.swarm.node.id"}}"#;
    let managed = format!("label={}=true", leftovers::LABEL_MANAGED);
    let node = format!("label={}={node_id}", leftovers::LABEL_NODE_ID);
    let out = docker(&[
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        &managed,
        "--filter",
        &node,
        "--filter",
        "label=com.docker.swarm.task.id",
        "--format",
        format,
    ])?;
    Ok(out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split('|').map(str::to_string);
            let mut next = || f.next().unwrap_or_default();
            Container {
                id: next(),
                name: next(),
                state: next(),
                service: next(),
                task: next(),
                node: next(),
            }
        })
        .collect())
}

/// Regular files under `dir` (not below a mount point: a tmpfs is RAM)
/// whose bytes contain `needle`.
pub fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mounts: Vec<String> = leftovers::mounts_under(dir)
        .into_iter()
        .map(|(point, _)| point)
        .collect();
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if mounts.iter().any(|m| Path::new(m) == path) {
                continue;
            }
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file()
                && std::fs::read(&path)
                    .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

/// Mounts of filesystem type `fstype` under `dir`.
pub fn mounts_of_type(dir: &Path, fstype: &str) -> Vec<String> {
    leftovers::mounts_under(dir)
        .into_iter()
        .filter(|(_, t)| t == fstype)
        .map(|(p, _)| p)
        .collect()
}
